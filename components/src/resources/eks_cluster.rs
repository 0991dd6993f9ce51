//! An EKS cluster; in auto mode with EKS Auto Mode's compute, block storage and load
//! balancing turned on. Creates, updates and deletes wait for the cluster (up to 30 minutes
//! on AWS). Found by its name; adopted only if its tags say it is this stack's.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_eks::operation::update_cluster_config::builders::UpdateClusterConfigFluentBuilder as ConfigRequest;
use aws_sdk_eks::types::{
    AuthenticationMode, BlockStorage, Cluster, ClusterStatus, ComputeConfigRequest,
    CreateAccessConfigRequest, ElasticLoadBalancing, KubernetesNetworkConfigRequest, Nodegroup,
    NodegroupStatus, StorageConfigRequest, Update, UpdateStatus, VpcConfigRequest,
};
use byoc_engine::{Created, Ctx, ProviderError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::named::{Found, NamedObject, adopt};
use super::{
    ResourceKind, Result, Seen, Tagging, TypedProvider, absent, keyed_tag_map, keyed_tags,
    required, retag,
};
use crate::aws::api::Eks;
use crate::aws::{Aws, Patience, user_tags};

pub const KIND: &str = "aws:eks:Cluster";

/// What a wait for a cluster or a node group waits for.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    Create,
    Update,
    Delete,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    pub name: String,
    pub version: String,
    pub role_arn: String,
    pub subnet_ids: Vec<String>,
    pub endpoint_public_access: bool,
    pub endpoint_private_access: bool,
    pub public_access_cidrs: Vec<String>,
    /// `API` or `API_AND_CONFIG_MAP`.
    pub authentication_mode: String,
    /// EKS Auto Mode, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_mode: Option<AutoMode>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoMode {
    pub node_role_arn: String,
    /// Built-in node pools, e.g. `general-purpose`, `system`.
    pub node_pools: Vec<String>,
}

pub struct EksCluster(pub Arc<Aws>);

fn outputs(c: &Cluster) -> Value {
    json!({
        "name": c.name(),
        "arn": c.arn(),
        "endpoint": c.endpoint(),
        "version": c.version(),
        "certificate_authority": c.certificate_authority().and_then(|a| a.data()),
        "oidc_issuer": c.identity().and_then(|i| i.oidc()).and_then(|o| o.issuer()),
        "cluster_security_group_id": c.resources_vpc_config().and_then(|v| v.cluster_security_group_id()),
    })
}

fn vpc_config(inputs: &Inputs) -> VpcConfigRequest {
    VpcConfigRequest::builder()
        .set_subnet_ids(Some(inputs.subnet_ids.clone()))
        .endpoint_public_access(inputs.endpoint_public_access)
        .endpoint_private_access(inputs.endpoint_private_access)
        .set_public_access_cidrs(Some(inputs.public_access_cidrs.clone()))
        .build()
}

impl EksCluster {
    /// The cluster, or `None` if there is none (a cluster being deleted is one).
    async fn get(&self, ctx: &Ctx, name: &str) -> Result<Option<Cluster>> {
        let aws = &self.0;
        let out = aws
            .request(Eks, "DescribeCluster", ctx, |eks| {
                eks.describe_cluster().name(name).send()
            })
            .await;
        Ok(absent(out)?.and_then(|out| out.cluster().cloned()))
    }

    async fn wait_active(&self, ctx: &Ctx, name: &str) -> Result<Cluster> {
        let cluster = EksObject::cluster(name);
        wait_active(&self.0, ctx, cluster, || self.get(ctx, name), active).await
    }

    /// Brings the cluster to Kubernetes `target` one minor at a time (1.30 to 1.32 is two
    /// updates), each waited for until it is Successful and the cluster ACTIVE. It starts
    /// from the version the cluster runs now, so a run resumed after a crash (the cluster
    /// UPDATING, or already at an intermediate version) continues; a version update refused
    /// because another update is in progress waits for that one. A cluster above `target`
    /// is refused: EKS cannot downgrade.
    async fn upgrade(&self, ctx: &Ctx, name: &str, target: &str) -> Result<()> {
        let aws = &self.0;
        let want = minor(target).ok_or_else(|| invalid_version(target))?;
        loop {
            let cluster = self.wait_active(ctx, name).await?;
            let running = cluster.version().unwrap_or_default();
            let now = minor(running).ok_or_else(|| invalid_version(running))?;
            if now == want {
                return Ok(());
            }
            if now > want {
                return Err(downgrade(EksObject::cluster(name), running, target));
            }
            let next = format!("{}.{}", now.0, now.1 + 1);
            let started = aws
                .request(Eks, "UpdateClusterVersion", ctx, |eks| {
                    eks.update_cluster_version()
                        .name(name)
                        .version(&next)
                        .send()
                })
                .await;
            let started = started.map(|out| out.update().cloned());
            waited(aws, ctx, EksObject::cluster(name), started).await?;
        }
    }

