//! The environment blueprint: an [`EnvironmentConfig`] becomes the engine's desired graph.
//! Every choice (names, CIDRs, zones) is made here, from the stack name and the config, so
//! the same config always gives the same graph. Each resource's inputs are its provider's
//! `Inputs` type ([`resource`]); a reference to another resource's output is an [`output`].
//!
//! The graph in layers, each its own builder: the network ([`network`]), IAM ([`iam`]), EKS
//! ([`eks`]) and the bootstrap components ([`crate::bootstrap`]).

use std::collections::{BTreeMap, BTreeSet};

use byoc_engine::{Lifecycle, Resource};
use byoc_model::{
    CapacityType, ConfigError, EksMode, EnvironmentConfig, NatMode, SubnetPlan, TRUST_ROLE_NAME,
    TaintEffect, boundary_policy_name,
};
use serde_json::json;

use crate::resources::cluster_leftovers::ClusterLeftovers;
use crate::resources::eks_cluster::{AutoMode, EksCluster};
use crate::resources::eks_nodegroup::{EksNodegroup, Scaling, Taint};
use crate::resources::elastic_ip::ElasticIp;
use crate::resources::iam_instance_profile::IamInstanceProfile;
use crate::resources::iam_role::IamRole;
use crate::resources::internet_gateway::InternetGateway;
use crate::resources::internet_gateway_attachment::InternetGatewayAttachment;
use crate::resources::nat_gateway::NatGateway;
use crate::resources::oidc_provider::OidcProvider;
use crate::resources::route::Route;
use crate::resources::route_table::RouteTable;
use crate::resources::route_table_association::RouteTableAssociation;
use crate::resources::subnet::Subnet;
use crate::resources::vpc::Vpc;
mod order;

use crate::resources::{
    cluster_leftovers, eks_cluster, eks_nodegroup, elastic_ip, iam_instance_profile, iam_role,
    internet_gateway, internet_gateway_attachment, nat_gateway, oidc_provider, output, resource,
    route, route_table, route_table_association, subnet, vpc,
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

/// What every builder of one environment knows: the stack, its config, its subnets and the
/// permissions boundary of the roles it creates.
pub(crate) struct Env<'a> {
    pub stack: &'a str,
    pub config: &'a EnvironmentConfig,
    subnets: Vec<SubnetPlan>,
    /// The trust template's boundary policy (its name), set on every role byoc creates.
    pub boundary: String,
}

impl Env<'_> {
    /// The environment's tags, with `extra`.
    pub fn tags(&self, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut all = self.config.tags.clone();
        all.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        all
    }

    /// `byoc-{stack}-{suffix}` within IAM's 64 characters: the customer's trust role may
    /// manage only IAM roles and profiles named `byoc-*`.
    pub fn role_name(&self, suffix: &str) -> String {
        aws_name(&format!("byoc-{}", self.stack), suffix, 64)
    }

    pub fn auto(&self) -> bool {
        self.config.eks_mode == EksMode::Auto
    }

    /// The zones' keys (`a`, `b`, ...), in order.
    fn zones(&self) -> impl Iterator<Item = String> + '_ {
        self.subnets.iter().map(|s| zone_key(&s.zone))
    }

    /// The zones with a NAT gateway of their own.
    fn nat_zones(&self) -> Vec<String> {
        match self.config.nat_mode {
            NatMode::Single => self.zones().take(1).collect(),
            NatMode::PerAz => self.zones().collect(),
        }
    }

    /// The private subnets' ids, one per zone.
    fn private_subnet_ids(&self) -> Vec<String> {
        self.zones()
            .map(|z| output(&format!("subnet-private-{z}"), "id"))
            .collect()
    }
}

fn zone_key(zone: &str) -> String {
    zone.chars().last().map(String::from).unwrap_or_default()
}

/// The desired resources of `stack` for `config`, deployed through the trust template's
/// default role ([`TRUST_ROLE_NAME`]).
pub fn environment(stack: &str, config: &EnvironmentConfig) -> Result<Vec<Resource>, ConfigError> {
    environment_for_role(stack, config, TRUST_ROLE_NAME)
}

