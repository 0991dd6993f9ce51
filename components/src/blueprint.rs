//! The environment blueprint: an [`EnvironmentConfig`] becomes the engine's desired graph.
//! Every choice (names, CIDRs, zones) is made here, from the stack name and the config, so
//! the same config always gives the same graph.

use std::collections::BTreeMap;

use byoc_engine::{Resource, reference};
use byoc_model::{CapacityType, ConfigError, EksMode, EnvironmentConfig, NatMode, TaintEffect};
use serde_json::{Value, json};

use crate::resources::{
    cluster_leftovers, eks_cluster, eks_nodegroup, elastic_ip, iam_instance_profile, iam_role,
    internet_gateway, internet_gateway_attachment, nat_gateway, oidc_provider, route, route_table,
    route_table_association, subnet, vpc,
};

const MANAGED: &str = "arn:aws:iam::aws:policy/";

/// The root CA of the EKS OIDC issuers' certificate chain. AWS no longer checks thumbprints
/// for EKS issuers, but the API still wants one.
const OIDC_THUMBPRINT: &str = "9e99a48a9960b14926bb7f3b02e22da2b0ab7280";

/// `{stack}-{suffix}`, or when that is longer than AWS allows (`max`), the stack name cut
/// short with a 64-bit hash of all of it: `{cut}_{hash}-{suffix}`. Stack names are unique
/// and hold no `_`, and no suffix is another's dash-extension (a test holds it), so two
/// stacks never share a name even in one account.
fn aws_name(stack: &str, suffix: &str, max: usize) -> String {
    let name = format!("{stack}-{suffix}");
    if name.len() <= max {
        return name;
    }
    let hash = byoc_engine::stable_hash([stack].into_iter());
    let keep = max - suffix.len() - hash.len() - 2;
    format!("{}_{hash}-{suffix}", &stack[..keep])
}