    /// One UpdateClusterConfig of the cluster (`config` sets what it changes), waited for
    /// until the cluster is ACTIVE again.
    async fn update_config(
        &self,
        ctx: &Ctx,
        name: &str,
        config: impl Fn(ConfigRequest) -> ConfigRequest + Sync,
    ) -> Result<()> {
        self.0
            .perform(Eks, "UpdateClusterConfig", ctx, |eks| {
                config(eks.update_cluster_config().name(name)).send()
            })
            .await?;
        self.wait_active(ctx, name).await.map(drop)
    }

    fn created(c: &Cluster) -> Created {
        Created {
            physical_id: c.name().unwrap_or_default().to_string(),
            outputs: outputs(c),
        }
    }
}

impl ResourceKind for EksCluster {
    const KIND: &'static str = KIND;
    type Inputs = Inputs;
    const REPLACE_ON: &'static [&'static str] = &["name", "role_arn", "subnet_ids", "auto_mode"];
    const UNIQUE_BY: &'static [&'static [&'static str]] = &[&["name"]];

    fn check_change(old: &Inputs, new: &Inputs) -> Result<(), String> {
        no_downgrade("cluster", &old.version, &new.version)
    }

    fn check(inputs: &Inputs) -> Result<(), String> {
        check_version(&inputs.version)?;
        const MODES: [&str; 3] = ["API", "API_AND_CONFIG_MAP", "CONFIG_MAP"];
        if !MODES.contains(&inputs.authentication_mode.as_str()) {
            return Err(format!(
                "authentication_mode {:?} is none of {}",
                inputs.authentication_mode,
                MODES.join(", ")
            ));
        }
        Ok(())
    }
}

/// `(major, minor)` of a Kubernetes version such as `1.32`.
pub fn minor(version: &str) -> Option<(u32, u32)> {
    let (major, minor) = version.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// A Kubernetes version such as `1.32` (or one not known before apply).
pub fn check_version(version: &str) -> Result<(), String> {
    match minor(version) {
        None if version != super::typed::PLACEHOLDER => Err(format!(
            "version {version:?} is not a Kubernetes version such as 1.32"
        )),
        _ => Ok(()),
    }
}

pub fn invalid_version(version: &str) -> ProviderError {
    ProviderError::with_code(
        super::typed::INVALID_INPUTS,
        format!("{version:?} is not a Kubernetes version such as 1.32"),
    )
}

/// EKS cannot take a cluster or a node group back to an older Kubernetes version: refused at
/// plan time (a version not known yet, or none, is let through).
pub fn no_downgrade(what: &str, old: &str, new: &str) -> Result<(), String> {
    match (minor(old), minor(new)) {
        (Some(o), Some(n)) if n < o => Err(format!(
            "version {old} -> {new}: EKS cannot downgrade a {what} (set kubernetes_version \
             to {old} or later, or make a new environment)"
        )),
        _ => Ok(()),
    }
}

/// The cluster, or one of its node groups: what an update or a wait is of.
#[derive(Clone, Copy, Debug)]
pub struct EksObject<'a> {
    pub cluster: &'a str,
    pub nodegroup: Option<&'a str>,
}

impl EksObject<'_> {
    /// AWS creates a control plane in about ten minutes, upgrades one in about as long and
    /// deletes one in about five; a node group is active in about three minutes, and an
    /// update (nodes replaced or resized) or a delete (nodes drained) takes about five.
    pub fn patience(&self, op: Op) -> Patience {
        let typical = match (self.nodegroup, op) {
            (None, Op::Create | Op::Update) => 600,
            (None, Op::Delete) => 300,
            (Some(_), Op::Create) => 180,
            (Some(_), Op::Update | Op::Delete) => 300,
        };
        let timeout = match op {
            Op::Update => 60 * 60,
            Op::Create | Op::Delete => 30 * 60,
        };
        Patience::secs(typical, timeout)
    }
}