/// The desired resources of `stack` for `config`, deployed through trust role `trust_role`:
/// every role they hold is under that role's boundary ([`boundary_policy_name`]).
pub fn environment_for_role(
    stack: &str,
    config: &EnvironmentConfig,
    trust_role: &str,
) -> Result<Vec<Resource>, ConfigError> {
    config.validate()?;
    let env = Env {
        stack,
        config,
        subnets: config.subnets()?,
        boundary: boundary_policy_name(trust_role),
    };
    let mut out = network(&env);
    out.extend(iam(&env));
    out.extend(eks(&env));
    out.extend(crate::bootstrap::bootstrap(&env));
    Ok(order::apply(out)
        .into_iter()
        .map(guard_customer_state)
        .collect())
}

/// What the customer's workloads and data live on: replacing or deleting one in a deploy
/// takes an approved plan.
const GUARDED: [&str; 4] = ["vpc", "cluster", "oidc-provider", "nodegroup-default"];

fn guard_customer_state(r: Resource) -> Resource {
    if GUARDED.contains(&r.name.as_str()) {
        let lifecycle = Lifecycle {
            guard: true,
            ..r.lifecycle
        };
        r.lifecycle(lifecycle)
    } else {
        r
    }
}

/// The VPC, its internet gateway and public route table, and each zone's subnets and routes.
fn network(env: &Env) -> Vec<Resource> {
    let stack = env.stack;
    let mut out = vec![
        resource::<Vpc>(
            "vpc",
            &vpc::Inputs {
                cidr_block: env.config.vpc_cidr.clone(),
                enable_dns_support: true,
                enable_dns_hostnames: true,
                tags: env.tags(&[("Name", stack)]),
            },
        ),
        resource::<InternetGateway>(
            "igw",
            &internet_gateway::Inputs {
                tags: env.tags(&[("Name", stack)]),
            },
        ),
        resource::<InternetGatewayAttachment>(
            "igw-attachment",
            &internet_gateway_attachment::Inputs {
                internet_gateway_id: output("igw", "id"),
                vpc_id: output("vpc", "id"),
            },
        ),
        resource::<RouteTable>(
            "rt-public",
            &route_table::Inputs {
                vpc_id: output("vpc", "id"),
                tags: env.tags(&[("Name", &format!("{stack}-public"))]),
            },
        ),
        default_route("route-public-default", "rt-public", Some("igw"), None),
    ];
    let nat_zones = env.nat_zones();
    for (s, z) in env.subnets.iter().zip(env.zones()) {
        out.extend(subnets(env, s, &z));
        if nat_zones.contains(&z) {
            out.extend(nat(env, &z));
        }
        // A zone without a NAT gateway of its own uses the first zone's.
        let nat = if nat_zones.contains(&z) {
            &z
        } else {
            &nat_zones[0]
        };
        out.extend(private_routing(env, &z, nat));
    }
    out
}

/// A zone's public and private subnets, the public one in the public route table.
fn subnets(env: &Env, s: &SubnetPlan, z: &str) -> Vec<Resource> {
    let stack = env.stack;
    let cluster_tag = format!("kubernetes.io/cluster/{stack}");
    let subnet = |public: bool, cidr: String, tags: BTreeMap<String, String>| subnet::Inputs {
        vpc_id: output("vpc", "id"),
        cidr_block: cidr,
        availability_zone: s.zone.clone(),
        map_public_ip_on_launch: public,
        tags,
    };
    let public = format!("subnet-public-{z}");
    vec![
        resource::<Subnet>(
            &public,
            &subnet(
                true,
                s.public.to_string(),
                env.tags(&[
                    ("Name", &format!("{stack}-public-{z}")),
                    ("kubernetes.io/role/elb", "1"),
                    (&cluster_tag, "shared"),
                ]),
            ),
        ),
        resource::<Subnet>(
            format!("subnet-private-{z}"),
            &subnet(
                false,
                s.private.to_string(),
                env.tags(&[
                    ("Name", &format!("{stack}-private-{z}")),
                    ("kubernetes.io/role/internal-elb", "1"),
                    ("karpenter.sh/discovery", stack),
                    (&cluster_tag, "shared"),
                ]),
            ),
        ),
        association(&format!("rta-public-{z}"), "rt-public", &public),
    ]
}

