//! What Kubernetes made in AWS for the environment's cluster, and what would outlive it:
//! load balancers and target groups, instances Karpenter launched, ENIs and security groups.
//! Nothing is made on create; on delete they are found by the cluster's tags inside the
//! environment's VPC and deleted. The blueprint orders it after the cluster and before the
//! subnets and the VPC, so that those never fail with DependencyViolation.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, InstanceStateName, NetworkInterfaceStatus};
use byoc_engine::{Created, Ctx, ProviderError};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ResourceKind, Result, Sweeper, absent, ec2_tag_map};
use crate::aws::api::{Ec2, Elb};
use crate::aws::{Aws, Patience, TAG_STACK, tag_map};

pub const KIND: &str = "byoc:ClusterLeftovers";

/// Instances take minutes to terminate, load balancers to release their ENIs.
/// AWS terminates instances in about a minute and releases ENIs soon after.
const INSTANCES: Patience = Patience::secs(60, 20 * 60);
const ENIS: Patience = Patience::secs(30, 20 * 60);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    pub cluster_name: String,
    pub vpc_id: String,
}

pub struct ClusterLeftovers(pub Arc<Aws>);

/// Whether the cluster (its load balancer controller, CNI, Karpenter or EKS Auto Mode)
/// made an object with these tags. Objects byoc manages itself are never leftovers.
pub fn made_by_cluster(tags: &BTreeMap<String, String>, cluster: &str) -> bool {
    let named = |key: &str| tags.get(key).is_some_and(|v| v == cluster);
    !tags.contains_key(TAG_STACK)
        && (tags.contains_key(&format!("kubernetes.io/cluster/{cluster}"))
            || named("elbv2.k8s.aws/cluster")
            || named("karpenter.sh/discovery")
            || named("cluster.k8s.amazonaws.com/name")
            || named("eks:eks-cluster-name"))
}

fn vpc_filter(vpc_id: &str) -> Filter {
    Filter::builder().name("vpc-id").values(vpc_id).build()
}

impl ClusterLeftovers {
    /// Deletes the cluster's load balancers, then its target groups; the number deleted.
    async fn load_balancers(&self, ctx: &Ctx, inputs: &Inputs) -> Result<usize> {
        let aws = &self.0;
        let out = aws
            .request(Elb, "DescribeLoadBalancers", ctx, |elb| {
                elb.describe_load_balancers().send()
            })
            .await?;
        let listed = out.load_balancers().iter();
        let listed = listed.map(|lb| (lb.vpc_id(), lb.load_balancer_arn()));
        let balancers = self.elb_made_by_cluster(ctx, inputs, listed).await?;
        for arn in &balancers {
            aws.perform(Elb, "DeleteLoadBalancer", ctx, |elb| {
                elb.delete_load_balancer().load_balancer_arn(arn).send()
            })
            .await?;
        }
        let out = aws
            .request(Elb, "DescribeTargetGroups", ctx, |elb| {
                elb.describe_target_groups().send()
            })
            .await?;
        let listed = out.target_groups().iter();
        let listed = listed.map(|tg| (tg.vpc_id(), tg.target_group_arn()));
        let groups = self.elb_made_by_cluster(ctx, inputs, listed).await?;
        for arn in &groups {
            aws.perform(Elb, "DeleteTargetGroup", ctx, |elb| {
                elb.delete_target_group().target_group_arn(arn).send()
            })
            .await?;
        }
        Ok(balancers.len() + groups.len())
    }

