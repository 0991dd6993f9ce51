//! One file per resource type, all of the same shape: a [`ResourceKind`] (`KIND`, the
//! `Inputs` it takes: what the blueprint builds, the planner diffs and a read reports back),
//! and its calls over an [`Aws`] session: an [`ec2::Ec2Object`], which [`ec2::Ec2`] makes a
//! [`TypedProvider`] (EC2 types, adopted after an interrupted create by its tags), or a
//! [`TypedProvider`] itself: a [`named::NamedObject`] too for the types adopted by
//! deterministic name (IAM, EKS, SQS, EventBridge: [`named::adopt`]).
//! [`Typed`] makes each the engine's provider: parsing, diffing and classifying are done
//! there once. Below: helpers the types share (tags, lookups).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use byoc_engine::{Created, Ctx, ErrorClass, ProviderError, Providers};
use serde_json::{Value, json};

use crate::aws::api::{self, Api};
use crate::aws::{Aws, TAG_RESOURCE, TAG_STACK, TAG_TOKEN};

pub mod cluster_drain;
pub mod cluster_leftovers;
pub mod ec2;
pub mod eks_cluster;
pub mod eks_nodegroup;
pub mod elastic_ip;
pub mod eventbridge_rule;
pub mod helm_release;
pub mod iam_instance_profile;
pub mod iam_role;
pub mod internet_gateway;
pub mod internet_gateway_attachment;
pub mod named;
pub mod nat_gateway;
pub mod oidc_provider;
pub mod route;
pub mod route_table;
pub mod route_table_association;
pub mod sqs_queue;
pub mod subnet;
pub mod typed;
pub mod vpc;

use ec2::Ec2;
pub use typed::{
    ResourceKind, Seen, StringSet, Sweeper, Typed, TypedProvider, is_seconds, output, resource,
    seconds,
};

/// What a provider's operations return: a [`ProviderError`] unless said otherwise.
pub type Result<T, E = ProviderError> = std::result::Result<T, E>;

/// Every provider, over one session.
pub fn providers(aws: &Arc<Aws>) -> Providers {
    let aws = || aws.clone();
    Providers::new()
        .typed(Ec2(vpc::Vpc, aws()))
        .typed(Ec2(subnet::Subnet, aws()))
        .typed(Ec2(internet_gateway::InternetGateway, aws()))
        .typed(internet_gateway_attachment::InternetGatewayAttachment(aws()))
        .typed(Ec2(elastic_ip::ElasticIp, aws()))
        .typed(Ec2(nat_gateway::NatGateway, aws()))
        .typed(Ec2(route_table::RouteTable, aws()))
        .typed(route::Route(aws()))
        .typed(route_table_association::RouteTableAssociation(aws()))
        .typed(iam_role::IamRole(aws()))
        .typed(iam_instance_profile::IamInstanceProfile(aws()))
        .typed(oidc_provider::OidcProvider(aws()))
        .typed(eks_cluster::EksCluster(aws()))
        .typed(eks_nodegroup::EksNodegroup(aws()))
        .typed(sqs_queue::SqsQueue(aws()))
        .typed(eventbridge_rule::EventbridgeRule(aws()))
        .typed(cluster_drain::ClusterDrain(aws()))
        .typed(cluster_leftovers::ClusterLeftovers(aws()))
        .typed(helm_release::HelmRelease(aws()))
}

/// Registering a [`TypedProvider`] under its kind.
trait WithTyped {
    fn typed<P: TypedProvider>(self, provider: P) -> Self;
}

impl WithTyped for Providers {
    fn typed<P: TypedProvider>(self, provider: P) -> Providers {
        self.with(P::KIND, Arc::new(Typed(provider)))
    }
}

/// An object known by its id alone, which is also its only output.
pub fn with_id(id: &str) -> Created {
    Created {
        physical_id: id.to_string(),
        outputs: json!({"id": id}),
    }
}