/// The desired resources of `stack` for `config`.
pub fn environment(stack: &str, config: &EnvironmentConfig) -> Result<Vec<Resource>, ConfigError> {
    config.validate()?;
    let subnets = config.subnets()?;
    let tags = |extra: &[(&str, &str)]| -> Value {
        let mut all: BTreeMap<String, String> = config.tags.clone();
        all.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        json!(all)
    };
    let cluster_tag = format!("kubernetes.io/cluster/{stack}");
    // The customer's trust role may manage only IAM roles and profiles named byoc-*.
    let iam_prefix = format!("byoc-{stack}");
    let mut out = vec![
        Resource::new(
            vpc::KIND,
            "vpc",
            json!({
                "cidr_block": config.vpc_cidr,
                "enable_dns_support": true,
                "enable_dns_hostnames": true,
                "tags": tags(&[("Name", stack)]),
            }),
        ),
        Resource::new(
            internet_gateway::KIND,
            "igw",
            json!({"tags": tags(&[("Name", stack)])}),
        ),
        Resource::new(
            internet_gateway_attachment::KIND,
            "igw-attachment",
            json!({"internet_gateway_id": reference("igw", "id"), "vpc_id": reference("vpc", "id")}),
        ),
        Resource::new(
            route_table::KIND,
            "rt-public",
            json!({"vpc_id": reference("vpc", "id"), "tags": tags(&[("Name", &format!("{stack}-public"))])}),
        ),
        Resource::new(
            route::KIND,
            "route-public-default",
            json!({
                "route_table_id": reference("rt-public", "id"),
                "destination_cidr_block": "0.0.0.0/0",
                "gateway_id": reference("igw", "id"),
            }),
        )
        .depends_on("igw-attachment"),
    ];

    let zone_key = |zone: &str| zone.chars().last().map(String::from).unwrap_or_default();
    let nat_zones: Vec<String> = match config.nat_mode {
        NatMode::Single => vec![zone_key(&subnets[0].zone)],
        NatMode::PerAz => subnets.iter().map(|s| zone_key(&s.zone)).collect(),
    };
    for s in &subnets {
        let z = zone_key(&s.zone);
        let public = format!("subnet-public-{z}");
        let private = format!("subnet-private-{z}");
        out.push(Resource::new(
            subnet::KIND,
            &public,
            json!({
                "vpc_id": reference("vpc", "id"),
                "cidr_block": s.public.to_string(),
                "availability_zone": s.zone,
                "map_public_ip_on_launch": true,
                "tags": tags(&[
                    ("Name", &format!("{stack}-public-{z}")),
                    ("kubernetes.io/role/elb", "1"),
                    (&cluster_tag, "shared"),
                ]),
            }),
        ));
        out.push(Resource::new(
            subnet::KIND,
            &private,
            json!({
                "vpc_id": reference("vpc", "id"),
                "cidr_block": s.private.to_string(),
                "availability_zone": s.zone,
                "map_public_ip_on_launch": false,
                "tags": tags(&[
                    ("Name", &format!("{stack}-private-{z}")),
                    ("kubernetes.io/role/internal-elb", "1"),
                    ("karpenter.sh/discovery", stack),
                    (&cluster_tag, "shared"),
                ]),
            }),
        ));
        out.push(Resource::new(
            route_table_association::KIND,
            format!("rta-public-{z}"),
            json!({"route_table_id": reference("rt-public", "id"), "subnet_id": reference(&public, "id")}),
        ));
        if nat_zones.contains(&z) {
            out.push(Resource::new(
                elastic_ip::KIND,
                format!("eip-nat-{z}"),
                json!({"tags": tags(&[("Name", &format!("{stack}-nat-{z}"))])}),
            ));
            // The gateway needs the internet gateway attached to route its traffic.
            out.push(
                Resource::new(
                    nat_gateway::KIND,
                    format!("nat-{z}"),
                    json!({
                        "subnet_id": reference(&public, "id"),
                        "allocation_id": reference(&format!("eip-nat-{z}"), "id"),
                        "tags": tags(&[("Name", &format!("{stack}-{z}"))]),
                    }),
                )
                .depends_on("igw-attachment"),
            );
        }
        let nat = if nat_zones.contains(&z) {
            z.clone()
        } else {
            nat_zones[0].clone()
        };
        out.push(Resource::new(
            route_table::KIND,
            format!("rt-private-{z}"),
            json!({"vpc_id": reference("vpc", "id"), "tags": tags(&[("Name", &format!("{stack}-private-{z}"))])}),
        ));
        out.push(Resource::new(
            route::KIND,
            format!("route-private-{z}-default"),
            json!({
                "route_table_id": reference(&format!("rt-private-{z}"), "id"),
                "destination_cidr_block": "0.0.0.0/0",
                "nat_gateway_id": reference(&format!("nat-{nat}"), "id"),
            }),
        ));
        out.push(Resource::new(
            route_table_association::KIND,
            format!("rta-private-{z}"),
            json!({
                "route_table_id": reference(&format!("rt-private-{z}"), "id"),
                "subnet_id": reference(&private, "id"),
            }),
        ));
    }

    let auto = config.eks_mode == EksMode::Auto;
    let cluster_policies: &[&str] = if auto {
        &[
            "AmazonEKSClusterPolicy",
            "AmazonEKSComputePolicy",
            "AmazonEKSBlockStoragePolicy",
            "AmazonEKSLoadBalancingPolicy",
            "AmazonEKSNetworkingPolicy",
        ]
    } else {
        &["AmazonEKSClusterPolicy"]
    };
    let node_policies: &[&str] = if auto {
        &[
            "AmazonEKSWorkerNodeMinimalPolicy",
            "AmazonEC2ContainerRegistryPullOnly",
        ]
    } else {
        &[
            "AmazonEKSWorkerNodePolicy",
            "AmazonEKS_CNI_Policy",
            "AmazonEC2ContainerRegistryReadOnly",
            "AmazonSSMManagedInstanceCore",
        ]
    };
    let trust = |service: &str, actions: &[&str]| {
        json!({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": actions}],
        })
    };
    let arns =
        |names: &[&str]| -> Vec<String> { names.iter().map(|n| format!("{MANAGED}{n}")).collect() };
    out.push(Resource::new(
        iam_role::KIND,
        "cluster-role",
        json!({
            "name": aws_name(&iam_prefix, "cluster", 64),
            // Auto Mode's controllers tag what they create with the session.
            "assume_role_policy": trust("eks.amazonaws.com", &["sts:AssumeRole", "sts:TagSession"]),
            "managed_policy_arns": arns(cluster_policies),
            "tags": tags(&[]),
        }),
    ));
    out.push(Resource::new(
        iam_role::KIND,
        "node-role",
        json!({
            "name": aws_name(&iam_prefix, "node", 64),
            "assume_role_policy": trust("ec2.amazonaws.com", &["sts:AssumeRole"]),
            "managed_policy_arns": arns(node_policies),
            "tags": tags(&[]),
        }),
    ));

    let private_ids = private_ids_of(&subnets, zone_key);
    let access = &config.endpoint_access;
    let mut cluster = json!({
        "name": stack,
        "version": config.kubernetes_version,
        "role_arn": reference("cluster-role", "arn"),
        "subnet_ids": private_ids,
        "endpoint_public_access": access.public,
        "endpoint_private_access": access.private,
        "public_access_cidrs": if access.public { access.public_cidrs.clone() } else { Vec::new() },
        "authentication_mode": "API_AND_CONFIG_MAP",
        "tags": tags(&[]),
    });
    if auto {
        cluster["auto_mode"] = json!({
            "node_role_arn": reference("node-role", "arn"),
            "node_pools": ["general-purpose", "system"],
        });
    }
    // What Kubernetes makes in AWS (load balancers, ENIs, Karpenter's instances) is swept
    // after the cluster is gone and before the network it lives in.
    let mut leftovers = Resource::new(
        cluster_leftovers::KIND,
        "cluster-leftovers",
        json!({"cluster_name": stack, "vpc_id": reference("vpc", "id")}),
    )
    .depends_on("igw-attachment");
    // Nodes need their default routes before they boot.
    let mut cluster =
        Resource::new(eks_cluster::KIND, "cluster", cluster).depends_on("cluster-leftovers");
    for s in &subnets {
        let z = zone_key(&s.zone);
        cluster = cluster
            .depends_on(format!("route-private-{z}-default"))
            .depends_on(format!("rta-private-{z}"));
        leftovers = leftovers
            .depends_on(format!("subnet-private-{z}"))
            .depends_on(format!("subnet-public-{z}"));
    }
    out.push(leftovers);
    out.push(cluster);
    out.push(Resource::new(
        oidc_provider::KIND,
        "oidc-provider",
        json!({
            "url": reference("cluster", "oidc_issuer"),
            "client_ids": ["sts.amazonaws.com"],
            "thumbprints": [OIDC_THUMBPRINT],
            "tags": tags(&[]),
        }),
    ));

    if !auto {
        let ng = &config.node_group_config;
        out.push(Resource::new(
            iam_instance_profile::KIND,
            "node-instance-profile",
            json!({
                "name": aws_name(&iam_prefix, "node", 128),
                "role_name": reference("node-role", "name"),
                "tags": tags(&[]),
            }),
        ));
        out.push(Resource::new(
            eks_nodegroup::KIND,
            "nodegroup-default",
            json!({
                "cluster_name": reference("cluster", "name"),
                "name": aws_name(stack, "default", 63),
                "node_role_arn": reference("node-role", "arn"),
                "subnet_ids": private_ids,
                "instance_types": ng.instance_types,
                "capacity_type": match ng.capacity_type {
                    CapacityType::OnDemand => "ON_DEMAND",
                    CapacityType::Spot => "SPOT",
                },
                "ami_type": if ng.instance_types.iter().any(|t| is_graviton(t)) { "AL2023_ARM_64_STANDARD" } else { "AL2023_x86_64_STANDARD" },
                "disk_size": ng.disk_size,
                "scaling": {"min_size": ng.min_size, "max_size": ng.max_size, "desired_size": ng.desired_size},
                "labels": ng.labels,
                "taints": ng.taints.iter().map(|t| json!({
                    "key": t.key,
                    "value": t.value,
                    "effect": match t.effect {
                        TaintEffect::NoSchedule => "NO_SCHEDULE",
                        TaintEffect::PreferNoSchedule => "PREFER_NO_SCHEDULE",
                        TaintEffect::NoExecute => "NO_EXECUTE",
                    },
                })).collect::<Vec<_>>(),
                "tags": tags(&[]),
            }),
        ));
    }
    let role_name = |suffix: &str| aws_name(&iam_prefix, suffix, 64);
    out.extend(crate::bootstrap::bootstrap(
        stack,
        config,
        role_name,
        &tags(&[]),
    ));
    Ok(out)
}

