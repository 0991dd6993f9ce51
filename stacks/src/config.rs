//! The environment config schema: what an engineer saves for a tenant's environment, and
//! its validation. Every error names the field it is about.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::components::Components;

/// One tenant environment: its network, its cluster and its nodes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentConfig {
    /// AWS region, e.g. `eu-west-1`.
    pub region: String,
    /// IPv4 CIDR of the VPC, prefix /16 to /24 (it is split into the subnets).
    #[serde(default = "default_vpc_cidr")]
    pub vpc_cidr: String,
    /// Availability zones used, 2 or 3.
    #[serde(default = "default_az_count")]
    pub az_count: u8,
    /// Explicit zone names (default: the region's `a`, `b`, `c`); as many as `az_count`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zones: Option<Vec<String>>,
    #[serde(default)]
    pub nat_mode: NatMode,
    #[serde(default)]
    pub eks_mode: EksMode,
    /// `1.NN`.
    #[serde(default = "default_kubernetes_version")]
    pub kubernetes_version: String,
    #[serde(default)]
    pub endpoint_access: EndpointAccess,
    /// The managed node group (`eks_mode: managed`; EKS Auto Mode manages its own nodes).
    #[serde(default)]
    pub node_group_config: NodeGroupConfig,
    /// Extra tags on every resource.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Bootstrap components (Helm releases); none unless listed.
    #[serde(default, skip_serializing_if = "is_default")]
    pub components: Components,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NatMode {
    /// One NAT gateway for every zone: cheaper, one zone's outage cuts egress.
    #[default]
    Single,
    PerAz,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EksMode {
    /// EKS Auto Mode: AWS runs compute, block storage and load balancing.
    #[default]
    Auto,
    /// Managed node groups, with Karpenter for the rest.
    Managed,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointAccess {
    pub public: bool,
    pub private: bool,
    /// Who may reach the public endpoint.
    pub public_cidrs: Vec<String>,
}

impl Default for EndpointAccess {
    fn default() -> EndpointAccess {
        EndpointAccess {
            public: true,
            private: true,
            public_cidrs: vec!["0.0.0.0/0".into()],
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapacityType {
    #[default]
    OnDemand,
    Spot,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeGroupConfig {
    pub desired_size: u32,
    pub min_size: u32,
    pub max_size: u32,
    pub instance_types: Vec<String>,
    #[serde(default)]
    pub capacity_type: CapacityType,
    /// Root volume, GiB.
    pub disk_size: u32,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub taints: Vec<Taint>,
}

impl Default for NodeGroupConfig {
    fn default() -> NodeGroupConfig {
        NodeGroupConfig {
            desired_size: 2,
            min_size: 1,
            max_size: 3,
            instance_types: vec!["m6i.large".into()],
            capacity_type: CapacityType::OnDemand,
            disk_size: 50,
            labels: BTreeMap::new(),
            taints: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Taint {
    pub key: String,
    #[serde(default)]
    pub value: String,
    pub effect: TaintEffect,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

fn default_vpc_cidr() -> String {
    "10.0.0.0/16".into()
}

fn default_az_count() -> u8 {
    2
}

fn default_kubernetes_version() -> String {
    "1.32".into()
}

/// A config that is not valid: which field, and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    /// Dotted path, e.g. `node_group_config.min_size`.
    pub field: String,
    pub message: String,
}

pub(crate) fn invalid(field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        message: message.into(),
    }
}

/// The subnet layout of a VPC: for each zone, a private and a public subnet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubnetPlan {
    pub zone: String,
    pub private: Ipv4Net,
    pub public: Ipv4Net,
}

impl EnvironmentConfig {
    /// Parses and validates a config as saved through the API.
    pub fn from_value(value: &Value) -> Result<EnvironmentConfig, ConfigError> {
        let config: EnvironmentConfig = serde_path_to_error::deserialize(value).map_err(|e| {
            let field = e.path().to_string();
            let field = if field == "." { String::new() } else { field };
            invalid(&field, e.into_inner().to_string())
        })?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if !crate::model::is_region(&self.region) {
            return Err(invalid(
                "region",
                format!(
                    "{:?} is not an AWS region name such as eu-west-1",
                    self.region
                ),
            ));
        }
        let vpc = self.vpc()?;
        if !(16..=24).contains(&vpc.prefix_len()) {
            return Err(invalid(
                "vpc_cidr",
                format!(
                    "{} has prefix /{}: use /16 to /24 (AWS allows /16 to /28, and byoc splits it into subnets down to /{})",
                    vpc,
                    vpc.prefix_len(),
                    vpc.prefix_len() + 4
                ),
            ));
        }
        if !(2..=3).contains(&self.az_count) {
            return Err(invalid(
                "az_count",
                format!("{} is out of range: use 2 or 3", self.az_count),
            ));
        }
        if let Some(zones) = &self.availability_zones {
            if zones.len() != usize::from(self.az_count) {
                return Err(invalid(
                    "availability_zones",
                    format!(
                        "lists {} zones but az_count is {}",
                        zones.len(),
                        self.az_count
                    ),
                ));
            }
            for (i, zone) in zones.iter().enumerate() {
                let suffix = zone.strip_prefix(self.region.as_str());
                if !suffix
                    .is_some_and(|s| s.len() == 1 && s.chars().all(|c| c.is_ascii_lowercase()))
                {
                    return Err(invalid(
                        &format!("availability_zones[{i}]"),
                        format!("{zone:?} is not a zone of region {}", self.region),
                    ));
                }
                if zones[..i].contains(zone) {
                    return Err(invalid(
                        &format!("availability_zones[{i}]"),
                        format!("{zone:?} is listed twice: subnets go in distinct zones"),
                    ));
                }
            }
        }
        let version_ok = self
            .kubernetes_version
            .strip_prefix("1.")
            .is_some_and(|minor| {
                (1..=3).contains(&minor.len()) && minor.chars().all(|c| c.is_ascii_digit())
            });
        if !version_ok {
            return Err(invalid(
                "kubernetes_version",
                format!(
                    "{:?} is not a version such as 1.32",
                    self.kubernetes_version
                ),
            ));
        }
        let access = &self.endpoint_access;
        if !access.public && !access.private {
            return Err(invalid(
                "endpoint_access",
                "public and private are both off: the cluster would be unreachable",
            ));
        }
        for (i, cidr) in access.public_cidrs.iter().enumerate() {
            parse_cidr(&format!("endpoint_access.public_cidrs[{i}]"), cidr)?;
        }
        self.validate_node_group()?;
        for (key, value) in &self.tags {
            let field = format!("tags.{key}");
            if key.is_empty() || key.len() > 128 || value.len() > 256 {
                return Err(invalid(
                    &field,
                    "tag keys have 1 to 128 characters, values at most 256",
                ));
            }
            if key.starts_with("aws:") || key.starts_with("byoc:") {
                return Err(invalid(&field, "the aws: and byoc: prefixes are reserved"));
            }
        }
        // AWS allows 50 tags; byoc adds its own three and Kubernetes discovery tags.
        if self.tags.len() > 40 {
            return Err(invalid("tags", "at most 40 tags"));
        }
        self.components.validate(self.eks_mode)
    }

    fn validate_node_group(&self) -> Result<(), ConfigError> {
        let ng = &self.node_group_config;
        let f = |name: &str| format!("node_group_config.{name}");
        if ng.max_size == 0 || ng.max_size > 450 {
            return Err(invalid(&f("max_size"), "use 1 to 450"));
        }
        if ng.min_size > ng.max_size {
            return Err(invalid(
                &f("min_size"),
                format!("{} is greater than max_size {}", ng.min_size, ng.max_size),
            ));
        }
        if ng.desired_size < ng.min_size || ng.desired_size > ng.max_size {
            return Err(invalid(
                &f("desired_size"),
                format!(
                    "{} is outside min_size..max_size ({}..{})",
                    ng.desired_size, ng.min_size, ng.max_size
                ),
            ));
        }
        if ng.instance_types.is_empty() {
            return Err(invalid(&f("instance_types"), "list at least one"));
        }
        for (i, t) in ng.instance_types.iter().enumerate() {
            let ok = t.split_once('.').is_some_and(|(family, size)| {
                !family.is_empty()
                    && !size.is_empty()
                    && t.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-'
                    })
            });
            if !ok {
                return Err(invalid(
                    &format!("node_group_config.instance_types[{i}]"),
                    format!("{t:?} is not an instance type such as m6i.large"),
                ));
            }
        }
        if !(20..=16384).contains(&ng.disk_size) {
            return Err(invalid(&f("disk_size"), "use 20 to 16384 GiB"));
        }
        Ok(())
    }

    fn vpc(&self) -> Result<Ipv4Net, ConfigError> {
        parse_cidr("vpc_cidr", &self.vpc_cidr)
    }

    pub fn zones(&self) -> Vec<String> {
        match &self.availability_zones {
            Some(zones) => zones.clone(),
            None => ["a", "b", "c"][..usize::from(self.az_count)]
                .iter()
                .map(|s| format!("{}{s}", self.region))
                .collect(),
        }
    }

    /// Deterministic subnets: the VPC's first three quarters give the private subnets (one a
    /// zone), the last quarter is cut in four for the public ones. A /16 gives /18 private
    /// and /20 public subnets.
    pub fn subnets(&self) -> Result<Vec<SubnetPlan>, ConfigError> {
        let vpc = self.vpc()?;
        let quarters: Vec<Ipv4Net> = vpc
            .subnets(vpc.prefix_len() + 2)
            .map_err(|e| invalid("vpc_cidr", e.to_string()))?
            .collect();
        let public: Vec<Ipv4Net> = quarters[3]
            .subnets(vpc.prefix_len() + 4)
            .map_err(|e| invalid("vpc_cidr", e.to_string()))?
            .collect();
        Ok(self
            .zones()
            .into_iter()
            .enumerate()
            .map(|(i, zone)| SubnetPlan {
                zone,
                private: quarters[i],
                public: public[i],
            })
            .collect())
    }
}

fn parse_cidr(field: &str, text: &str) -> Result<Ipv4Net, ConfigError> {
    let net: Ipv4Net = text.parse().map_err(|_| {
        invalid(
            field,
            format!("{text:?} is not an IPv4 CIDR such as 10.0.0.0/16"),
        )
    })?;
    if net.network() != net.addr() {
        return Err(invalid(
            field,
            format!(
                "{text} has host bits set: did you mean {}?",
                Ipv4Net::new(net.network(), net.prefix_len()).expect("same prefix")
            ),
        ));
    }
    if net.addr() == Ipv4Addr::UNSPECIFIED && field == "vpc_cidr" {
        return Err(invalid(field, "0.0.0.0 cannot be a VPC"));
    }
    Ok(net)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<EnvironmentConfig, ConfigError> {
        EnvironmentConfig::from_value(&v)
    }

    fn err(v: Value) -> (String, String) {
        let e = parse(v).unwrap_err();
        (e.field, e.message)
    }

    #[test]
    fn defaults_and_subnets() {
        let c = parse(json!({"region": "eu-west-1", "az_count": 3})).unwrap();
        assert_eq!(c.eks_mode, EksMode::Auto);
        let subnets = c.subnets().unwrap();
        let text: Vec<String> = subnets
            .iter()
            .map(|s| format!("{} {} {}", s.zone, s.private, s.public))
            .collect();
        assert_eq!(
            text,
            [
                "eu-west-1a 10.0.0.0/18 10.0.192.0/20",
                "eu-west-1b 10.0.64.0/18 10.0.208.0/20",
                "eu-west-1c 10.0.128.0/18 10.0.224.0/20",
            ]
        );
        let small = parse(json!({"region": "eu-west-1", "vpc_cidr": "172.16.4.0/24"})).unwrap();
        let s = small.subnets().unwrap();
        assert_eq!(s[1].private.to_string(), "172.16.4.64/26");
        assert_eq!(s[1].public.to_string(), "172.16.4.208/28");
    }

    #[test]
    fn errors_name_the_field() {
        let base = |extra: Value| {
            let mut v = json!({"region": "us-east-1"});
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            v
        };
        assert_eq!(err(base(json!({"vpc_cidr": "10.0.0.1/16"}))).0, "vpc_cidr");
        assert!(
            err(base(json!({"vpc_cidr": "10.0.0.1/16"})))
                .1
                .contains("10.0.0.0/16")
        );
        assert_eq!(err(base(json!({"vpc_cidr": "banana"}))).0, "vpc_cidr");
        assert_eq!(err(base(json!({"vpc_cidr": "10.0.0.0/12"}))).0, "vpc_cidr");
        assert_eq!(err(base(json!({"az_count": 4}))).0, "az_count");
        assert_eq!(err(base(json!({"az_count": 1}))).0, "az_count");
        let (field, message) = err(base(json!({"eks_mode": "fargate"})));
        assert_eq!(field, "eks_mode");
        assert!(message.contains("unknown variant `fargate`"), "{message}");
        let (field, message) = err(base(json!({"node_group_config": {
            "desired_size": 2, "min_size": 3, "max_size": 2, "instance_types": ["m5.large"], "disk_size": 20
        }})));
        assert_eq!(field, "node_group_config.min_size");
        assert!(message.contains("greater than max_size"), "{message}");
        let (field, _) = err(base(json!({"node_group_config": {
            "desired_size": "two", "min_size": 1, "max_size": 2, "instance_types": ["m5.large"], "disk_size": 20
        }})));
        assert_eq!(field, "node_group_config.desired_size");
        let (_, message) = err(base(json!({"colour": "blue"})));
        assert!(message.contains("unknown field `colour`"), "{message}");
        assert_eq!(err(json!({"region": "Mars"})).0, "region");
        assert_eq!(err(json!({})).1, "missing field `region`");
        assert_eq!(
            err(base(
                json!({"availability_zones": ["us-east-1a", "us-east-1a"]})
            ))
            .0,
            "availability_zones[1]"
        );
        assert_eq!(
            err(base(
                json!({"endpoint_access": {"public": false, "private": false, "public_cidrs": []}})
            ))
            .0,
            "endpoint_access"
        );
        assert_eq!(err(base(json!({"tags": {"byoc:x": "y"}}))).0, "tags.byoc:x");
        assert_eq!(
            err(base(json!({"kubernetes_version": "latest"}))).0,
            "kubernetes_version"
        );
    }
}