/// An object known by its name, which is its id, and its ARN: both are its outputs.
pub fn with_name_and_arn(name: &str, arn: &str) -> Created {
    Created {
        physical_id: name.to_string(),
        outputs: json!({"name": name, "arn": arn}),
    }
}

/// `None` for a `NotFound`-class error: a describe of something that may not exist.
pub fn absent<T>(result: Result<T>) -> Result<Option<T>> {
    match result {
        Err(e) if crate::aws::classify(&e) == ErrorClass::NotFound => Ok(None),
        other => other.map(Some),
    }
}

/// Keys of `old` that `new` no longer has: the tags (or labels) an update removes.
pub fn removed_keys(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> Vec<String> {
    old.keys()
        .filter(|k| !new.contains_key(*k))
        .cloned()
        .collect()
}

/// The tags of an EC2 create.
pub fn ec2_tags(
    aws: &Aws,
    ctx: &Ctx,
    kind: ResourceType,
    user: &BTreeMap<String, String>,
) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(
            aws.tags(ctx, user)
                .into_iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect(),
        ))
        .build()
}

/// Which EC2 object a describe looks for: the one with this id, or the one an interrupted
/// create of `ctx` made (found by its tags: this stack, this resource, this create's token).
#[derive(Clone, Copy, Debug)]
pub enum Ec2Find<'a> {
    Id(&'a str),
    Made,
}

impl Ec2Find<'_> {
    /// The ids to describe (`set_..._ids`).
    pub fn ids(self) -> Option<Vec<String>> {
        match self {
            Ec2Find::Id(id) => Some(vec![id.to_string()]),
            Ec2Find::Made => None,
        }
    }

    /// The filters to describe with (`set_filters`).
    pub fn filters(self, aws: &Aws, ctx: &Ctx) -> Option<Vec<Filter>> {
        match self {
            Ec2Find::Id(_) => None,
            Ec2Find::Made => Some(ec2_owner_filters(aws, ctx)),
        }
    }
}

/// `async fn describe(aws, ctx, find: Ec2Find) -> Result<Option<$object>>`
/// of an [`ec2::Ec2Object`]: the first EC2 object of one type that `find` finds (the
/// SDK's types share no trait to write it once as a function).
macro_rules! ec2_describe {
    ($object:ident, $operation:literal, $describe:ident, $set_ids:ident, $list:ident) => {
        async fn describe(
            aws: &$crate::aws::Aws,
            ctx: &byoc_engine::Ctx,
            find: $crate::resources::Ec2Find<'_>,
        ) -> $crate::resources::Result<Option<aws_sdk_ec2::types::$object>> {
            let service = $crate::aws::api::Ec2;
            let out = aws
                .request(service, $operation, ctx, |ec2| {
                    ec2.$describe()
                        .$set_ids(find.ids())
                        .set_filters(find.filters(aws, ctx))
                        .send()
                })
                .await?;
            Ok(out.$list().first().cloned())
        }
    };
}
pub(crate) use ec2_describe;

/// Filters that find the object an interrupted create of `ctx` made: this stack, this
/// resource, this create's token.
fn ec2_owner_filters(aws: &Aws, ctx: &Ctx) -> Vec<Filter> {
    let tag = |key: &str, value: &str| {
        Filter::builder()
            .name(format!("tag:{key}"))
            .values(value)
            .build()
    };
    vec![
        tag(TAG_STACK, &aws.stack),
        tag(TAG_RESOURCE, byoc_engine::base_name(&ctx.resource)),
        tag(TAG_TOKEN, &ctx.token),
    ]
}

/// EC2 tags as a map.
pub fn ec2_tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    crate::aws::tag_map(tags.iter().map(|t| (t.key(), t.value())))
}

