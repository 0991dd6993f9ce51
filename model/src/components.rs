//! The bootstrap components of an environment: Helm releases installed into its cluster,
//! each off unless listed under `components`, with its chart pinned and extra values.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::{ConfigError, EksMode, invalid};

/// What the environment config says about one component.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ComponentConfig {
    /// Listed components are on unless this says `false`.
    #[serde(default = "on", skip_serializing_if = "is_on")]
    pub enabled: bool,
    /// The chart version; default: the one this byoc pins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Another chart source: a chart name in `repo`, an `oci://` reference or a path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    /// Values merged over the ones byoc generates (objects merge key by key).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub values: Map<String, Value>,
    /// cert-manager only: Route 53 hosted zones it may change for DNS01 challenges; it gets
    /// an IAM role only when this lists some.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns01_hosted_zone_ids: Vec<String>,
    /// external-secrets only: the Secrets Manager / SSM Parameter Store path prefix it may
    /// read (default `byoc/{stack}/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets_prefix: Option<String>,
}

fn on() -> bool {
    true
}

fn is_on(enabled: &bool) -> bool {
    *enabled
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Components {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub karpenter: Option<ComponentConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argocd: Option<ComponentConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_manager: Option<ComponentConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_secrets: Option<ComponentConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_nginx: Option<ComponentConfig>,
}

/// Which component, with where its chart comes from by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    Karpenter,
    Argocd,
    CertManager,
    ExternalSecrets,
    IngressNginx,
}

/// Where a component's chart comes from and which version byoc pins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChartSource {
    /// The config key, also the release's name.
    pub key: &'static str,
    pub release: &'static str,
    pub namespace: &'static str,
    pub chart: &'static str,
    pub repo: Option<&'static str>,
    pub version: &'static str,
}

impl Component {
    pub const ALL: [Component; 5] = [
        Component::Karpenter,
        Component::Argocd,
        Component::CertManager,
        Component::ExternalSecrets,
        Component::IngressNginx,
    ];

    pub fn source(self) -> ChartSource {
        match self {
            Component::Karpenter => ChartSource {
                key: "karpenter",
                release: "karpenter",
                namespace: "kube-system",
                chart: "oci://public.ecr.aws/karpenter/karpenter",
                repo: None,
                version: "1.3.3",
            },
            Component::Argocd => ChartSource {
                key: "argocd",
                release: "argocd",
                namespace: "argocd",
                chart: "argo-cd",
                repo: Some("https://argoproj.github.io/argo-helm"),
                version: "7.8.26",
            },
            Component::CertManager => ChartSource {
                key: "cert_manager",
                release: "cert-manager",
                namespace: "cert-manager",
                chart: "cert-manager",
                repo: Some("https://charts.jetstack.io"),
                version: "v1.17.2",
            },
            Component::ExternalSecrets => ChartSource {
                key: "external_secrets",
                release: "external-secrets",
                namespace: "external-secrets",
                chart: "external-secrets",
                repo: Some("https://charts.external-secrets.io"),
                version: "0.16.2",
            },
            Component::IngressNginx => ChartSource {
                key: "ingress_nginx",
                release: "ingress-nginx",
                namespace: "ingress-nginx",
                chart: "ingress-nginx",
                repo: Some("https://kubernetes.github.io/ingress-nginx"),
                version: "4.12.2",
            },
        }
    }
}

impl Components {
    pub fn get(&self, component: Component) -> Option<&ComponentConfig> {
        match component {
            Component::Karpenter => self.karpenter.as_ref(),
            Component::Argocd => self.argocd.as_ref(),
            Component::CertManager => self.cert_manager.as_ref(),
            Component::ExternalSecrets => self.external_secrets.as_ref(),
            Component::IngressNginx => self.ingress_nginx.as_ref(),
        }
    }

    /// The components to install, in a fixed order, with their configs.
    pub fn enabled(&self) -> impl Iterator<Item = (Component, &ComponentConfig)> {
        Component::ALL
            .into_iter()
            .filter_map(|c| self.get(c).filter(|cfg| cfg.enabled).map(|cfg| (c, cfg)))
    }

    pub(crate) fn validate(&self, eks_mode: EksMode) -> Result<(), ConfigError> {
        for component in Component::ALL {
            let Some(cfg) = self.get(component) else {
                continue;
            };
            let field = |name: &str| format!("components.{}.{name}", component.source().key);
            if component == Component::Karpenter && cfg.enabled && eks_mode == EksMode::Auto {
                return Err(invalid(
                    "components.karpenter",
                    "EKS Auto Mode has Karpenter built in: remove it, or use eks_mode managed",
                ));
            }
            if let Some(version) = &cfg.version {
                let ok = !version.is_empty()
                    && version.len() <= 64
                    && version
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || ".-+".contains(c));
                if !ok {
                    return Err(invalid(
                        &field("version"),
                        format!("{version:?} is not a chart version such as 1.2.3"),
                    ));
                }
            }
            if cfg.repo.is_some() && cfg.chart.is_none() {
                return Err(invalid(
                    &field("repo"),
                    "a repo needs the chart name in it (chart)",
                ));
            }
            if let Some(repo) = &cfg.repo
                && !repo.starts_with("https://")
                && !repo.starts_with("http://")
            {
                return Err(invalid(
                    &field("repo"),
                    format!("{repo:?} is not an http(s) chart repository URL"),
                ));
            }
            if !cfg.dns01_hosted_zone_ids.is_empty() && component != Component::CertManager {
                return Err(invalid(
                    &field("dns01_hosted_zone_ids"),
                    "only cert_manager solves DNS01 challenges",
                ));
            }
            for (i, zone) in cfg.dns01_hosted_zone_ids.iter().enumerate() {
                let ok = zone.starts_with('Z')
                    && zone.len() <= 32
                    && zone.chars().all(|c| c.is_ascii_alphanumeric());
                if !ok {
                    return Err(invalid(
                        &field(&format!("dns01_hosted_zone_ids[{i}]")),
                        format!("{zone:?} is not a Route 53 hosted zone id such as Z0123456789ABC"),
                    ));
                }
            }
            if let Some(prefix) = &cfg.secrets_prefix {
                if component != Component::ExternalSecrets {
                    return Err(invalid(
                        &field("secrets_prefix"),
                        "only external_secrets reads secrets",
                    ));
                }
                let ok = !prefix.is_empty()
                    && prefix.len() <= 256
                    && !prefix.contains('*')
                    && prefix
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c));
                if !ok {
                    return Err(invalid(
                        &field("secrets_prefix"),
                        format!("{prefix:?} is not a path prefix such as team/app/"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// `base` with `over` merged in: objects merge key by key, anything else is replaced.
pub fn merge_values(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                merge_values(base.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
        (base, over) => *base = over.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_merge_objects_and_replace_the_rest() {
        let mut base = json!({"a": {"b": 1, "c": [1, 2]}, "d": "x"});
        merge_values(&mut base, &json!({"a": {"c": [3], "e": true}, "d": null}));
        assert_eq!(base, json!({"a": {"b": 1, "c": [3], "e": true}, "d": null}));
    }
}