fn private_ids_of(
    subnets: &[byoc_model::SubnetPlan],
    zone_key: impl Fn(&str) -> String,
) -> Vec<Value> {
    subnets
        .iter()
        .map(|s| reference(&format!("subnet-private-{}", zone_key(&s.zone)), "id"))
        .collect()
}

/// Graviton families have a `g` after the generation digit (m7g, c6gn, r8g...).
fn is_graviton(instance_type: &str) -> bool {
    let family = instance_type.split('.').next().unwrap_or("");
    family
        .trim_start_matches(|c: char| c.is_ascii_alphabetic())
        .trim_start_matches(|c: char| c.is_ascii_digit())
        .starts_with('g')
}

#[cfg(test)]
mod tests {
    use super::*;
    use byoc_engine::Graph;

    fn config(extra: Value) -> EnvironmentConfig {
        let mut v = json!({"region": "us-east-1"});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        EnvironmentConfig::from_value(&v).unwrap()
    }

    fn names(resources: &[Resource]) -> Vec<&str> {
        resources.iter().map(|r| r.name.as_str()).collect()
    }

    #[test]
    fn managed_mode_graph() {
        let c = config(json!({"eks_mode": "managed", "az_count": 3, "nat_mode": "per_az"}));
        let r = environment("acme-dev", &c).unwrap();
        Graph::new(r.clone()).expect("a valid DAG");
        let n = names(&r);
        for expected in [
            "vpc",
            "nat-a",
            "nat-b",
            "nat-c",
            "subnet-private-c",
            "nodegroup-default",
            "node-instance-profile",
            "oidc-provider",
        ] {
            assert!(n.contains(&expected), "{expected} missing from {n:?}");
        }
        let ng = r.iter().find(|r| r.name == "nodegroup-default").unwrap();
        assert_eq!(ng.inputs["subnet_ids"].as_array().unwrap().len(), 3);
        assert_eq!(ng.inputs["ami_type"], "AL2023_x86_64_STANDARD");
        let cluster = r.iter().find(|r| r.name == "cluster").unwrap();
        assert!(cluster.inputs.get("auto_mode").is_none());
        let private_b = r.iter().find(|r| r.name == "subnet-private-b").unwrap();
        assert_eq!(
            private_b.inputs["tags"]["karpenter.sh/discovery"],
            "acme-dev"
        );
        assert_eq!(
            private_b.inputs["tags"]["kubernetes.io/role/internal-elb"],
            "1"
        );
        assert_eq!(private_b.inputs["cidr_block"], "10.0.64.0/18");
        let route_c = r
            .iter()
            .find(|r| r.name == "route-private-c-default")
            .unwrap();
        assert_eq!(route_c.inputs["nat_gateway_id"], reference("nat-c", "id"));
    }

