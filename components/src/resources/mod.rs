//! One file per AWS resource type, all of the same shape: a `KIND`, the `Inputs` it takes
//! (what the planner diffs and a read reports back), and a provider over an [`Aws`] session
//! whose `find_existing` adopts what an interrupted create made (by tags on EC2, by
//! deterministic name on IAM and EKS).

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use byoc_engine::{Ctx, Diff, ProviderError, Providers, changed_fields};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::aws::{Aws, TAG_RESOURCE, TAG_STACK, TAG_TOKEN};
use crate::limiter::Service;

pub mod cluster_drain;
pub mod cluster_leftovers;
pub mod eks_cluster;
pub mod eks_nodegroup;
pub mod elastic_ip;
pub mod eventbridge_rule;
pub mod helm_release;
pub mod iam_instance_profile;
pub mod iam_role;
pub mod internet_gateway;
pub mod internet_gateway_attachment;
pub mod nat_gateway;
pub mod oidc_provider;
pub mod route;
pub mod route_table;
pub mod route_table_association;
pub mod sqs_queue;
pub mod subnet;
pub mod vpc;

/// Every provider, over one session.
pub fn providers(aws: &Arc<Aws>) -> Providers {
    Providers::new()
        .with(vpc::KIND, Arc::new(vpc::Vpc(aws.clone())))
        .with(subnet::KIND, Arc::new(subnet::Subnet(aws.clone())))
        .with(
            internet_gateway::KIND,
            Arc::new(internet_gateway::InternetGateway(aws.clone())),
        )
        .with(
            internet_gateway_attachment::KIND,
            Arc::new(internet_gateway_attachment::InternetGatewayAttachment(
                aws.clone(),
            )),
        )
        .with(
            elastic_ip::KIND,
            Arc::new(elastic_ip::ElasticIp(aws.clone())),
        )
        .with(
            nat_gateway::KIND,
            Arc::new(nat_gateway::NatGateway(aws.clone())),
        )
        .with(
            route_table::KIND,
            Arc::new(route_table::RouteTable(aws.clone())),
        )
        .with(route::KIND, Arc::new(route::Route(aws.clone())))
        .with(
            route_table_association::KIND,
            Arc::new(route_table_association::RouteTableAssociation(aws.clone())),
        )
        .with(iam_role::KIND, Arc::new(iam_role::IamRole(aws.clone())))
        .with(
            iam_instance_profile::KIND,
            Arc::new(iam_instance_profile::IamInstanceProfile(aws.clone())),
        )
        .with(
            oidc_provider::KIND,
            Arc::new(oidc_provider::OidcProvider(aws.clone())),
        )
        .with(
            eks_cluster::KIND,
            Arc::new(eks_cluster::EksCluster(aws.clone())),
        )
        .with(sqs_queue::KIND, Arc::new(sqs_queue::SqsQueue(aws.clone())))
        .with(
            eventbridge_rule::KIND,
            Arc::new(eventbridge_rule::EventbridgeRule(aws.clone())),
        )
        .with(
            cluster_drain::KIND,
            Arc::new(cluster_drain::ClusterDrain(aws.clone())),
        )
        .with(
            cluster_leftovers::KIND,
            Arc::new(cluster_leftovers::ClusterLeftovers(aws.clone())),
        )
        .with(
            helm_release::KIND,
            Arc::new(helm_release::HelmRelease(aws.clone())),
        )
        .with(
            eks_nodegroup::KIND,
            Arc::new(eks_nodegroup::EksNodegroup(aws.clone())),
        )
}

/// A diff where changing any of `replace` needs a new object and the rest updates in place.
/// Both sides are compared in the canonical form of the provider's `Inputs` (sets sorted,
/// defaults filled in), so that what a read reports equals what was applied.
pub fn diff_replacing<I: Serialize + DeserializeOwned>(
    old: &Value,
    new: &Value,
    replace: &[&str],
) -> Diff {
    // Inputs with references not yet known do not parse: compared as they are.
    let canonical = |v: &Value| {
        serde_json::from_value::<I>(v.clone())
            .ok()
            .and_then(|i| serde_json::to_value(i).ok())
            .unwrap_or_else(|| v.clone())
    };
    let fields = changed_fields(&canonical(old), &canonical(new));
    let forcing: Vec<String> = fields
        .iter()
        .filter(|f| replace.contains(&f.as_str()))
        .cloned()
        .collect();
    if !forcing.is_empty() {
        Diff::Replace(forcing)
    } else if fields.is_empty() {
        Diff::NoChange
    } else {
        Diff::Update(fields)
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

/// Filters that find the object an interrupted create of `ctx` made: this stack, this
/// resource, this create's token.
pub fn ec2_owner_filters(aws: &Aws, ctx: &Ctx) -> Vec<Filter> {
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

/// Brings an EC2 object's user tags from `old` to `new`.
pub async fn ec2_retag(
    aws: &Aws,
    ctx: &Ctx,
    id: &str,
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> Result<(), ProviderError> {
    let gone: Vec<Tag> = removed_keys(old, new)
        .into_iter()
        .map(|k| Tag::builder().key(k).build())
        .collect();
    if !gone.is_empty() {
        aws.call(Service::Ec2, "DeleteTags", &ctx.cancel, || {
            aws.ec2
                .delete_tags()
                .resources(id)
                .set_tags(Some(gone.clone()))
                .send()
        })
        .await?;
    }
    let set: Vec<Tag> = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(*v))
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect();
    if !set.is_empty() {
        aws.call(Service::Ec2, "CreateTags", &ctx.cancel, || {
            aws.ec2
                .create_tags()
                .resources(id)
                .set_tags(Some(set.clone()))
                .send()
        })
        .await?;
    }
    Ok(())
}

/// Brings an EKS cluster's or node group's user tags from `old` to `new`.
pub async fn eks_retag(
    aws: &Aws,
    ctx: &Ctx,
    arn: &str,
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> Result<(), ProviderError> {
    if old == new {
        return Ok(());
    }
    let gone = removed_keys(old, new);
    if !gone.is_empty() {
        aws.call(Service::Eks, "UntagResource", &ctx.cancel, || {
            aws.eks
                .untag_resource()
                .resource_arn(arn)
                .set_tag_keys(Some(gone.clone()))
                .send()
        })
        .await?;
    }
    let tags: std::collections::HashMap<String, String> = new.clone().into_iter().collect();
    aws.call(Service::Eks, "TagResource", &ctx.cancel, || {
        aws.eks
            .tag_resource()
            .resource_arn(arn)
            .set_tags(Some(tags.clone()))
            .send()
    })
    .await?;
    Ok(())
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
pub fn policy_json(what: &str, document: &str) -> Result<Value, ProviderError> {
    let decoded = percent_encoding::percent_decode_str(document).decode_utf8_lossy();
    serde_json::from_str(&decoded)
        .map_err(|e| ProviderError::new(format!("{what}: unreadable policy document: {e}")))
}

/// The value an `Option` field of a described object must have.
pub fn required<T>(value: Option<T>, what: &str) -> Result<T, ProviderError> {
    value.ok_or_else(|| ProviderError::new(format!("AWS returned no {what}")))
}

/// A not-found error for an object that a describe did not return.
pub fn not_found(what: &str, id: &str) -> ProviderError {
    ProviderError::with_code("NotFound", format!("{what} {id} does not exist"))
}
