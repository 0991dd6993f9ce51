//! The bootstrap components of an environment: Helm releases installed into its cluster,
//! each off unless listed under `components`, with its chart pinned and extra values.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Invalid;
use crate::config::{ConfigError, EksMode, invalid};
use crate::names::is_dns_subdomain;

/// What the environment config says about one component.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ComponentConfig {
    /// Listed components are on unless this says `false`.
    #[serde(default = "on", skip_serializing_if = "is_on")]
    pub enabled: bool,
    /// The chart version (semver, such as 1.2.3 or v1.2.3); default: the one this byoc pins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Another chart: a chart name (lowercase letters, digits and dashes) in `repo`, or an
    /// `oci://host/path` reference. Never a local path; the server allows only the sources
    /// its operator lists (`--chart-sources`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart: Option<String>,
    /// The `https://` chart repository `chart` is in.
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

/// The chart a component's release installs: the config's own, or the pinned one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChartRef<'a> {
    /// A chart name in `repo`, or an `oci://` reference.
    pub chart: &'a str,
    pub repo: Option<&'a str>,
    pub version: &'a str,
}

impl ComponentConfig {
    /// What `component`'s release installs with this config: its chart if it names one
    /// (a `repo` alone is refused by validation), and its version, else the pinned ones.
    pub fn chart(&self, component: Component) -> ChartRef<'_> {
        let pinned = component.source();
        let (chart, repo) = match &self.chart {
            Some(chart) => (chart.as_str(), self.repo.as_deref()),
            None => (pinned.chart, pinned.repo),
        };
        ChartRef {
            chart,
            repo,
            version: self.version.as_deref().unwrap_or(pinned.version),
        }
    }
}

impl ChartRef<'_> {
    /// Whether helm can be handed this chart: none of its parts can be read as a flag or a
    /// local path, and its URLs name a public host. Errors: the field and what is wrong.
    fn check(&self) -> Result<(), (&'static str, String)> {
        let ChartRef {
            chart,
            repo,
            version,
        } = *self;
        if !is_chart_version(version) {
            return Err((
                "version",
                format!(
                    "{version:?} is not a chart version such as 1.2.3 (semver, optionally v1.2.3)"
                ),
            ));
        }
        match (repo, chart.starts_with("oci://")) {
            (Some(_), true) => Err(("repo", "an oci:// chart takes no repo".into())),
            (None, true) => oci_chart(chart).map_err(|why| ("chart", format!("{chart:?} {why}"))),
            (Some(repo), false) => {
                source_url(repo, "https").map_err(|why| ("repo", format!("{repo:?} {why}")))?;
                if is_chart_name(chart) {
                    Ok(())
                } else {
                    Err(("chart", format!("{chart:?} {NOT_A_CHART}")))
                }
            }
            (None, false) if is_chart_name(chart) => Err((
                "repo",
                format!(
                    "chart {chart:?} needs the https:// repository it is in, or give chart as an oci://host/path reference"
                ),
            )),
            (None, false) => Err(("chart", format!("{chart:?} {NOT_A_CHART}"))),
        }
    }
}

const NOT_A_CHART: &str = "is neither a chart name (lowercase letters, digits and dashes, not starting with a dash; with repo) nor an oci://host/path reference; local paths are not accepted";

