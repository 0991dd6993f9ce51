//! An EKS managed node group. Its Kubernetes version (UpdateNodegroupVersion), scaling,
//! labels and taints update in place, each update waited for; anything else (instance types,
//! disk, capacity type, AMI type, subnets, node role) needs a new group, which the blueprint
//! names anew and makes before the old one goes (create-before-destroy). Physical id:
//! `{cluster}/{nodegroup}`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_eks::types::{
    AmiTypes, CapacityTypes, Nodegroup, NodegroupScalingConfig, NodegroupStatus, Taint as EksTaint,
    TaintEffect, UpdateLabelsPayload, UpdateTaintsPayload,
};
use byoc_engine::{Created, Ctx, ProviderError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::eks_cluster::{
    EksObject, Op, check_version, downgrade, failed, invalid_version, minor, no_downgrade,
    unless_deleting, wait_active, waited,
};
use super::named::{Found, NamedObject, adopt};
use super::{
    ResourceKind, Result, Seen, Tagging, TypedProvider, absent, keyed_tags, removed_keys, retag,
};
use crate::aws::api::Eks;
use crate::aws::{Aws, user_tags};

pub const KIND: &str = "aws:eks:Nodegroup";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    pub cluster_name: String,
    pub name: String,
    pub node_role_arn: String,
    pub subnet_ids: Vec<String>,
    pub instance_types: Vec<String>,
    /// `ON_DEMAND` or `SPOT`.
    pub capacity_type: String,
    pub ami_type: String,
    pub disk_size: i32,
    /// The Kubernetes version (`1.32`), at most the cluster's. Empty: the cluster's at
    /// creation (and left alone after: state recorded before versions were inputs).
    #[serde(default)]
    pub version: String,
    pub scaling: Scaling,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub taints: Vec<Taint>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scaling {
    pub min_size: i32,
    pub max_size: i32,
    pub desired_size: i32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Taint {
    pub key: String,
    pub value: String,
    /// `NO_SCHEDULE`, `PREFER_NO_SCHEDULE` or `NO_EXECUTE`.
    pub effect: String,
}

pub struct EksNodegroup(pub Arc<Aws>);

fn split(id: &str) -> Result<(&str, &str)> {
    id.split_once('/').ok_or_else(|| {
        ProviderError::new(format!("{id:?} is not a node group id (cluster/nodegroup)"))
    })
}

fn eks_taints(taints: &[Taint]) -> Vec<EksTaint> {
    taints
        .iter()
        .map(|t| {
            EksTaint::builder()
                .key(&t.key)
                .value(&t.value)
                .effect(TaintEffect::from(t.effect.as_str()))
                .build()
        })
        .collect()
}

fn scaling(s: &Scaling) -> NodegroupScalingConfig {
    NodegroupScalingConfig::builder()
        .min_size(s.min_size)
        .max_size(s.max_size)
        .desired_size(s.desired_size)
        .build()
}

/// Whether the group is ACTIVE (`Ok(false)`: not yet); an error if it failed, is degraded
/// or going, with the issues its health lists.
fn active(g: &Nodegroup, what: &str) -> Result<bool> {
    use NodegroupStatus::{Active, CreateFailed, Degraded, Deleting};
    match g.status() {
        Some(Active) => Ok(true),
        Some(CreateFailed | Degraded | Deleting) => {
            let issues = g.health().map(|h| h.issues()).unwrap_or_default().iter();
            let issues = issues.map(|i| (i.code(), i.message()));
            Err(failed("NodegroupFailed", what, g.status(), issues))
        }
        _ => Ok(false),
    }
}

impl EksNodegroup {
    fn created(cluster: &str, name: &str, arn: Option<&str>) -> Created {
        Created {
            physical_id: format!("{cluster}/{name}"),
            outputs: json!({"name": name, "arn": arn}),
        }
    }

    /// The group, or `None` if there is none (a group being deleted is one).
    async fn get(&self, ctx: &Ctx, cluster: &str, name: &str) -> Result<Option<Nodegroup>> {
        let aws = &self.0;
        let out = aws
            .request(Eks, "DescribeNodegroup", ctx, |eks| {
                eks.describe_nodegroup()
                    .cluster_name(cluster)
                    .nodegroup_name(name)
                    .send()
            })
            .await;
        Ok(absent(out)?.and_then(|out| out.nodegroup().cloned()))
    }

    async fn wait_active(&self, ctx: &Ctx, cluster: &str, name: &str) -> Result<Nodegroup> {
        let group = EksObject::nodegroup(cluster, name);
        let get = || self.get(ctx, cluster, name);
        wait_active(&self.0, ctx, group, get, active).await
    }
}

impl EksNodegroup {
    /// Brings the group to Kubernetes `target` (the cluster's, which is upgraded first), the
    /// update waited for until it is Successful and the group ACTIVE. It starts from the
    /// version the group runs now: a run resumed after a crash continues; a call refused
    /// because an update is in progress waits for that one. EKS cannot downgrade a group.
    async fn upgrade(&self, ctx: &Ctx, cluster: &str, name: &str, target: &str) -> Result<()> {
        let aws = &self.0;
        let want = minor(target).ok_or_else(|| invalid_version(target))?;
        loop {
            let g = self.wait_active(ctx, cluster, name).await?;
            let running = g.version().unwrap_or_default();
            match minor(running) {
                Some(now) if now == want => return Ok(()),
                Some(now) if now > want => {
                    let group = EksObject::nodegroup(cluster, name);
                    return Err(downgrade(group, running, target));
                }
                _ => {}
            }
            let started = aws
                .request(Eks, "UpdateNodegroupVersion", ctx, |eks| {
                    eks.update_nodegroup_version()
                        .cluster_name(cluster)
                        .nodegroup_name(name)
                        .version(target)
                        .send()
                })
                .await;
            let started = started.map(|out| out.update().cloned());
            waited(aws, ctx, EksObject::nodegroup(cluster, name), started).await?;
        }
    }
}

impl ResourceKind for EksNodegroup {
    const KIND: &'static str = KIND;
    type Inputs = Inputs;
    const REPLACE_ON: &'static [&'static str] = &[
        "cluster_name",
        "name",
        "node_role_arn",
        "subnet_ids",
        "instance_types",
        "capacity_type",
        "ami_type",
        "disk_size",
    ];
    const UNIQUE_BY: &'static [&'static [&'static str]] = &[&["cluster_name", "name"]];

    fn check_change(old: &Inputs, new: &Inputs) -> Result<(), String> {
        no_downgrade("node group", &old.version, &new.version)
    }

    /// EKS's bounds: at least one instance type, `min <= desired <= max`, `max >= 1`.
    fn check(inputs: &Inputs) -> Result<(), String> {
        let s = &inputs.scaling;
        if inputs.instance_types.is_empty() {
            return Err("instance_types lists none".into());
        }
        if !inputs.version.is_empty() {
            check_version(&inputs.version)?;
        }
        if !(0 <= s.min_size && s.min_size <= s.desired_size && s.desired_size <= s.max_size)
            || s.max_size < 1
        {
            return Err(format!(
                "scaling {}..{} with {} desired: needs 0 <= min <= desired <= max and max >= 1",
                s.min_size, s.max_size, s.desired_size
            ));
        }
        Ok(())
    }
}

impl NamedObject for EksNodegroup {
    const WHAT: &'static str = "node group";
    type Object = Nodegroup;
    // The create tags it: an object of the same name without this create's token is the
    // one a create-before-destroy replacement would replace.
    const ADOPT_BY_TOKEN: bool = true;

    fn id(&self, inputs: &Inputs) -> String {
        format!("{}/{}", inputs.cluster_name, inputs.name)
    }

    async fn describe(&self, ctx: &Ctx, id: &str) -> Result<Option<Found<Self>>> {
        let (cluster, name) = split(id)?;
        Ok(unless_deleting(self.get(ctx, cluster, name).await?))
    }

    async fn complete(&self, ctx: &Ctx, inputs: &Inputs, _: Found<Self>) -> Result<Created> {
        let (cluster, name) = (&inputs.cluster_name, &inputs.name);
        let g = self.wait_active(ctx, cluster, name).await?;
        Ok(EksNodegroup::created(cluster, name, g.nodegroup_arn()))
    }
}

#[async_trait]
impl TypedProvider for EksNodegroup {
    async fn create(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Created> {
        let aws = &self.0;
        let tags = keyed_tags(aws, ctx, &inputs.tags);
        let labels: HashMap<String, String> = inputs.labels.clone().into_iter().collect();
        aws.perform(Eks, "CreateNodegroup", ctx, |eks| {
            eks.create_nodegroup()
                .cluster_name(&inputs.cluster_name)
                .nodegroup_name(&inputs.name)
                .node_role(&inputs.node_role_arn)
                .set_subnets(Some(inputs.subnet_ids.clone()))
                .set_instance_types(Some(inputs.instance_types.clone()))
                .capacity_type(CapacityTypes::from(inputs.capacity_type.as_str()))
                .ami_type(AmiTypes::from(inputs.ami_type.as_str()))
                .disk_size(inputs.disk_size)
                .set_version((!inputs.version.is_empty()).then(|| inputs.version.clone()))
                .scaling_config(scaling(&inputs.scaling))
                .set_labels(Some(labels.clone()))
                .set_taints(Some(eks_taints(&inputs.taints)))
                .set_tags(Some(tags.clone()))
                .client_request_token(&ctx.token)
                .send()
        })
        .await?;
        let g = self
            .wait_active(ctx, &inputs.cluster_name, &inputs.name)
            .await?;
        Ok(EksNodegroup::created(
            &inputs.cluster_name,
            &inputs.name,
            g.nodegroup_arn(),
        ))
    }

    async fn read(&self, ctx: &Ctx, id: &str, _: &Inputs) -> Result<Seen<Inputs>> {
        let (cluster, name) = split(id)?;
        let found = self.existing(ctx, id).await?;
        let g = &found.object;
        let s = g.scaling_config();
        let inputs = Inputs {
            cluster_name: cluster.to_string(),
            name: name.to_string(),
            node_role_arn: g.node_role().unwrap_or_default().to_string(),
            subnet_ids: g.subnets().to_vec(),
            instance_types: g.instance_types().to_vec(),
            capacity_type: g
                .capacity_type()
                .map(|c| c.as_str().to_string())
                .unwrap_or_default(),
            ami_type: g
                .ami_type()
                .map(|a| a.as_str().to_string())
                .unwrap_or_default(),
            disk_size: g.disk_size().unwrap_or_default(),
            version: g.version().unwrap_or_default().to_string(),
            scaling: Scaling {
                min_size: s.and_then(|s| s.min_size()).unwrap_or_default(),
                max_size: s.and_then(|s| s.max_size()).unwrap_or_default(),
                desired_size: s.and_then(|s| s.desired_size()).unwrap_or_default(),
            },
            labels: g
                .labels()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            taints: g
                .taints()
                .iter()
                .map(|t| Taint {
                    key: t.key().unwrap_or_default().to_string(),
                    value: t.value().unwrap_or_default().to_string(),
                    effect: t
                        .effect()
                        .map(|e| e.as_str().to_string())
                        .unwrap_or_default(),
                })
                .collect(),
            tags: user_tags(&found.tags),
        };
        Ok(Seen {
            outputs: EksNodegroup::created(cluster, name, g.nodegroup_arn()).outputs,
            inputs,
        })
    }

    async fn update(&self, ctx: &Ctx, id: &str, old: &Inputs, new: &Inputs) -> Result<Value> {
        let aws = &self.0;
        let (cluster, name) = split(id)?;
        // The version first (the cluster is upgraded before: the group depends on it).
        if old.version != new.version && !new.version.is_empty() {
            self.upgrade(ctx, cluster, name, &new.version).await?;
        }
        if old.scaling != new.scaling || old.labels != new.labels || old.taints != new.taints {
            let labels = UpdateLabelsPayload::builder()
                .set_add_or_update_labels(Some(new.labels.clone().into_iter().collect()))
                .set_remove_labels(Some(removed_keys(&old.labels, &new.labels)))
                .build();
            let gone: Vec<Taint> = old
                .taints
                .iter()
                .filter(|t| {
                    !new.taints
                        .iter()
                        .any(|n| n.key == t.key && n.effect == t.effect)
                })
                .cloned()
                .collect();
            let taints = UpdateTaintsPayload::builder()
                .set_add_or_update_taints(Some(eks_taints(&new.taints)))
                .set_remove_taints(Some(eks_taints(&gone)))
                .build();
            // One update at a time: a refusal as in use (the update a crashed run started, or
            // another) waits for that one, then asks again.
            loop {
                self.wait_active(ctx, cluster, name).await?;
                let started = aws
                    .request(Eks, "UpdateNodegroupConfig", ctx, |eks| {
                        let mut request = eks
                            .update_nodegroup_config()
                            .cluster_name(cluster)
                            .nodegroup_name(name)
                            .scaling_config(scaling(&new.scaling));
                        if old.labels != new.labels {
                            request = request.labels(labels.clone());
                        }
                        if old.taints != new.taints {
                            request = request.taints(taints.clone());
                        }
                        request.send()
                    })
                    .await;
                let started = started.map(|out| out.update().cloned());
                if waited(aws, ctx, EksObject::nodegroup(cluster, name), started).await? {
                    break;
                }
            }
        }
        let g = self.wait_active(ctx, cluster, name).await?;
        let arn = super::required(g.nodegroup_arn(), "node group ARN")?;
        retag(aws, ctx, Tagging::Eks(arn), &old.tags, &new.tags).await?;
        Ok(EksNodegroup::created(cluster, name, g.nodegroup_arn()).outputs)
    }

    async fn delete(&self, ctx: &Ctx, id: &str, _: &Inputs) -> Result<()> {
        let aws = &self.0;
        let (cluster, name) = split(id)?;
        aws.perform(Eks, "DeleteNodegroup", ctx, |eks| {
            eks.delete_nodegroup()
                .cluster_name(cluster)
                .nodegroup_name(name)
                .send()
        })
        .await?;
        let what = EksObject::nodegroup(cluster, name).to_string();
        let patience = EksObject::nodegroup(cluster, name).patience(Op::Delete);
        aws.wait_gone(ctx, &what, patience, || self.get(ctx, cluster, name))
            .await
    }

    async fn find_existing(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Option<Created>> {
        adopt(self, &self.0, ctx, inputs).await
    }
}