impl<'a> EksObject<'a> {
    pub fn cluster(name: &'a str) -> EksObject<'a> {
        EksObject {
            cluster: name,
            nodegroup: None,
        }
    }

    pub fn nodegroup(cluster: &'a str, name: &'a str) -> EksObject<'a> {
        EksObject {
            cluster,
            nodegroup: Some(name),
        }
    }
}

/// `EKS cluster acme-dev`, `node group workers-1`.
impl fmt::Display for EksObject<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.nodegroup {
            Some(ng) => write!(f, "node group {ng}"),
            None => write!(f, "EKS cluster {}", self.cluster),
        }
    }
}

/// What the descriptions of the cluster and of its node groups tell alike.
pub trait EksDescribed: Send + Sync {
    /// All its tags.
    fn all_tags(&self) -> BTreeMap<String, String>;

    /// Whether it is being deleted (for byoc, it is gone).
    fn deleting(&self) -> bool;
}

/// [`EksDescribed`] for the SDK's descriptions, by their status type (they share no trait).
macro_rules! eks_described {
    ($($object:ident => $status:ident),* $(,)?) => {$(
        impl EksDescribed for $object {
            fn all_tags(&self) -> BTreeMap<String, String> {
                keyed_tag_map(self.tags())
            }

            fn deleting(&self) -> bool {
                self.status() == Some(&$status::Deleting)
            }
        }
    )*};
}

eks_described! {
    Cluster => ClusterStatus,
    Nodegroup => NodegroupStatus,
}

/// Whether the cluster is ACTIVE (`Ok(false)`: not yet); an error if it never will be.
fn active(c: &Cluster, what: &str) -> Result<bool> {
    match c.status() {
        Some(ClusterStatus::Active) => Ok(true),
        Some(ClusterStatus::Failed | ClusterStatus::Deleting) => Err(ProviderError::with_code(
            "ClusterFailed",
            format!("{what} is {:?}", c.status()),
        )),
        _ => Ok(false),
    }
}

/// The object `described`, unless it is being deleted: as a look-up finds it.
pub fn unless_deleting<T>(described: Option<T::Object>) -> Option<Found<T>>
where
    T: NamedObject<Object: EksDescribed>,
{
    let described = described.filter(|d| !d.deleting());
    described.map(|d| Found {
        tags: d.all_tags(),
        object: d,
    })
}

/// Waits until `get` finds `of` ACTIVE, as `active` tells; it, as described then.
pub async fn wait_active<D, Fut: Future<Output = Result<Option<D>>>>(
    aws: &Aws,
    ctx: &Ctx,
    of: EksObject<'_>,
    get: impl Fn() -> Fut,
    active: fn(&D, &str) -> Result<bool>,
) -> Result<D> {
    let what = of.to_string();
    let patience = of.patience(Op::Create);
    aws.wait_ready(ctx, &what, "ACTIVE", patience, get, |d| active(d, &what))
        .await
}

/// EKS cannot take the cluster or a node group back to an older Kubernetes version.
pub fn downgrade(of: EksObject<'_>, running: &str, target: &str) -> ProviderError {
    ProviderError::with_code(
        super::typed::INVALID_INPUTS,
        format!(
            "{of} runs Kubernetes {running}: EKS cannot downgrade it to {target} \
             (set kubernetes_version to {running} or later, or replace the environment)"
        ),
    )
}

/// `what` (an update, a node group) is `status`, failed, for EKS's `reasons` (each a code
/// and a message).
pub fn failed<'a, C: fmt::Debug>(
    code: &str,
    what: &str,
    status: impl fmt::Debug,
    reasons: impl Iterator<Item = (C, Option<&'a str>)>,
) -> ProviderError {
    let reasons: Vec<String> = reasons
        .map(|(code, message)| format!("{code:?}: {}", message.unwrap_or("")))
        .collect();
    let message = format!("{what} is {status:?}: {}", reasons.join("; "));
    ProviderError::with_code(code, message)
}

/// Whether EKS refused a call because the cluster or node group is busy (another update in
/// progress, or not ACTIVE).
fn in_use(error: &ProviderError) -> bool {
    error.code.as_deref() == Some("ResourceInUseException")
}