/// Helm's rule for chart names: lowercase letters and digits, words separated by dashes.
fn is_chart_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Semver, with the leading `v` some charts use (cert-manager's `v1.17.2`).
fn is_chart_version(version: &str) -> bool {
    version.len() <= 64
        && semver::Version::parse(version.strip_prefix('v').unwrap_or(version)).is_ok()
}

/// An `oci://host/path` chart: a public host and a repository path of lowercase segments
/// (no tag or digest: `version` says which).
fn oci_chart(chart: &str) -> Result<(), String> {
    let path = source_url(chart, "oci")?;
    let segment = |s: &str| {
        s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
    };
    match path.strip_prefix('/') {
        Some(path) if path.split('/').all(segment) => Ok(()),
        _ => Err("is not an oci://host/path reference: the path is lowercase letters, digits and ._- in /-separated parts, with no tag".into()),
    }
}

/// The path of `url` if it is a chart source byoc may hand helm: `{scheme}://host[:port]`
/// and a plain path, the host a public DNS name. No user info (credentials do not belong
/// in a config), no IP address or local name (the metadata service, the worker's own
/// network): a worker must not be pointed at what only it can reach.
fn source_url<'a>(url: &'a str, scheme: &str) -> Result<&'a str, String> {
    let Some(rest) = url
        .strip_prefix(scheme)
        .and_then(|rest| rest.strip_prefix("://"))
    else {
        return Err(format!("is not an {scheme}:// URL"));
    };
    if url.len() > 512 {
        return Err("is longer than 512 characters".into());
    }
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.contains('@') {
        return Err("has user info: credentials do not belong in a config".into());
    }
    if authority.starts_with('[') {
        return Err("names an IP address: use a DNS name".into());
    }
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    if let Some(port) = port {
        let digits = !port.is_empty() && port.chars().all(|c| c.is_ascii_digit());
        if !digits || port.parse::<u16>().is_err() || port.starts_with('0') {
            return Err(format!("has port {port:?}, not a number from 1 to 65535"));
        }
    }
    // `169.254.169.254`, and the numeric forms resolvers also read as addresses (`127.1`).
    if host
        .rsplit('.')
        .next()
        .is_some_and(|last| !last.is_empty() && last.chars().all(|c| c.is_ascii_digit()))
    {
        return Err("names an IP address: use a DNS name".into());
    }
    if !is_dns_subdomain(host) {
        return Err(format!("has host {host:?}, not a lowercase DNS name"));
    }
    let local = !host.contains('.')
        || [".localhost", ".local", ".localdomain", ".internal", ".arpa"]
            .iter()
            .any(|suffix| host.ends_with(suffix));
    if local {
        return Err(format!("names local host {host:?}: use a public DNS name"));
    }
    let plain = path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._~/-".contains(c));
    if !plain || path.contains("..") || path.contains("//") {
        return Err(
            "has a path other than letters, digits and ._~- in /-separated parts (no .., no query)"
                .into(),
        );
    }
    Ok(path)
}

/// The chart sources configs may name (`byoc serve --chart-sources`): URL prefixes a
/// component's `repo`, or its `oci://` chart, must start with, up to a `/`
/// (`https://charts.example.com` allows `https://charts.example.com/stable`, not
/// `https://charts.example.com.evil.net`). The pinned charts need none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedChartSources(Vec<String>);

impl AllowedChartSources {
    /// The pinned catalog's sources: each repository, and the folder of each oci chart.
    pub fn pinned() -> AllowedChartSources {
        let mut sources: Vec<String> = Vec::new();
        for component in Component::ALL {
            let pinned = component.source();
            let source = match pinned.repo {
                Some(repo) => repo,
                None => &pinned.chart[..=pinned.chart.rfind('/').expect("oci://host/path")],
            };
            if !sources.iter().any(|s| s == source) {
                sources.push(source.to_string());
            }
        }
        AllowedChartSources(sources)
    }

    pub fn allows(&self, url: &str) -> bool {
        self.0.iter().any(|prefix| {
            url.strip_prefix(prefix.as_str()).is_some_and(|rest| {
                rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/')
            })
        })
    }

