//! The environment config schema: what an engineer saves for a tenant's environment, and
//! its validation. Every error names the field it is about.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::components::Components;
use crate::names::{MAX_LABELS, label_key_problem, label_value_problem};

/// One tenant environment: its network, its cluster and its nodes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentConfig {
    /// AWS region, e.g. `eu-west-1`; default: the server's `--default-region`.
    #[schema(
        required = false,
        pattern = r"^(us|eu|ap|sa|ca|me|af|il|mx|cn|us-gov|us-iso|us-isob|eusc|eusc-[a-z]{2})-(north|south|east|west|central|northeast|northwest|southeast|southwest)-[1-9][0-9]?$"
    )]
    pub region: String,
    /// IPv4 CIDR of the VPC, prefix /16 to /24 (it is split into the subnets).
    #[serde(default = "default_vpc_cidr")]
    #[schema(
        pattern = r"^((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])/(1[6-9]|2[0-4])$",
        default = "10.0.0.0/16"
    )]
    pub vpc_cidr: String,
    /// Availability zones used, 2 or 3.
    #[serde(default = "default_az_count")]
    #[schema(minimum = 2, maximum = 3, default = 2)]
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
    #[schema(pattern = r"^1\.[0-9]{1,3}$", default = "1.32")]
    pub kubernetes_version: String,
    #[serde(default)]
    pub endpoint_access: EndpointAccess,
    /// The managed node group (`eks_mode: managed`; EKS Auto Mode manages its own nodes).
    #[serde(default)]
    pub node_group_config: NodeGroupConfig,
    /// Extra tags on every resource (AWS's rules: keys 1 to 128 characters, values up to
    /// 256; `aws:` and `byoc:` are reserved).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Bootstrap components (Helm releases); none unless listed.
    #[serde(default, skip_serializing_if = "is_default")]
    pub components: Components,
    /// Scheduled drift checks (refresh runs by the workers). Left out: the server's
    /// `--drift-check-every` (off unless set), without repair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub drift_check: Option<crate::DriftCheckConfig>,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NatMode {
    /// One NAT gateway for every zone: cheaper, one zone's outage cuts egress.
    #[default]
    Single,
    PerAz,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EksMode {
    /// EKS Auto Mode: AWS runs compute, block storage and load balancing.
    #[default]
    Auto,
    /// Managed node groups, with Karpenter for the rest.
    Managed,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointAccess {
    pub public: bool,
    pub private: bool,
    /// Who may reach the public endpoint (at most 40, EKS's limit).
    #[schema(max_items = 40)]
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

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CapacityType {
    #[default]
    OnDemand,
    Spot,
}

/// Every field may be left out on input (defaults fill them); it is always stored whole.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(from = "NodeGroupInput")]
pub struct NodeGroupConfig {
    /// Default 2, within the given bounds.
    #[schema(required = false, maximum = 450)]
    pub desired_size: u32,
    /// Default 1 (0 when `desired_size` is 0).
    #[schema(required = false, maximum = 450)]
    pub min_size: u32,
    /// Default: at least 3 and `desired_size`.
    #[schema(required = false, minimum = 1, maximum = 450)]
    pub max_size: u32,
    /// Default `m6i.large`.
    #[schema(required = false, min_items = 1, max_items = 20)]
    pub instance_types: Vec<String>,
    #[schema(required = false)]
    pub capacity_type: CapacityType,
    /// Root volume, GiB; default 50.
    #[schema(required = false, minimum = 20, maximum = 16384)]
    pub disk_size: u32,
    /// Kubernetes node labels (at most 50; `kubernetes.io/` and `k8s.io/` are reserved).
    #[schema(required = false)]
    pub labels: BTreeMap<String, String>,
    #[schema(required = false, max_items = 50)]
    pub taints: Vec<Taint>,
}

/// A node group as written: what is left out gets a default that fits what is given
/// (`desired_size: 7` alone gives `max_size: 7`); what is given is kept, for `validate` to
/// judge.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeGroupInput {
    desired_size: Option<u32>,
    min_size: Option<u32>,
    max_size: Option<u32>,
    instance_types: Option<Vec<String>>,
    capacity_type: Option<CapacityType>,
    disk_size: Option<u32>,
    labels: Option<BTreeMap<String, String>>,
    taints: Option<Vec<Taint>>,
}

impl From<NodeGroupInput> for NodeGroupConfig {
    fn from(input: NodeGroupInput) -> NodeGroupConfig {
        // 2 nodes unless the given bounds say otherwise; given values are kept as given, so
        // a contradiction among them is reported, not papered over.
        let desired_size = input.desired_size.unwrap_or_else(|| {
            let floor = input.min_size.unwrap_or(0);
            2u32.max(floor)
                .min(input.max_size.unwrap_or(u32::MAX).max(floor))
        });
        let min_size = input.min_size.unwrap_or(desired_size.min(1));
        let max_size = input
            .max_size
            .unwrap_or(3u32.max(desired_size).max(min_size));
        NodeGroupConfig {
            desired_size,
            min_size,
            max_size,
            instance_types: input
                .instance_types
                .unwrap_or_else(|| vec!["m6i.large".into()]),
            capacity_type: input.capacity_type.unwrap_or_default(),
            disk_size: input.disk_size.unwrap_or(50),
            labels: input.labels.unwrap_or_default(),
            taints: input.taints.unwrap_or_default(),
        }
    }
}

impl Default for NodeGroupConfig {
    fn default() -> NodeGroupConfig {
        NodeGroupInput::default().into()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Taint {
    pub key: String,
    #[serde(default)]
    pub value: String,
    pub effect: TaintEffect,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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

/// EKS's limit on `endpoint_access.public_cidrs`.
const MAX_PUBLIC_CIDRS: usize = 40;
/// EKS's limits for a managed node group.
const MAX_TAINTS: usize = 50;
const MAX_INSTANCE_TYPES: usize = 20;

impl EnvironmentConfig {
    /// Parses and validates a config as written by an engineer: a missing (or null) `region`
    /// is the server's default region.
    pub fn resolve(
        raw: &Value,
        default_region: Option<&str>,
    ) -> Result<EnvironmentConfig, ConfigError> {
        let Some(object) = raw.as_object() else {
            return Err(invalid("", "the config must be a JSON object"));
        };
        if object.get("region").is_none_or(Value::is_null) {
            let Some(region) = default_region else {
                return Err(invalid(
                    "region",
                    "no region was given and the server has no default region: set `region` in the config, or start the server with `--default-region` (env `BYOC_DEFAULT_REGION`)",
                ));
            };
            let mut object = object.clone();
            object.insert("region".into(), Value::String(region.into()));
            return EnvironmentConfig::from_value(&Value::Object(object));
        }
        EnvironmentConfig::from_value(raw)
    }

    /// Parses and validates a complete config, such as a stored one.
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
        if let Err(crate::Invalid(message)) = crate::Region::new(self.region.as_str()) {
            return Err(invalid("region", message));
        }
        if let Some(Err(message)) = self.drift_check.as_ref().map(|d| d.validate()) {
            return Err(invalid("drift_check.every_minutes", message));
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
        if access.public_cidrs.len() > MAX_PUBLIC_CIDRS {
            return Err(invalid(
                "endpoint_access.public_cidrs",
                format!(
                    "{} given: EKS allows at most {MAX_PUBLIC_CIDRS}",
                    access.public_cidrs.len()
                ),
            ));
        }
        if access.public && access.public_cidrs.is_empty() {
            return Err(invalid(
                "endpoint_access.public_cidrs",
                "the public endpoint is on but lists no CIDR: list some (0.0.0.0/0 for anyone), or set public to false",
            ));
        }
        for (i, cidr) in access.public_cidrs.iter().enumerate() {
            parse_cidr(&format!("endpoint_access.public_cidrs[{i}]"), cidr)?;
        }
        self.validate_node_group()?;
        for (key, value) in &self.tags {
            let field = format!("tags.{key}");
            if key.is_empty() || key.chars().count() > 128 || value.chars().count() > 256 {
                return Err(invalid(
                    &field,
                    "tag keys have 1 to 128 characters, values at most 256",
                ));
            }
            if !key.chars().chain(value.chars()).all(is_tag_char) {
                return Err(invalid(
                    &field,
                    "tags may hold only letters, digits, spaces and _ . : / = + - @",
                ));
            }
            // AWS reserves `aws:` in any case.
            if key.to_ascii_lowercase().starts_with("aws:") || key.starts_with("byoc:") {
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
        if ng.instance_types.len() > MAX_INSTANCE_TYPES {
            return Err(invalid(
                &f("instance_types"),
                format!(
                    "{} given: EKS allows at most {MAX_INSTANCE_TYPES}",
                    ng.instance_types.len()
                ),
            ));
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
        if ng.labels.len() > MAX_LABELS {
            return Err(invalid(
                &f("labels"),
                format!("{} given: at most {MAX_LABELS}", ng.labels.len()),
            ));
        }
        for (key, value) in &ng.labels {
            let reserved = key.starts_with("kubernetes.io/") || key.starts_with("k8s.io/");
            let problem = if reserved {
                Some("the kubernetes.io/ and k8s.io/ prefixes are reserved by EKS".to_string())
            } else {
                label_key_problem(key).or_else(|| label_value_problem(value))
            };
            if let Some(problem) = problem {
                return Err(invalid(&format!("node_group_config.labels.{key}"), problem));
            }
        }
        if ng.taints.len() > MAX_TAINTS {
            return Err(invalid(
                &f("taints"),
                format!("{} given: EKS allows at most {MAX_TAINTS}", ng.taints.len()),
            ));
        }
        for (i, taint) in ng.taints.iter().enumerate() {
            if let Some(problem) = label_key_problem(&taint.key) {
                return Err(invalid(
                    &format!("node_group_config.taints[{i}].key"),
                    problem,
                ));
            }
            if let Some(problem) = label_value_problem(&taint.value) {
                return Err(invalid(
                    &format!("node_group_config.taints[{i}].value"),
                    problem,
                ));
            }
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

/// AWS's tag alphabet, `[\p{L}\p{Z}\p{N}_.:/=+\-@]`: whitespace that is not a control
/// character is exactly `\p{Z}`.
fn is_tag_char(c: char) -> bool {
    c.is_alphanumeric()
        || (c.is_whitespace() && !c.is_control())
        || matches!(c, '_' | '.' | ':' | '/' | '=' | '+' | '-' | '@')
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

    fn base(extra: Value) -> Value {
        let mut v = json!({"region": "us-east-1"});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    }

    /// The field a config with `extra` fails on, or "" if it passes.
    fn field(extra: Value) -> String {
        parse(base(extra))
            .err()
            .map(|e| e.field)
            .unwrap_or_default()
    }

    #[test]
    fn resolve_fills_the_default_region() {
        let seed = json!({"eks_mode": "managed", "node_group_config": {"desired_size": 2}});
        let c = EnvironmentConfig::resolve(&seed, Some("us-east-1")).unwrap();
        assert_eq!(c.region, "us-east-1");
        assert_eq!(c.eks_mode, EksMode::Managed);
        let ng = &c.node_group_config;
        assert_eq!(
            (ng.desired_size, ng.min_size, ng.max_size, ng.disk_size),
            (2, 1, 3, 50)
        );
        assert_eq!(ng.instance_types, ["m6i.large"]);
        assert_eq!(ng.capacity_type, CapacityType::OnDemand);
        assert_eq!(*ng, NodeGroupConfig::default());
        // Stored whole, so the stored form parses without a default region.
        let stored = serde_json::to_value(&c).unwrap();
        assert_eq!(stored["node_group_config"]["max_size"], 3);
        assert_eq!(EnvironmentConfig::resolve(&stored, None).unwrap(), c);

        let null = json!({"region": null});
        assert_eq!(
            EnvironmentConfig::resolve(&null, Some("eu-west-1"))
                .unwrap()
                .region,
            "eu-west-1"
        );
        let given = json!({"region": "eu-central-1"});
        assert_eq!(
            EnvironmentConfig::resolve(&given, Some("us-east-1"))
                .unwrap()
                .region,
            "eu-central-1"
        );
        let e = EnvironmentConfig::resolve(&seed, None).unwrap_err();
        assert_eq!(e.field, "region");
        assert!(e.message.contains("--default-region"), "{}", e.message);
        assert!(e.message.contains("BYOC_DEFAULT_REGION"), "{}", e.message);
        let e = EnvironmentConfig::resolve(&json!([1]), Some("us-east-1")).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            ("", "the config must be a JSON object")
        );
        assert_eq!(
            EnvironmentConfig::resolve(&json!({}), Some("mars-north-1"))
                .unwrap_err()
                .field,
            "region"
        );
    }

    #[test]
    fn node_group_defaults_fit_what_is_given() {
        let ng =
            |v: Value| parse(base(json!({"node_group_config": v}))).map(|c| c.node_group_config);
        let big = ng(json!({"desired_size": 7})).unwrap();
        assert_eq!((big.desired_size, big.min_size, big.max_size), (7, 1, 7));
        let zero = ng(json!({"desired_size": 0})).unwrap();
        assert_eq!((zero.desired_size, zero.min_size, zero.max_size), (0, 0, 3));
        let min = ng(json!({"min_size": 2})).unwrap();
        assert_eq!((min.desired_size, min.min_size, min.max_size), (2, 2, 3));
        let floor = ng(json!({"min_size": 5})).unwrap();
        assert_eq!(
            (floor.desired_size, floor.min_size, floor.max_size),
            (5, 5, 5)
        );
        let ceiling = ng(json!({"max_size": 1})).unwrap();
        assert_eq!(
            (ceiling.desired_size, ceiling.min_size, ceiling.max_size),
            (1, 1, 1)
        );
        let nulls = ng(json!({"desired_size": null, "labels": null})).unwrap();
        assert_eq!(nulls, NodeGroupConfig::default());
        // Given values are kept, not adjusted: validation names the conflict.
        let e = ng(json!({"desired_size": 5, "max_size": 4})).unwrap_err();
        assert_eq!(e.field, "node_group_config.desired_size");
        let e = ng(json!({"min_size": 4, "max_size": 3})).unwrap_err();
        assert_eq!(e.field, "node_group_config.min_size");
        let e = ng(json!({"instance_types": []})).unwrap_err();
        assert_eq!(e.field, "node_group_config.instance_types");
        // Paths and unknown fields still reach the field inside.
        let e = ng(json!({"desired_size": "two"})).unwrap_err();
        assert_eq!(e.field, "node_group_config.desired_size");
        let e = ng(json!({"desired": 2})).unwrap_err();
        assert_eq!(e.field, "node_group_config.desired");
        assert!(e.message.contains("unknown field `desired`"), "{e}");
        let e = ng(json!({"taints": [{"key": "a", "effect": "Sometimes"}]})).unwrap_err();
        assert_eq!(e.field, "node_group_config.taints[0].effect");
    }

    #[test]
    fn public_cidr_limits() {
        let cidrs =
            |n: usize| -> Vec<String> { (0..n).map(|i| format!("10.0.{i}.0/24")).collect() };
        let access = |public: bool, n: usize| json!({"endpoint_access": {"public": public, "private": true, "public_cidrs": cidrs(n)}});
        assert_eq!(field(access(true, 40)), "");
        assert_eq!(field(access(true, 41)), "endpoint_access.public_cidrs");
        assert_eq!(field(access(true, 1)), "");
        assert_eq!(field(access(true, 0)), "endpoint_access.public_cidrs");
        assert_eq!(field(access(false, 0)), "");
    }

    #[test]
    fn node_label_limits() {
        let labels = |l: Value| field(json!({"node_group_config": {"labels": l}}));
        let many = |n: usize| -> Value {
            Value::Object((0..n).map(|i| (format!("k{i}"), json!("v"))).collect())
        };
        assert_eq!(labels(many(50)), "");
        assert_eq!(labels(many(51)), "node_group_config.labels");
        assert_eq!(labels(json!({"example.com/team": "core", "tier": ""})), "");
        assert_eq!(labels(json!({"k".repeat(63): "v".repeat(63)})), "");
        let long_key = "k".repeat(64);
        assert_eq!(
            labels(json!({&long_key: "v"})),
            format!("node_group_config.labels.{long_key}")
        );
        assert_eq!(
            labels(json!({"team": "v".repeat(64)})),
            "node_group_config.labels.team"
        );
        assert_eq!(
            labels(json!({"team": "core team"})),
            "node_group_config.labels.team"
        );
        assert_eq!(
            labels(json!({"-team": "x"})),
            "node_group_config.labels.-team"
        );
        for reserved in ["kubernetes.io/role", "k8s.io/x"] {
            assert_eq!(
                labels(json!({reserved: "x"})),
                format!("node_group_config.labels.{reserved}")
            );
        }
        // Only those prefixes: a subdomain of them is another prefix.
        assert_eq!(
            labels(json!({"example.kubernetes.io.example.com/x": "y"})),
            ""
        );
    }

    #[test]
    fn taint_limits() {
        let taints = |t: Value| field(json!({"node_group_config": {"taints": t}}));
        let many = |n: usize| -> Value {
            (0..n)
                .map(|i| json!({"key": format!("k{i}"), "value": "v", "effect": "no_schedule"}))
                .collect()
        };
        assert_eq!(taints(many(50)), "");
        assert_eq!(taints(many(51)), "node_group_config.taints");
        let one = |key: &str, value: &str| {
            taints(
                json!([{"key": "ok", "effect": "no_execute"}, {"key": key, "value": value, "effect": "no_schedule"}]),
            )
        };
        assert_eq!(one("dedicated", ""), "");
        assert_eq!(one("example.com/gpu", &"v".repeat(63)), "");
        assert_eq!(one("", "v"), "node_group_config.taints[1].key");
        assert_eq!(one("bad key", "v"), "node_group_config.taints[1].key");
        assert_eq!(one(&"k".repeat(64), "v"), "node_group_config.taints[1].key");
        assert_eq!(
            one("gpu", &"v".repeat(64)),
            "node_group_config.taints[1].value"
        );
        assert_eq!(one("gpu", "a/b"), "node_group_config.taints[1].value");
    }

    #[test]
    fn tag_limits() {
        let tag = |k: &str, v: &str| field(json!({"tags": {k: v}}));
        let key = "k".repeat(128);
        let value = "v".repeat(256);
        assert_eq!(tag(&key, &value), "");
        // Characters, not bytes.
        assert_eq!(tag(&"é".repeat(128), &"ü".repeat(256)), "");
        assert_eq!(tag("Team Name", "Ops @ Zürich: a/b=c+d-e_f.g"), "");
        assert_eq!(tag("tab\there", "v"), "tags.tab\there");
        let long = "k".repeat(129);
        assert_eq!(tag(&long, "v"), format!("tags.{long}"));
        assert_eq!(tag("team", &"v".repeat(257)), "tags.team");
        assert_eq!(tag("team", "a,b"), "tags.team");
        assert_eq!(tag("team#1", "v"), "tags.team#1");
        assert_eq!(tag("team", "ok\n"), "tags.team");
        assert_eq!(tag("aws:x", "v"), "tags.aws:x");
        assert_eq!(tag("AWS:x", "v"), "tags.AWS:x");
        assert_eq!(tag("byoc:x", "v"), "tags.byoc:x");
        let forty: serde_json::Map<String, Value> =
            (0..40).map(|i| (format!("t{i}"), json!("v"))).collect();
        assert_eq!(field(json!({"tags": forty.clone()})), "");
        let mut over = forty;
        over.insert("t40".into(), json!("v"));
        assert_eq!(field(json!({"tags": over})), "tags");
    }

    #[test]
    fn instance_type_limits() {
        let types = |n: usize| -> Vec<String> { (0..n).map(|i| format!("m{i}.large")).collect() };
        let ng = |t: Value| field(json!({"node_group_config": {"instance_types": t}}));
        assert_eq!(ng(json!(types(20))), "");
        assert_eq!(ng(json!(types(21))), "node_group_config.instance_types");
        assert_eq!(
            ng(json!(["m6i.large", "M6i"])),
            "node_group_config.instance_types[1]"
        );
    }

    #[test]
    fn regions_are_strict() {
        assert_eq!(field(json!({"region": "eu-west-1"})), "");
        assert_eq!(field(json!({"region": "eusc-de-east-1"})), "");
        for bad in ["mars-north-1", "Mars", "eu-west-0"] {
            assert_eq!(field(json!({"region": bad})), "region", "{bad}");
        }
    }
}