/// Waits for update `id` of `of` to end: Successful, or an error saying why it Failed or
/// was Cancelled.
async fn wait_update(aws: &Aws, ctx: &Ctx, of: EksObject<'_>, id: &str) -> Result<()> {
    let what = format!("update {id} of {of}");
    aws.wait_for(
        ctx,
        &format!("{what} to end"),
        of.patience(Op::Update),
        || async {
            let update = describe_update(aws, ctx, of, id).await?;
            match update.status() {
                Some(UpdateStatus::Successful) => Ok(Some(())),
                Some(UpdateStatus::Failed | UpdateStatus::Cancelled) => {
                    let errors = update.errors().iter();
                    let errors = errors.map(|e| (e.error_code(), e.error_message()));
                    Err(failed("UpdateFailed", &what, update.status(), errors))
                }
                _ => Ok(None),
            }
        },
    )
    .await
}

async fn describe_update(aws: &Aws, ctx: &Ctx, of: EksObject<'_>, id: &str) -> Result<Update> {
    let out = aws
        .request(Eks, "DescribeUpdate", ctx, |eks| {
            eks.describe_update()
                .name(of.cluster)
                .set_nodegroup_name(of.nodegroup.map(str::to_string))
                .update_id(id)
                .send()
        })
        .await?;
    required(out.update().cloned(), "update")
}