/// A zone's NAT gateway (in its public subnet) with its Elastic IP.
fn nat(env: &Env, z: &str) -> Vec<Resource> {
    let stack = env.stack;
    let eip = format!("eip-nat-{z}");
    vec![
        resource::<ElasticIp>(
            &eip,
            &elastic_ip::Inputs {
                tags: env.tags(&[("Name", &format!("{stack}-nat-{z}"))]),
            },
        ),
        resource::<NatGateway>(
            format!("nat-{z}"),
            &nat_gateway::Inputs {
                subnet_id: output(&format!("subnet-public-{z}"), "id"),
                allocation_id: output(&eip, "id"),
                tags: env.tags(&[("Name", &format!("{stack}-{z}"))]),
            },
        ),
    ]
}

/// A zone's private route table, its default route through NAT gateway `nat`, and the
/// private subnet in it.
fn private_routing(env: &Env, z: &str, nat: &str) -> Vec<Resource> {
    let table = format!("rt-private-{z}");
    vec![
        resource::<RouteTable>(
            &table,
            &route_table::Inputs {
                vpc_id: output("vpc", "id"),
                tags: env.tags(&[("Name", &format!("{}-private-{z}", env.stack))]),
            },
        ),
        default_route(
            &format!("route-private-{z}-default"),
            &table,
            None,
            Some(&format!("nat-{nat}")),
        ),
        association(
            &format!("rta-private-{z}"),
            &table,
            &format!("subnet-private-{z}"),
        ),
    ]
}

/// A route to anywhere in route table `table`, through internet gateway `gateway` or NAT
/// gateway `nat`.
fn default_route(name: &str, table: &str, gateway: Option<&str>, nat: Option<&str>) -> Resource {
    resource::<Route>(
        name,
        &route::Inputs {
            route_table_id: output(table, "id"),
            destination_cidr_block: "0.0.0.0/0".into(),
            gateway_id: gateway.map(|g| output(g, "id")),
            nat_gateway_id: nat.map(|n| output(n, "id")),
        },
    )
}

fn association(name: &str, table: &str, subnet: &str) -> Resource {
    resource::<RouteTableAssociation>(
        name,
        &route_table_association::Inputs {
            route_table_id: output(table, "id"),
            subnet_id: output(subnet, "id"),
        },
    )
}

/// The cluster's and the nodes' roles with AWS's managed policies (Auto Mode's set in
/// `auto`), and in `managed` mode the nodes' instance profile.
fn iam(env: &Env) -> Vec<Resource> {
    let (cluster_policies, node_policies): (&[&str], &[&str]) = if env.auto() {
        (
            &[
                "AmazonEKSClusterPolicy",
                "AmazonEKSComputePolicy",
                "AmazonEKSBlockStoragePolicy",
                "AmazonEKSLoadBalancingPolicy",
                "AmazonEKSNetworkingPolicy",
            ],
            &[
                "AmazonEKSWorkerNodeMinimalPolicy",
                "AmazonEC2ContainerRegistryPullOnly",
            ],
        )
    } else {
        (
            &["AmazonEKSClusterPolicy"],
            &[
                "AmazonEKSWorkerNodePolicy",
                "AmazonEKS_CNI_Policy",
                "AmazonEC2ContainerRegistryReadOnly",
                "AmazonSSMManagedInstanceCore",
            ],
        )
    };
    let role = |name: &str, suffix: &str, service: &str, actions: &[&str], policies: &[&str]| {
        resource::<IamRole>(
            name,
            &iam_role::Inputs {
                name: env.role_name(suffix),
                assume_role_policy: json!({
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": actions}],
                }),
                managed_policy_arns: policies.iter().map(|p| format!("{MANAGED}{p}")).collect(),
                tags: env.tags(&[]),
                permissions_boundary: Some(env.boundary.clone()),
                ..iam_role::Inputs::default()
            },
        )
    };
    let mut out = vec![
        // Auto Mode's controllers tag what they create with the session.
        role(
            "cluster-role",
            "cluster",
            "eks.amazonaws.com",
            &["sts:AssumeRole", "sts:TagSession"],
            cluster_policies,
        ),
        role(
            "node-role",
            "node",
            "ec2.amazonaws.com",
            &["sts:AssumeRole"],
            node_policies,
        ),
    ];
    if !env.auto() {
        out.push(resource::<IamInstanceProfile>(
            "node-instance-profile",
            &iam_instance_profile::Inputs {
                name: aws_name(&format!("byoc-{}", env.stack), "node", 128),
                role_name: output("node-role", "name"),
                tags: env.tags(&[]),
            },
        ));
    }
    out
}