    /// Refuses the first source `components` names that is not allowed, naming its field
    /// and the sources that are.
    pub fn check(&self, components: &Components) -> Result<(), ConfigError> {
        for component in Component::ALL {
            let Some(cfg) = components.get(component) else {
                continue;
            };
            // A config naming no chart installs the pinned one.
            let Some(chart) = &cfg.chart else {
                continue;
            };
            let (name, url) = match &cfg.repo {
                Some(repo) => ("repo", repo),
                None => ("chart", chart),
            };
            if !self.allows(url) {
                let allowed = if self.0.is_empty() {
                    "none".to_string()
                } else {
                    self.to_string()
                };
                return Err(invalid(
                    &format!("components.{}.{name}", component.source().key),
                    format!(
                        "{url:?} is not an allowed chart source; this server allows: {allowed} (its operator sets them with --chart-sources)"
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl fmt::Display for AllowedChartSources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(","))
    }
}

/// Comma-separated `https://` and `oci://` URL prefixes; empty: configs may name none.
impl FromStr for AllowedChartSources {
    type Err = Invalid;

    fn from_str(text: &str) -> Result<AllowedChartSources, Invalid> {
        let mut sources = Vec::new();
        for source in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let scheme = if source.starts_with("oci://") {
                "oci"
            } else {
                "https"
            };
            source_url(source, scheme)
                .map_err(|why| Invalid(format!("chart source {source:?} {why}")))?;
            sources.push(source.to_string());
        }
        Ok(AllowedChartSources(sources))
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
            if cfg.repo.is_some() && cfg.chart.is_none() {
                return Err(invalid(
                    &field("repo"),
                    "a repo needs the chart name in it (chart)",
                ));
            }
            // The pinned chart too: what reaches helm is checked, whoever chose it.
            if let Err((name, message)) = cfg.chart(component).check() {
                return Err(invalid(&field(name), message));
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

    /// `component`'s config with `fields`, validated in managed mode.
    fn validate(component: &str, fields: Value) -> Result<(), ConfigError> {
        let components: Components = serde_json::from_value(json!({component: fields})).unwrap();
        components.validate(EksMode::Managed)
    }

    #[test]
    fn the_pinned_catalog_passes_its_own_validation() {
        let none = ComponentConfig::default();
        for component in Component::ALL {
            assert_eq!(none.chart(component).check(), Ok(()), "{component:?}");
            assert_eq!(validate(component.source().key, json!({})), Ok(()));
        }
        let sources = AllowedChartSources::pinned();
        assert_eq!(
            sources.to_string(),
            "oci://public.ecr.aws/karpenter/,https://argoproj.github.io/argo-helm,https://charts.jetstack.io,https://charts.external-secrets.io,https://kubernetes.github.io/ingress-nginx"
        );
        assert_eq!(sources.to_string().parse(), Ok(sources));
    }

    #[test]
    fn hostile_charts_repos_and_versions_are_refused_naming_the_field() {
        let refused = |fields: Value, field: &str| {
            let err = validate("argocd", fields.clone()).unwrap_err();
            assert_eq!(
                err.field,
                format!("components.argocd.{field}"),
                "{fields}: {err}"
            );
        };
        // Flags and local paths helm would take as its own, with or without a repo.
        for chart in [
            "--post-renderer=/bin/sh",
            "-x",
            "/etc",
            "./chart",
            "../../etc",
            "stable/argo-cd",
            "Argo-CD",
            "byoc:karpenter-defaults",
            "file:///etc/passwd",
            "https://example.com/argo-cd-1.0.0.tgz",
        ] {
            refused(json!({"chart": chart}), "chart");
            refused(
                json!({"chart": chart, "repo": "https://charts.jetstack.io"}),
                "chart",
            );
        }
        // A chart name alone would be looked up as a local path.
        refused(json!({"chart": "argo-cd"}), "repo");
        refused(json!({"repo": "https://charts.jetstack.io"}), "repo");
        // Repositories: https only, public DNS names, no credentials, plain paths.
        for repo in [
            "http://169.254.169.254/latest/",
            "https://169.254.169.254/latest/",
            "https://127.1/",
            "https://2130706433/",
            "https://[fe80::1]/",
            "https://[::1]:8443/",
            "https://localhost/",
            "https://registry.localhost/",
            "https://metadata.google.internal/",
            "https://printer.local/",
            "https://metadata/",
            "https://user:pw@charts.example.com/",
            "https://Charts.Example.com/",
            "https://charts.example.com:0/",
            "https://charts.example.com:+80/",
            "https://charts.example.com/../x",
            "https://charts.example.com/a?b=c",
            "https://charts.example.com/a#b",
            "file:///etc",
            "ftp://charts.example.com",
            "charts.example.com",
        ] {
            refused(json!({"chart": "x", "repo": repo}), "repo");
        }
        // oci references: the same host rules, lowercase repository paths, no tag.
        for chart in [
            "oci://169.254.169.254/x",
            "oci://localhost:5000/x",
            "oci://user@public.ecr.aws/karpenter/karpenter",
            "oci://public.ecr.aws/karpenter/../x",
            "oci://public.ecr.aws/",
            "oci://public.ecr.aws",
            "oci://public.ecr.aws/karpenter/karpenter:1.0.0",
            "oci://public.ecr.aws/Karpenter/karpenter",
            "oci://public.ecr.aws/karpenter/-x",
        ] {
            refused(json!({"chart": chart}), "chart");
        }
        refused(
            json!({"chart": "oci://public.ecr.aws/k", "repo": "https://charts.jetstack.io"}),
            "repo",
        );
        for version in ["1 2", "--devel", "latest", "1.2", ">=1.0.0", ""] {
            refused(json!({"version": version}), "version");
        }
    }

    #[test]
    fn charts_from_public_repositories_and_registries_pass() {
        for fields in [
            json!({"chart": "argo-cd", "repo": "https://argoproj.github.io/argo-helm", "version": "7.8.26"}),
            json!({"chart": "cert-manager", "repo": "https://charts.jetstack.io/", "version": "v1.17.2"}),
            json!({"chart": "x2", "repo": "https://charts.example.com:8443/stable/", "version": "1.0.0-rc.1+build.5"}),
            json!({"chart": "oci://registry-1.docker.io/bitnamicharts/nginx", "version": "18.2.0"}),
            json!({"chart": "oci://public.ecr.aws/karpenter/karpenter-crd"}),
            json!({"version": "7.9.0"}),
        ] {
            assert_eq!(validate("argocd", fields.clone()), Ok(()), "{fields}");
        }
    }

    #[test]
    fn the_allow_list_matches_whole_path_segments() {
        let sources: AllowedChartSources =
            " https://charts.jetstack.io , oci://public.ecr.aws/karpenter/"
                .parse()
                .unwrap();
        for url in [
            "https://charts.jetstack.io",
            "https://charts.jetstack.io/",
            "https://charts.jetstack.io/stable",
            "oci://public.ecr.aws/karpenter/karpenter",
        ] {
            assert!(sources.allows(url), "{url}");
        }
        for url in [
            "https://charts.jetstack.io.evil.net",
            "https://charts.jetstack.iox/",
            "http://charts.jetstack.io",
            "oci://public.ecr.aws/karpenter",
            "oci://public.ecr.aws/other/karpenter",
        ] {
            assert!(!sources.allows(url), "{url}");
        }
        for bad in [
            "http://charts.example.com",
            "https://169.254.169.254/",
            "oci://localhost:5000/",
            "file:///charts",
            "charts.example.com",
        ] {
            let err = bad.parse::<AllowedChartSources>().unwrap_err();
            assert!(err.0.contains(bad), "{err}");
        }
        assert!(
            !"".parse::<AllowedChartSources>()
                .unwrap()
                .allows("https://charts.jetstack.io")
        );
    }

    #[test]
    fn a_source_outside_the_allow_list_is_refused_naming_the_field_and_the_allowed() {
        let sources = AllowedChartSources::pinned();
        let components = |fields: Value| -> Components {
            serde_json::from_value(json!({"cert_manager": fields})).unwrap()
        };
        let outside =
            components(json!({"chart": "cert-manager", "repo": "https://charts.example.com"}));
        let err = sources.check(&outside).unwrap_err();
        assert_eq!(err.field, "components.cert_manager.repo");
        assert!(err.message.contains(&sources.to_string()), "{err}");
        let oci = components(json!({"chart": "oci://registry.example.com/charts/cert-manager"}));
        assert_eq!(
            sources.check(&oci).unwrap_err().field,
            "components.cert_manager.chart"
        );
        // Pinned sources, and configs naming no chart, pass.
        let mirror =
            components(json!({"chart": "cert-manager", "repo": "https://charts.jetstack.io/"}));
        assert_eq!(sources.check(&mirror), Ok(()));
        assert_eq!(
            sources.check(&components(json!({"version": "v1.16.0"}))),
            Ok(())
        );
        let none: AllowedChartSources = "".parse().unwrap();
        assert!(
            none.check(&mirror)
                .unwrap_err()
                .message
                .contains("allows: none")
        );
    }
}