/// After a call refused as in use: waits (at least one poll interval) until no update of
/// `of` is in progress.
async fn wait_quiet(aws: &Aws, ctx: &Ctx, of: EksObject<'_>) -> Result<()> {
    let mut first = true;
    let what = format!("{of}'s updates to end");
    aws.wait_for(ctx, &what, of.patience(Op::Update), || {
        let polled = !std::mem::replace(&mut first, false);
        async move {
            if !polled {
                return Ok(None);
            }
            let out = aws
                .request(Eks, "ListUpdates", ctx, |eks| {
                    eks.list_updates()
                        .name(of.cluster)
                        .set_nodegroup_name(of.nodegroup.map(str::to_string))
                        .send()
                })
                .await?;
            // The newest are last: one in progress is found early.
            for id in out.update_ids().iter().rev() {
                let update = describe_update(aws, ctx, of, id).await?;
                if update.status() == Some(&UpdateStatus::InProgress) {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        }
    })
    .await
}

/// Waits out what an update call of `of` did: the update it `started`, until the update
/// ends (`true`); or, refused because the cluster or group is busy, until no update of it is
/// in progress (`false`: call again).
pub async fn waited(
    aws: &Aws,
    ctx: &Ctx,
    of: EksObject<'_>,
    started: Result<Option<Update>>,
) -> Result<bool> {
    match started {
        Ok(update) => {
            let id = required(update.as_ref().and_then(|u| u.id()), "update id")?;
            wait_update(aws, ctx, of, id).await?;
            Ok(true)
        }
        Err(e) if in_use(&e) => {
            wait_quiet(aws, ctx, of).await?;
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

impl NamedObject for EksCluster {
    const WHAT: &'static str = "EKS cluster";
    type Object = Cluster;
    // The create tags it: an object of the same name without this create's token is the
    // one a create-before-destroy replacement would replace.
    const ADOPT_BY_TOKEN: bool = true;

    fn id(&self, inputs: &Inputs) -> String {
        inputs.name.clone()
    }

    async fn describe(&self, ctx: &Ctx, name: &str) -> Result<Option<Found<Self>>> {
        Ok(unless_deleting(self.get(ctx, name).await?))
    }

    async fn complete(&self, ctx: &Ctx, inputs: &Inputs, _: Found<Self>) -> Result<Created> {
        let cluster = self.wait_active(ctx, &inputs.name).await?;
        Ok(EksCluster::created(&cluster))
    }
}

#[async_trait]
impl TypedProvider for EksCluster {
    async fn create(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Created> {
        let aws = &self.0;
        let tags = keyed_tags(aws, ctx, &inputs.tags);
        aws.perform(Eks, "CreateCluster", ctx, |eks| {
            let mut request = eks
                .create_cluster()
                .name(&inputs.name)
                .version(&inputs.version)
                .role_arn(&inputs.role_arn)
                .resources_vpc_config(vpc_config(inputs))
                .access_config(
                    CreateAccessConfigRequest::builder()
                        .authentication_mode(AuthenticationMode::from(
                            inputs.authentication_mode.as_str(),
                        ))
                        .bootstrap_cluster_creator_admin_permissions(true)
                        .build(),
                )
                .client_request_token(&ctx.token)
                .set_tags(Some(tags.clone()));
            if let Some(auto) = &inputs.auto_mode {
                // Auto Mode needs all three on, and no self-managed add-ons.
                request = request
                    .compute_config(
                        ComputeConfigRequest::builder()
                            .enabled(true)
                            .set_node_pools(Some(auto.node_pools.clone()))
                            .node_role_arn(&auto.node_role_arn)
                            .build(),
                    )
                    .storage_config(
                        StorageConfigRequest::builder()
                            .block_storage(BlockStorage::builder().enabled(true).build())
                            .build(),
                    )
                    .kubernetes_network_config(
                        KubernetesNetworkConfigRequest::builder()
                            .elastic_load_balancing(
                                ElasticLoadBalancing::builder().enabled(true).build(),
                            )
                            .build(),
                    )
                    .bootstrap_self_managed_addons(false);
            }
            request.send()
        })
        .await?;
        let cluster = self.wait_active(ctx, &inputs.name).await?;
        Ok(EksCluster::created(&cluster))
    }

    async fn read(&self, ctx: &Ctx, name: &str, recorded: &Inputs) -> Result<Seen<Inputs>> {
        let found = self.existing(ctx, name).await?;
        let c = &found.object;
        let vpc = required(c.resources_vpc_config(), "cluster VPC config")?;
        let compute = c.compute_config().filter(|cc| cc.enabled() == Some(true));
        let inputs = Inputs {
            name: name.to_string(),
            version: c.version().unwrap_or_default().to_string(),
            role_arn: c.role_arn().unwrap_or_default().to_string(),
            subnet_ids: vpc.subnet_ids().to_vec(),
            endpoint_public_access: vpc.endpoint_public_access(),
            endpoint_private_access: vpc.endpoint_private_access(),
            public_access_cidrs: vpc.public_access_cidrs().to_vec(),
            // A cluster description without an access config (the emulator's) says nothing
            // about the mode: that is not drift.
            authentication_mode: match c.access_config().and_then(|a| a.authentication_mode()) {
                Some(mode) => mode.as_str().to_string(),
                None => recorded.authentication_mode.clone(),
            },
            auto_mode: compute.map(|cc| AutoMode {
                node_role_arn: cc.node_role_arn().unwrap_or_default().to_string(),
                node_pools: cc.node_pools().to_vec(),
            }),
            tags: user_tags(&found.tags),
        };
        Ok(Seen {
            outputs: outputs(c),
            inputs,
        })
    }

    async fn update(&self, ctx: &Ctx, name: &str, old: &Inputs, new: &Inputs) -> Result<Value> {
        let aws = &self.0;
        // EKS runs one update at a time: each waits for the cluster to be ACTIVE again. The
        // version goes first: one minor at a time, from the version the cluster runs now (a
        // resumed run continues where the crashed one got).
        if old.version != new.version {
            self.upgrade(ctx, name, &new.version).await?;
        }
        let access_changed = old.endpoint_public_access != new.endpoint_public_access
            || old.endpoint_private_access != new.endpoint_private_access
            || old.public_access_cidrs != new.public_access_cidrs;
        if access_changed {
            let config = VpcConfigRequest::builder()
                .endpoint_public_access(new.endpoint_public_access)
                .endpoint_private_access(new.endpoint_private_access)
                .set_public_access_cidrs(Some(new.public_access_cidrs.clone()))
                .build();
            let config = |request: ConfigRequest| request.resources_vpc_config(config.clone());
            self.update_config(ctx, name, config).await?;
        }
        if old.authentication_mode != new.authentication_mode {
            let access = aws_sdk_eks::types::UpdateAccessConfigRequest::builder()
                .authentication_mode(AuthenticationMode::from(new.authentication_mode.as_str()))
                .build();
            let config = |request: ConfigRequest| request.access_config(access.clone());
            self.update_config(ctx, name, config).await?;
        }
        let cluster = self.wait_active(ctx, name).await?;
        let arn = required(cluster.arn(), "cluster ARN")?;
        retag(aws, ctx, Tagging::Eks(arn), &old.tags, &new.tags).await?;
        Ok(outputs(&cluster))
    }

    async fn delete(&self, ctx: &Ctx, name: &str, _: &Inputs) -> Result<()> {
        let aws = &self.0;
        aws.perform(Eks, "DeleteCluster", ctx, |eks| {
            eks.delete_cluster().name(name).send()
        })
        .await?;
        let what = EksObject::cluster(name).to_string();
        let patience = EksObject::cluster(name).patience(Op::Delete);
        aws.wait_gone(ctx, &what, patience, || self.get(ctx, name))
            .await
    }

    async fn find_existing(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Option<Created>> {
        adopt(self, &self.0, ctx, inputs).await
    }
}