/// The EKS cluster (Auto Mode's compute, block storage and load balancing in `auto`), the
/// sweep of what it leaves in AWS, its OIDC provider, and in `managed` mode its node group.
fn eks(env: &Env) -> Vec<Resource> {
    let stack = env.stack;
    let access = &env.config.endpoint_access;
    let cluster = resource::<EksCluster>(
        "cluster",
        &eks_cluster::Inputs {
            name: stack.to_string(),
            version: env.config.kubernetes_version.clone(),
            role_arn: output("cluster-role", "arn"),
            subnet_ids: env.private_subnet_ids(),
            endpoint_public_access: access.public,
            endpoint_private_access: access.private,
            public_access_cidrs: if access.public {
                access.public_cidrs.clone()
            } else {
                Vec::new()
            },
            authentication_mode: "API_AND_CONFIG_MAP".into(),
            auto_mode: env.auto().then(|| AutoMode {
                node_role_arn: output("node-role", "arn"),
                node_pools: vec!["general-purpose".into(), "system".into()],
            }),
            tags: env.tags(&[]),
        },
    );
    // What Kubernetes makes in AWS (load balancers, ENIs, Karpenter's instances) is swept
    // after the cluster is gone and before the network it lives in.
    let leftovers = resource::<ClusterLeftovers>(
        "cluster-leftovers",
        &cluster_leftovers::Inputs {
            cluster_name: stack.to_string(),
            vpc_id: output("vpc", "id"),
        },
    );
    let mut out = vec![
        leftovers,
        cluster,
        resource::<OidcProvider>(
            "oidc-provider",
            &oidc_provider::Inputs {
                url: output("cluster", "oidc_issuer"),
                client_ids: BTreeSet::from(["sts.amazonaws.com".to_string()]),
                thumbprints: vec![OIDC_THUMBPRINT.to_string()],
                tags: env.tags(&[]),
            },
        ),
    ];
    if !env.auto() {
        out.push(node_group(env));
    }
    out
}