/// An object tagged through its API's tag and untag calls, by what that API knows it by.
#[derive(Clone, Copy, Debug)]
pub enum Tagging<'a> {
    /// An EC2 object, by id.
    Ec2(&'a str),
    Role(&'a str),
    InstanceProfile(&'a str),
    OidcProvider(&'a str),
    /// An EKS cluster or node group, by ARN.
    Eks(&'a str),
    /// An SQS queue, by URL.
    Queue(&'a str),
    /// An EventBridge rule, by ARN.
    Rule(&'a str),
}

/// Brings an object's user tags from `old` to `new`: untags the keys that went (when some
/// went), then tags with `new` (and byoc's own, but on EC2 and EKS, whose create's stay; EC2
/// sets only the tags that changed). EC2, IAM and EKS objects are left alone when their user
/// tags are unchanged; a queue's and a rule's are written every time.
pub async fn retag(
    aws: &Aws,
    ctx: &Ctx,
    object: Tagging<'_>,
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> Result<()> {
    use Tagging::{InstanceProfile, OidcProvider, Queue, Role, Rule};
    use api::{Eks, Events, Iam, Sqs};
    if old == new && !matches!(object, Queue(_) | Rule(_)) {
        return Ok(());
    }
    let gone = &removed_keys(old, new);
    let all = || keyed_tags(aws, ctx, new);
    let (ec2, iam, eks, sqs, events) = (&aws.ec2, &aws.iam, &aws.eks, &aws.sqs, &aws.events);
    match object {
        Tagging::Ec2(id) => {
            let set: Vec<Tag> = new
                .iter()
                .filter(|(k, v)| old.get(*k) != Some(*v))
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect();
            let untag = |keys: Vec<String>| {
                let keys = keys.into_iter().map(|k| Tag::builder().key(k).build());
                let request = ec2.delete_tags().resources(id);
                request.set_tags(Some(keys.collect())).send()
            };
            let tag = || {
                let request = ec2.create_tags().resources(id);
                request.set_tags(Some(set.clone())).send()
            };
            let tag = (!set.is_empty()).then_some(("CreateTags", tag));
            tag_calls(aws, ctx, api::Ec2, gone, ("DeleteTags", untag), tag).await
        }
        Role(name) => {
            let tags = Some(iam_tags(aws, ctx, new));
            let untag = |keys| {
                iam.untag_role()
                    .role_name(name)
                    .set_tag_keys(Some(keys))
                    .send()
            };
            let tag = || iam.tag_role().role_name(name).set_tags(tags.clone()).send();
            let (untag, tag) = (("UntagRole", untag), Some(("TagRole", tag)));
            tag_calls(aws, ctx, Iam, gone, untag, tag).await
        }
        InstanceProfile(name) => {
            let tags = Some(iam_tags(aws, ctx, new));
            let untag = |keys| {
                let request = iam.untag_instance_profile().instance_profile_name(name);
                request.set_tag_keys(Some(keys)).send()
            };
            let tag = || {
                let request = iam.tag_instance_profile().instance_profile_name(name);
                request.set_tags(tags.clone()).send()
            };
            let (untag, tag) = (
                ("UntagInstanceProfile", untag),
                Some(("TagInstanceProfile", tag)),
            );
            tag_calls(aws, ctx, Iam, gone, untag, tag).await
        }
        OidcProvider(arn) => {
            let tags = Some(iam_tags(aws, ctx, new));
            let untag = |keys| {
                let request = iam.untag_open_id_connect_provider();
                let request = request.open_id_connect_provider_arn(arn);
                request.set_tag_keys(Some(keys)).send()
            };
            let tag = || {
                let request = iam.tag_open_id_connect_provider();
                let request = request.open_id_connect_provider_arn(arn);
                request.set_tags(tags.clone()).send()
            };
            let untag = ("UntagOpenIDConnectProvider", untag);
            let tag = Some(("TagOpenIDConnectProvider", tag));
            tag_calls(aws, ctx, Iam, gone, untag, tag).await
        }
        Tagging::Eks(arn) => {
            let tags = Some(new.clone().into_iter().collect());
            let untag = |keys| {
                let request = eks.untag_resource().resource_arn(arn);
                request.set_tag_keys(Some(keys)).send()
            };
            let tag = || {
                eks.tag_resource()
                    .resource_arn(arn)
                    .set_tags(tags.clone())
                    .send()
            };
            let (untag, tag) = (("UntagResource", untag), Some(("TagResource", tag)));
            tag_calls(aws, ctx, Eks, gone, untag, tag).await
        }
        Queue(url) => {
            let tags = Some(all());
            let untag = |keys| {
                sqs.untag_queue()
                    .queue_url(url)
                    .set_tag_keys(Some(keys))
                    .send()
            };
            let tag = || sqs.tag_queue().queue_url(url).set_tags(tags.clone()).send();
            let (untag, tag) = (("UntagQueue", untag), Some(("TagQueue", tag)));
            tag_calls(aws, ctx, Sqs, gone, untag, tag).await
        }
        Rule(arn) => {
            let tags = all()
                .into_iter()
                .map(|(k, v)| {
                    aws_sdk_eventbridge::types::Tag::builder()
                        .key(k)
                        .value(v)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ProviderError::new(format!("rule tag: {e}")))?;
            let tags = Some(tags);
            let untag = |keys| {
                let request = events.untag_resource().resource_arn(arn);
                request.set_tag_keys(Some(keys)).send()
            };
            let tag = || {
                events
                    .tag_resource()
                    .resource_arn(arn)
                    .set_tags(tags.clone())
                    .send()
            };
            let (untag, tag) = (("UntagResource", untag), Some(("TagResource", tag)));
            tag_calls(aws, ctx, Events, gone, untag, tag).await
        }
    }
}

/// An API's two tagging calls, each `(operation, request)`: `untag` the keys of `gone` (when
/// there are any), then `tag` (when there is something to tag). Requests are made anew for
/// each attempt.
async fn tag_calls<A, B, E, F, U, T>(
    aws: &Aws,
    ctx: &Ctx,
    api: impl Api,
    gone: &[String],
    (untag_operation, untag): (&str, impl Fn(Vec<String>) -> U),
    tag: Option<(&str, impl Fn() -> T)>,
) -> Result<()>
where
    U: Future<Output = Result<A, SdkError<E, HttpResponse>>>,
    T: Future<Output = Result<B, SdkError<F, HttpResponse>>>,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    F: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if !gone.is_empty() {
        let untag = |_| untag(gone.to_vec());
        aws.perform(api, untag_operation, ctx, untag).await?;
    }
    match tag {
        Some((operation, tag)) => aws.perform(api, operation, ctx, |_| tag()).await,
        None => Ok(()),
    }
}

/// Tags given as a map (EKS's, SQS's), maybe none, as a sorted map.
pub fn keyed_tag_map(tags: Option<&HashMap<String, String>>) -> BTreeMap<String, String> {
    tags.into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The tags of a create, as the APIs that take a map of them take them (EKS, SQS).
pub fn keyed_tags(
    aws: &Aws,
    ctx: &Ctx,
    user: &BTreeMap<String, String>,
) -> HashMap<String, String> {
    aws.tags(ctx, user).into_iter().collect()
}

/// IAM tags of a create.
pub fn iam_tags(
    aws: &Aws,
    ctx: &Ctx,
    user: &BTreeMap<String, String>,
) -> Vec<aws_sdk_iam::types::Tag> {
    aws.tags(ctx, user)
        .into_iter()
        .map(|(k, v)| {
            aws_sdk_iam::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .expect("key and value are set")
        })
        .collect()
}

pub fn iam_tag_map(tags: &[aws_sdk_iam::types::Tag]) -> BTreeMap<String, String> {
    crate::aws::tag_map(tags.iter().map(|t| (Some(t.key()), Some(t.value()))))
}

/// A JSON policy document as IAM returns it: URL-encoded.
pub fn policy_json(what: &str, document: &str) -> Result<Value> {
    let decoded = percent_encoding::percent_decode_str(document).decode_utf8_lossy();
    serde_json::from_str(&decoded)
        .map_err(|e| ProviderError::new(format!("{what}: unreadable policy document: {e}")))
}

/// The value an `Option` field of a described object must have.
pub fn required<T>(value: Option<T>, what: &str) -> Result<T> {
    value.ok_or_else(|| ProviderError::new(format!("AWS returned no {what}")))
}

/// A not-found error for an object that a describe did not return.
pub fn not_found(what: &str, id: &str) -> ProviderError {
    ProviderError::with_code("NotFound", format!("{what} {id} does not exist"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Every provider over a session that never reaches AWS: enough to plan.
    pub fn offline_providers() -> Providers {
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .build();
        let platform = crate::Platform::with_config(sdk, crate::PlatformOptions::default());
        providers(&platform.session(crate::Target {
            account_id: "123456789012".into(),
            external_id: "x".into(),
            region: "us-east-1".into(),
            stack: "acme-dev".into(),
            run_id: "r1".into(),
        }))
    }

    /// The plan of `resources` as stack `acme-dev` with nothing recorded, offline.
    pub fn plan_offline(
        resources: Vec<byoc_engine::Resource>,
    ) -> Result<byoc_engine::Plan, byoc_engine::PlanError> {
        let graph = byoc_engine::Graph::new(resources).expect("a valid graph");
        let providers = offline_providers();
        byoc_engine::plan(
            "acme-dev",
            "r1",
            &graph,
            &Default::default(),
            &providers,
            None,
        )
    }

    /// A release's inputs flatten its `Release`: a misspelled field is still refused.
    #[test]
    fn misspelled_release_inputs_fail_at_plan_time() {
        let unknown = |what: &str| json!({byoc_engine::UNKNOWN: what});
        let release = |field: &str, value: Value| {
            let mut inputs = json!({
                "cluster": {
                    "name": unknown("cluster.name"),
                    "endpoint": unknown("cluster.endpoint"),
                    "certificate_authority": unknown("cluster.certificate_authority"),
                },
                "name": "argocd", "namespace": "argocd", "chart": "argo-cd", "version": "1.0.0",
                "values": {"a": unknown("cluster.endpoint")},
            });
            inputs[field] = value;
            inputs
        };
        let providers = offline_providers();
        let provider = providers.get(helm_release::KIND).unwrap();
        provider
            .check(&release("repo", json!("https://charts")))
            .expect("valid inputs pass");
        let err = provider
            .check(&release("namespce", json!("x")))
            .unwrap_err();
        assert!(err.contains("unknown field `namespce`"), "{err}");
    }

    /// A misspelled input fails at plan time, naming the resource, its kind and the field.
    #[test]
    fn misspelled_inputs_fail_at_plan_time() {
        let mut vpc = byoc_engine::Resource::new(
            vpc::KIND,
            "vpc",
            json!({"cidr_block": "10.0.0.0/16", "enable_dns_support": true, "enable_dns_hostnames": true}),
        );
        let subnet = byoc_engine::Resource::new(
            subnet::KIND,
            "subnet-a",
            json!({
                "vpc_id": byoc_engine::reference("vpc", "id"),
                "cidr_block": "10.0.0.0/20",
                "availability_zone": "us-east-1a",
                "map_public_ip_on_launch": true,
            }),
        );
        plan_offline(vec![vpc.clone(), subnet.clone()]).expect("valid inputs plan");
        vpc.inputs["enable_dns_hostname"] = json!(true);
        let err = plan_offline(vec![vpc, subnet]).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "resource vpc (aws:ec2:Vpc): invalid input `enable_dns_hostname`: unknown field"
            ),
            "{err}"
        );
    }
}