    /// The ARNs of those of `listed` (load balancers or target groups, each `(vpc, arn)`) in
    /// the environment's VPC whose tags say the cluster made them.
    async fn elb_made_by_cluster<'a>(
        &self,
        ctx: &Ctx,
        inputs: &Inputs,
        listed: impl Iterator<Item = (Option<&'a str>, Option<&'a str>)>,
    ) -> Result<Vec<String>> {
        let aws = &self.0;
        let vpc = Some(inputs.vpc_id.as_str());
        let arns: Vec<String> = listed
            .filter(|(in_vpc, _)| *in_vpc == vpc)
            .filter_map(|(_, arn)| arn.map(str::to_string))
            .collect();
        let mut found = Vec::new();
        // DescribeTags takes 20 ARNs at a time.
        for chunk in arns.chunks(20) {
            let out = aws
                .request(Elb, "DescribeTags", ctx, |elb| {
                    elb.describe_tags()
                        .set_resource_arns(Some(chunk.to_vec()))
                        .send()
                })
                .await?;
            for description in out.tag_descriptions() {
                let tags = tag_map(description.tags().iter().map(|t| (t.key(), t.value())));
                if made_by_cluster(&tags, &inputs.cluster_name)
                    && let Some(arn) = description.resource_arn()
                {
                    found.push(arn.to_string());
                }
            }
        }
        Ok(found)
    }

    /// Terminates the instances the cluster launched and waits until they are gone.
    async fn instances(&self, ctx: &Ctx, inputs: &Inputs) -> Result<usize> {
        let aws = &self.0;
        let live = || async {
            let out = aws
                .request(Ec2, "DescribeInstances", ctx, |ec2| {
                    ec2.describe_instances()
                        .filters(vpc_filter(&inputs.vpc_id))
                        .send()
                })
                .await?;
            Ok::<_, ProviderError>(
                out.reservations()
                    .iter()
                    .flat_map(|r| r.instances())
                    .filter(|i| {
                        !matches!(
                            i.state().and_then(|s| s.name()),
                            Some(InstanceStateName::Terminated)
                        )
                    })
                    .filter(|i| made_by_cluster(&ec2_tag_map(i.tags()), &inputs.cluster_name))
                    .filter_map(|i| i.instance_id().map(str::to_string))
                    .collect::<Vec<_>>(),
            )
        };
        let ids = live().await?;
        if ids.is_empty() {
            return Ok(0);
        }
        aws.perform(Ec2, "TerminateInstances", ctx, |ec2| {
            ec2.terminate_instances()
                .set_instance_ids(Some(ids.clone()))
                .send()
        })
        .await?;
        let what = format!(
            "{} instances of cluster {} to terminate",
            ids.len(),
            inputs.cluster_name
        );
        aws.wait_for(ctx, &what, INSTANCES, || async {
            Ok(live().await?.is_empty().then_some(()))
        })
        .await?;
        Ok(ids.len())
    }

    /// Deletes the cluster's ENIs, waiting for those still attached to be released.
    async fn network_interfaces(&self, ctx: &Ctx, inputs: &Inputs) -> Result<usize> {
        let aws = &self.0;
        let deleted = AtomicUsize::new(0);
        let what = format!("the ENIs of cluster {} to be released", inputs.cluster_name);
        aws.wait_for(ctx, &what, ENIS, || async {
            let out = aws
                .request(Ec2, "DescribeNetworkInterfaces", ctx, |ec2| {
                    ec2.describe_network_interfaces()
                        .filters(vpc_filter(&inputs.vpc_id))
                        .send()
                })
                .await?;
            let mine: Vec<_> = out
                .network_interfaces()
                .iter()
                .filter(|e| made_by_cluster(&ec2_tag_map(e.tag_set()), &inputs.cluster_name))
                .collect();
            let mut attached = 0;
            for eni in &mine {
                let Some(id) = eni.network_interface_id() else {
                    continue;
                };
                if eni.status() != Some(&NetworkInterfaceStatus::Available) {
                    attached += 1;
                    continue;
                }
                let gone = aws
                    .request(Ec2, "DeleteNetworkInterface", ctx, |ec2| {
                        ec2.delete_network_interface()
                            .network_interface_id(id)
                            .send()
                    })
                    .await;
                if absent(gone)?.is_some() {
                    deleted.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok((attached == 0).then_some(()))
        })
        .await?;
        Ok(deleted.into_inner())
    }

    /// Deletes the cluster's security groups, their rules first: groups that refer to each
    /// other could not be deleted otherwise.
    async fn security_groups(&self, ctx: &Ctx, inputs: &Inputs) -> Result<usize> {
        let aws = &self.0;
        let out = aws
            .request(Ec2, "DescribeSecurityGroups", ctx, |ec2| {
                ec2.describe_security_groups()
                    .filters(vpc_filter(&inputs.vpc_id))
                    .send()
            })
            .await?;
        let groups: Vec<_> = out
            .security_groups()
            .iter()
            .filter(|g| g.group_name() != Some("default"))
            .filter(|g| made_by_cluster(&ec2_tag_map(g.tags()), &inputs.cluster_name))
            .collect();
        for g in &groups {
            let id = g.group_id().unwrap_or_default();
            if !g.ip_permissions().is_empty() {
                aws.perform(Ec2, "RevokeSecurityGroupIngress", ctx, |ec2| {
                    ec2.revoke_security_group_ingress()
                        .group_id(id)
                        .set_ip_permissions(Some(g.ip_permissions().to_vec()))
                        .send()
                })
                .await?;
            }
            if !g.ip_permissions_egress().is_empty() {
                aws.perform(Ec2, "RevokeSecurityGroupEgress", ctx, |ec2| {
                    ec2.revoke_security_group_egress()
                        .group_id(id)
                        .set_ip_permissions(Some(g.ip_permissions_egress().to_vec()))
                        .send()
                })
                .await?;
            }
        }
        for g in &groups {
            let id = g.group_id().unwrap_or_default();
            let gone = aws
                .request(Ec2, "DeleteSecurityGroup", ctx, |ec2| {
                    ec2.delete_security_group().group_id(id).send()
                })
                .await;
            absent(gone)?;
        }
        Ok(groups.len())
    }
}

impl ResourceKind for ClusterLeftovers {
    const KIND: &'static str = KIND;
    type Inputs = Inputs;
    const REPLACE_ON: &'static [&'static str] = &["cluster_name", "vpc_id"];
}