/// The managed node group of `managed` mode. What EKS cannot change in place (instance
/// types, disk, capacity type, AMI type, subnets, node role) is in its AWS name (a hash of
/// it), so a change of any of it makes a new group beside the old one: created first and
/// waited for until ACTIVE, then the old one is deleted (its nodes drained by EKS), so the
/// cluster never runs without a node group. Its Kubernetes version is the config's, applied
/// after the cluster's upgrade (it depends on the cluster).
fn node_group(env: &Env) -> Resource {
    let ng = &env.config.node_group_config;
    // EKS's API takes i32; the config's bounds are far below.
    let int = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    let capacity_type = match ng.capacity_type {
        CapacityType::OnDemand => "ON_DEMAND",
        CapacityType::Spot => "SPOT",
    };
    let ami_type = if ng.instance_types.iter().any(|t| is_graviton(t)) {
        "AL2023_ARM_64_STANDARD"
    } else {
        "AL2023_x86_64_STANDARD"
    };
    let disk_size = int(ng.disk_size).to_string();
    let node_role = env.role_name("node");
    let subnets: Vec<String> = env
        .subnets
        .iter()
        .map(|s| format!("{}={}", s.zone, s.private))
        .collect();
    let immutable = [capacity_type, ami_type, &disk_size, &node_role]
        .into_iter()
        .chain(["instance_types"])
        .chain(ng.instance_types.iter().map(String::as_str))
        .chain(["subnets"])
        .chain(subnets.iter().map(String::as_str));
    let hash = byoc_engine::stable_hash(immutable);
    let lifecycle = Lifecycle {
        create_before_destroy: true,
        ..Lifecycle::default()
    };
    resource::<EksNodegroup>(
        "nodegroup-default",
        &eks_nodegroup::Inputs {
            cluster_name: output("cluster", "name"),
            name: aws_name(env.stack, &format!("default-{}", &hash[..8]), 63),
            node_role_arn: output("node-role", "arn"),
            subnet_ids: env.private_subnet_ids(),
            instance_types: ng.instance_types.clone(),
            capacity_type: capacity_type.into(),
            ami_type: ami_type.into(),
            disk_size: int(ng.disk_size),
            version: env.config.kubernetes_version.clone(),
            scaling: Scaling {
                min_size: int(ng.min_size),
                max_size: int(ng.max_size),
                desired_size: int(ng.desired_size),
            },
            labels: ng.labels.clone(),
            taints: ng
                .taints
                .iter()
                .map(|t| Taint {
                    key: t.key.clone(),
                    value: t.value.clone(),
                    effect: match t.effect {
                        TaintEffect::NoSchedule => "NO_SCHEDULE",
                        TaintEffect::PreferNoSchedule => "PREFER_NO_SCHEDULE",
                        TaintEffect::NoExecute => "NO_EXECUTE",
                    }
                    .into(),
                })
                .collect(),
            tags: env.tags(&[]),
        },
    )
    .lifecycle(lifecycle)
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
    use byoc_engine::{Graph, reference};
    use serde_json::Value;
    use std::time::Duration;

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
        assert!(ng.len() <= 63 && ng.contains("-default-"), "{ng}");
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

    /// The shape of the graph of a managed environment with every component and of an auto
    /// one (sorted by name: names, kinds, input keys, references, dependencies); a change of
    /// it is a change of what is deployed. `BYOC_BLESS=1` writes it anew.
    #[test]
    fn graph_shape_is_unchanged() {
        let managed = json!({
            "eks_mode": "managed", "az_count": 3, "nat_mode": "per_az", "tags": {"team": "x"},
            "node_group_config": {"taints": [{"key": "k", "effect": "no_schedule"}]},
            "components": {
                "karpenter": {}, "argocd": {}, "cert_manager": {"dns01_hosted_zone_ids": ["Z1"]},
                "external_secrets": {}, "ingress_nginx": {},
            },
        });
        let mut text = String::new();
        for (stack, extra) in [("acme-prod", managed), ("acme-dev", json!({}))] {
            let mut resources = environment(stack, &config(extra)).unwrap();
            resources.sort_by(|a, b| a.name.cmp(&b.name));
            text.push_str(&format!("# {stack}\n"));
            for r in &resources {
                let keys: Vec<&str> = r
                    .inputs
                    .as_object()
                    .unwrap()
                    .keys()
                    .map(|k| k.as_str())
                    .collect();
                let refs: Vec<String> = byoc_engine::references(&r.inputs)
                    .into_iter()
                    .map(|(name, path)| format!("{name}.{path}"))
                    .collect();
                text.push_str(&format!(
                    "{} {} inputs={} refs={} after={}\n",
                    r.name,
                    r.kind,
                    keys.join(","),
                    refs.join(","),
                    r.depends_on.join(","),
                ));
            }
        }
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/blueprint.snapshot");
        if std::env::var_os("BYOC_BLESS").is_some() {
            std::fs::write(path, &text).unwrap();
        }
        assert_eq!(text, std::fs::read_to_string(path).unwrap());
    }

    /// Every input of the graph parses as its provider's `Inputs` and passes its checks, as
    /// the planner sees it (outputs not known yet).
    #[test]
    fn inputs_pass_their_providers_checks() {
        let all = json!({"eks_mode": "managed", "components": {
            "karpenter": {}, "argocd": {}, "cert_manager": {"dns01_hosted_zone_ids": ["Z1"]},
            "external_secrets": {}, "ingress_nginx": {}
        }});
        for extra in [all, json!({})] {
            crate::resources::tests::plan_offline(environment("acme-dev", &config(extra)).unwrap())
                .expect("the blueprint's inputs pass");
        }
    }

    /// Every role of an environment with every component, in both modes, in whichever
    /// trust role's name.
    fn all_roles(trust_role: &str) -> Vec<Value> {
        let all = json!({"components": {
            "karpenter": {}, "argocd": {}, "cert_manager": {"dns01_hosted_zone_ids": ["Z1"]},
            "external_secrets": {}, "ingress_nginx": {}
        }});
        let mut roles = Vec::new();
        for mode in ["managed", "auto"] {
            let mut c = all.clone();
            c["eks_mode"] = json!(mode);
            if mode == "auto" {
                c["components"].as_object_mut().unwrap().remove("karpenter");
            }
            for r in environment_for_role("acme-dev", &config(c), trust_role).unwrap() {
                if r.kind == iam_role::KIND {
                    roles.push(r.inputs);
                }
            }
        }
        roles
    }

    /// The trust template lets byoc's role create roles, and give them policies, only under
    /// its boundary: every role byoc makes carries it.
    #[test]
    fn every_role_is_under_the_trust_roles_boundary() {
        let roles = all_roles("acme-byoc");
        assert!(roles.len() >= 7, "{}", roles.len());
        for role in &roles {
            assert_eq!(
                role["permissions_boundary"], "acme-byoc-boundary",
                "{}",
                role["name"]
            );
        }
    }

    /// The AWS managed policies byoc attaches are exactly those the trust template lets its
    /// role attach (iam:PolicyARN): one missing there fails a deploy, one too many there is
    /// a grant nothing uses.
    #[test]
    fn the_trust_template_allows_attaching_exactly_the_managed_policies_byoc_attaches() {
        let used: BTreeSet<String> = all_roles(TRUST_ROLE_NAME)
            .iter()
            .filter_map(|r| r.get("managed_policy_arns")?.as_array().cloned())
            .flatten()
            .map(|arn| {
                arn.as_str()
                    .unwrap()
                    .trim_start_matches(MANAGED)
                    .to_string()
            })
            .collect();
        let template = include_str!("../../cfn-templates/customer-iam-role.yaml");
        let marker = ":iam::aws:policy/";
        let allowed: BTreeSet<String> = template
            .match_indices(marker)
            .map(|(at, _)| {
                let rest = &template[at + marker.len()..];
                rest[..rest.find('"').unwrap()].to_string()
            })
            .collect();
        assert_eq!(used, allowed);
    }

    #[test]
    fn what_customers_run_on_is_guarded() {
        for (mode, expected) in [
            (
                "managed",
                vec!["cluster", "nodegroup-default", "oidc-provider", "vpc"],
            ),
            ("auto", vec!["cluster", "oidc-provider", "vpc"]),
        ] {
            let resources = environment("acme-dev", &config(json!({"eks_mode": mode}))).unwrap();
            let mut guarded: Vec<&str> = resources
                .iter()
                .filter(|r| r.lifecycle.guard)
                .map(|r| r.name.as_str())
                .collect();
            guarded.sort();
            assert_eq!(guarded, expected, "{mode}");
        }
    }

    fn nodegroup(extra: Value) -> Resource {
        let mut c = json!({"eks_mode": "managed", "kubernetes_version": "1.31"});
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        environment("acme-dev", &config(c))
            .unwrap()
            .into_iter()
            .find(|r| r.name == "nodegroup-default")
            .unwrap()
    }

    /// What EKS cannot change in place names the group anew, so that the new one can exist
    /// beside the old (create-before-destroy); what it can (scaling, labels, taints, the
    /// version) keeps the name. The version is the config's, after the cluster's.
    #[test]
    fn node_group_names_follow_what_needs_a_new_group() {
        let base = nodegroup(json!({}));
        let name = |r: &Resource| r.inputs["name"].as_str().unwrap().to_string();
        assert!(
            name(&base).starts_with("acme-dev-default-") && name(&base).len() == 25,
            "{}",
            name(&base)
        );
        assert!(base.lifecycle.create_before_destroy && base.lifecycle.guard);
        assert_eq!(base.inputs["version"], "1.31");
        // Upgraded after the cluster: its name is a reference to the cluster's.
        assert_eq!(base.inputs["cluster_name"], reference("cluster", "name"));
        for same in [
            json!({"kubernetes_version": "1.32"}),
            json!({"node_group_config": {"desired_size": 3, "max_size": 4}}),
            json!({"node_group_config": {"labels": {"a": "b"}}}),
            json!({"node_group_config": {"taints": [{"key": "k", "effect": "no_schedule"}]}}),
            json!({"tags": {"team": "x"}}),
        ] {
            assert_eq!(name(&nodegroup(same.clone())), name(&base), "{same}");
        }
        for new in [
            json!({"node_group_config": {"instance_types": ["m7i.large"]}}),
            json!({"node_group_config": {"disk_size": 100}}),
            json!({"node_group_config": {"capacity_type": "spot"}}),
            json!({"node_group_config": {"instance_types": ["m7g.large"]}}),
            json!({"az_count": 3}),
            json!({"vpc_cidr": "10.1.0.0/16"}),
        ] {
            assert_ne!(name(&nodegroup(new.clone())), name(&base), "{new}");
        }
    }

    /// Every component the mode allows (Karpenter is managed mode's).
    fn full(mode: &str) -> Vec<Resource> {
        let mut components = json!({
            "argocd": {}, "cert_manager": {}, "external_secrets": {}, "ingress_nginx": {}
        });
        if mode == "managed" {
            components["karpenter"] = json!({});
        }
        let c = config(json!({"eks_mode": mode, "az_count": 3, "components": components}));
        environment("acme-dev", &c).unwrap()
    }

    /// Every ordering edge is one of `order`'s rules (a builder adding its own fails here),
    /// and every rule orders something.
    #[test]
    fn every_ordering_edge_has_its_rule() {
        let mut used = BTreeSet::new();
        for mode in ["managed", "auto"] {
            let resources = full(mode);
            let by_name = |n: &str| resources.iter().find(|r| r.name == n).unwrap();
            for r in &resources {
                for first in &r.depends_on {
                    let rule = order::explains(r, by_name(first)).unwrap_or_else(|| {
                        panic!("{mode}: no rule orders {} after {first}", r.name)
                    });
                    used.insert(rule.why);
                }
            }
        }
        for rule in order::RULES {
            assert!(used.contains(rule.why), "rule orders nothing: {rule:?}");
        }
    }

    /// Everything `name` waits for, directly or not.
    fn upstream<'g>(graph: &'g Graph, name: &str) -> BTreeSet<&'g str> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![name];
        while let Some(n) = todo.pop() {
            for d in graph.dependencies(n) {
                if seen.insert(d) {
                    todo.push(d);
                }
            }
        }
        seen
    }

    /// Only what launches nodes waits for the NAT gateways (and so outlives them on
    /// destroy): the cluster starts once its subnets and role exist, and with AWS's typical
    /// times the longest chain is the cluster's and the node group's, not the gateway's.
    #[test]
    fn only_what_launches_nodes_waits_for_egress() {
        for mode in ["managed", "auto"] {
            let graph = Graph::new(full(mode)).unwrap();
            let egress: Vec<&str> = graph
                .resources()
                .iter()
                .map(|r| r.name.as_str())
                .filter(|n| n.starts_with("nat-") || n.starts_with("route-private-"))
                .collect();
            let cluster = upstream(&graph, "cluster");
            assert!(
                egress.iter().all(|e| !cluster.contains(e)),
                "{mode}: {cluster:?}"
            );
            let launchers = graph.resources().iter().filter(|r| {
                r.name == "nodegroup-default"
                    || r.kind == crate::resources::helm_release::KIND
                    || r.kind == crate::resources::cluster_drain::KIND
            });
            for r in launchers {
                let up = upstream(&graph, &r.name);
                for e in &egress {
                    assert!(up.contains(e), "{mode}: {} does not wait for {e}", r.name);
                }
            }
        }
        let graph =
            Graph::new(environment("acme-dev", &config(json!({"eks_mode": "managed"}))).unwrap())
                .unwrap();
        let typical = |r: &Resource| {
            Duration::from_secs(match r.kind.as_str() {
                crate::resources::nat_gateway::KIND => 100,
                crate::resources::eks_cluster::KIND => 600,
                crate::resources::eks_nodegroup::KIND => 180,
                _ => 0,
            })
        };
        assert_eq!(graph.critical_path(typical), Duration::from_secs(780));
    }

    #[test]
    fn graviton_types() {
        assert!(is_graviton("m7g.large"));
        assert!(is_graviton("c6gn.xlarge"));
        assert!(!is_graviton("m6i.large"));
        assert!(!is_graviton("g5.xlarge"));
    }
}