    #[test]
    fn auto_mode_and_single_nat() {
        let r = environment("acme-dev", &config(json!({}))).unwrap();
        let n = names(&r);
        assert!(n.contains(&"nat-a") && !n.contains(&"nat-b"));
        assert!(!n.contains(&"nodegroup-default"));
        let route_b = r
            .iter()
            .find(|r| r.name == "route-private-b-default")
            .unwrap();
        assert_eq!(route_b.inputs["nat_gateway_id"], reference("nat-a", "id"));
        let cluster = r.iter().find(|r| r.name == "cluster").unwrap();
        assert_eq!(
            cluster.inputs["auto_mode"]["node_pools"],
            json!(["general-purpose", "system"])
        );
        let role = r.iter().find(|r| r.name == "cluster-role").unwrap();
        assert!(
            role.inputs["managed_policy_arns"]
                .to_string()
                .contains("AmazonEKSComputePolicy")
        );
    }

    #[test]
    fn long_stack_names_fit_aws_limits() {
        let stack = format!("{}-{}", "t".repeat(40), "e".repeat(21));
        let r = environment(&stack, &config(json!({"eks_mode": "managed"}))).unwrap();
        let role = r.iter().find(|r| r.name == "cluster-role").unwrap().inputs["name"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(role.len() <= 64 && role.ends_with("-cluster"), "{role}");
        let ng = r
            .iter()
            .find(|r| r.name == "nodegroup-default")
            .unwrap()
            .inputs["name"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(ng.len() <= 63 && ng.ends_with("-default"), "{ng}");
        assert_ne!(
            aws_name(&stack, "node", 64),
            aws_name(&format!("{stack}x"), "node", 64)
        );
        assert_eq!(aws_name("acme-dev", "cluster", 64), "acme-dev-cluster");
        // A cut name cannot be an uncut one of another stack: those hold no '_'.
        let cut = aws_name(&stack, "node", 64);
        assert!(cut.contains('_') && cut.len() <= 64, "{cut}");
    }

    /// The account-wide AWS names (IAM, SQS, EventBridge: `byoc-{stack}-...`) of a stack
    /// with every component. The cluster is named for the stack itself, which the store
    /// keeps unique; node group names are the cluster's own.
    fn aws_names(stack: &str) -> Vec<String> {
        let all = json!({"eks_mode": "managed", "components": {
            "karpenter": {}, "argocd": {}, "cert_manager": {}, "external_secrets": {}, "ingress_nginx": {}
        }});
        environment(stack, &config(all))
            .unwrap()
            .iter()
            .filter(|r| r.kind != crate::resources::helm_release::KIND)
            .filter_map(|r| r.inputs.get("name")?.as_str().map(str::to_string))
            .filter(|n| n.starts_with("byoc-"))
            .collect()
    }

    #[test]
    fn two_stacks_never_share_an_aws_name() {
        // `{stack}-{a}` = `{other}-{b}` for stacks `s` and `s-t` needs a suffix `a` = `t-b`:
        // no suffix may end with `-{another suffix}`.
        let suffixes: Vec<String> = aws_names("s")
            .into_iter()
            .map(|n| {
                n.strip_prefix("byoc-s-")
                    .expect("named for the stack")
                    .to_string()
            })
            .collect();
        assert!(suffixes.len() >= 8, "{suffixes:?}");
        for a in &suffixes {
            for b in &suffixes {
                assert!(
                    !a.ends_with(&format!("-{b}")),
                    "suffix {a:?} extends {b:?}: stacks s-x and s could share a name"
                );
            }
        }
        // The two tenants: co1 + prod-eu and co1-prod + eu would be one stack name
        // (the store refuses the second); different stack names never share an AWS name.
        let long = format!("{}-{}", "t".repeat(40), "e".repeat(21));
        let stacks = [
            "co1-prod-eu",
            "co1-prod-eu-x",
            "co1-prod",
            &long,
            &format!("{long}x"),
        ];
        let mut seen = std::collections::BTreeMap::new();
        for stack in stacks {
            for name in aws_names(stack) {
                if let Some(other) = seen.insert(name.clone(), stack) {
                    assert_eq!(other, stack, "{name} is named for both {other} and {stack}");
                }
            }
        }
    }

    #[test]
    fn graviton_types() {
        assert!(is_graviton("m7g.large"));
        assert!(is_graviton("c6gn.xlarge"));
        assert!(!is_graviton("m6i.large"));
        assert!(!is_graviton("g5.xlarge"));
    }
}