#[async_trait]
impl Sweeper for ClusterLeftovers {
    fn recorded(inputs: &Inputs) -> Created {
        Created {
            physical_id: inputs.cluster_name.clone(),
            outputs: json!({"cluster_name": inputs.cluster_name}),
        }
    }

    async fn sweep(&self, ctx: &Ctx, inputs: &Inputs) -> Result<()> {
        // Load balancers and instances hold ENIs, and ENIs hold security groups.
        let balancers = self.load_balancers(ctx, inputs).await?;
        let instances = self.instances(ctx, inputs).await?;
        let enis = self.network_interfaces(ctx, inputs).await?;
        let groups = self.security_groups(ctx, inputs).await?;
        tracing::info!(
            stack = %ctx.stack,
            cluster = %inputs.cluster_name,
            balancers, instances, enis, groups,
            "swept what the cluster left in AWS"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftovers_are_what_the_cluster_tagged_and_never_byocs_own() {
        let tags = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(made_by_cluster(
            &tags(&[("kubernetes.io/cluster/acme-dev", "owned")]),
            "acme-dev"
        ));
        assert!(made_by_cluster(
            &tags(&[("elbv2.k8s.aws/cluster", "acme-dev")]),
            "acme-dev"
        ));
        assert!(made_by_cluster(
            &tags(&[("cluster.k8s.amazonaws.com/name", "acme-dev")]),
            "acme-dev"
        ));
        assert!(!made_by_cluster(
            &tags(&[("elbv2.k8s.aws/cluster", "acme-prod")]),
            "acme-dev"
        ));
        assert!(!made_by_cluster(
            &tags(&[("kubernetes.io/cluster/acme-devx", "owned")]),
            "acme-dev"
        ));
        // byoc's own subnets carry the cluster's tags too.
        assert!(!made_by_cluster(
            &tags(&[
                ("kubernetes.io/cluster/acme-dev", "shared"),
                (TAG_STACK, "acme-dev")
            ]),
            "acme-dev"
        ));
    }
}
