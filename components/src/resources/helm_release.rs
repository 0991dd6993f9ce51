//! A Helm release in the environment's EKS cluster, reached with a token signed by the
//! session's assumed-role credentials.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use byoc_engine::{Created, Ctx, ErrorClass, ProviderError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{ResourceKind, Result, Seen, TypedProvider, is_seconds, seconds};
use crate::aws::{self, Aws};
use crate::helm::{Helm, HelmError, Listed, Release};
use crate::kube::{ClusterAccess, eks_token};

pub const KIND: &str = "helm:Release";

/// The cluster a release lives in: the EKS cluster's outputs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    pub name: String,
    pub endpoint: String,
    pub certificate_authority: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    pub cluster: Cluster,
    #[serde(flatten)]
    pub release: Release,
    /// How long helm waits for the release's resources to be ready before rolling back.
    #[serde(default = "seconds::<600>", skip_serializing_if = "is_seconds::<600>")]
    pub timeout_seconds: u64,
}

impl Cluster {
    /// How the session reaches this cluster: its endpoint and CA, and an EKS token signed
    /// with the session's assumed-role credentials.
    pub async fn access(&self, aws: &Aws) -> Result<ClusterAccess> {
        let credentials = aws.credentials().await?;
        Ok(ClusterAccess {
            name: self.name.clone(),
            endpoint: self.endpoint.clone(),
            ca_data: self.certificate_authority.clone(),
            token: eks_token(&credentials, &aws.region, &self.name, SystemTime::now())?,
        })
    }
}

pub struct HelmRelease(pub Arc<Aws>);

impl HelmRelease {
    fn helm(&self) -> Result<&Helm> {
        self.0.helm.as_ref().ok_or_else(|| {
            ProviderError::with_code(
                HELM_MISSING,
                "this worker has no usable helm binary: install helm >= 3.14 and set --helm (BYOC_HELM)",
            )
        })
    }

    async fn access(&self, cluster: &Cluster) -> Result<ClusterAccess> {
        cluster.access(&self.0).await
    }

    /// Installs or upgrades the release to `inputs`.
    async fn apply(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Created> {
        let helm = self.helm()?;
        let access = self.access(&inputs.cluster).await?;
        let timeout = Duration::from_secs(inputs.timeout_seconds);
        helm.upgrade_install(&access, &inputs.release, timeout, &ctx.cancel)
            .await
            .map_err(helm_error)?;
        let listed = helm
            .status(
                &access,
                &inputs.release.name,
                &inputs.release.namespace,
                &ctx.cancel,
            )
            .await
            .map_err(helm_error)?
            .ok_or_else(|| {
                ProviderError::new(format!(
                    "release {} is not listed right after its install",
                    inputs.release.name
                ))
            })?;
        Ok(created(&listed))
    }
}

/// The code of a missing helm binary: permanent, nothing to retry.
pub const HELM_MISSING: &str = "HelmMissing";

fn created(listed: &Listed) -> Created {
    Created {
        physical_id: format!("{}/{}", listed.namespace, listed.name),
        outputs: json!({
            "name": listed.name,
            "namespace": listed.namespace,
            "revision": listed.revision,
            "chart": listed.chart,
        }),
    }
}

fn helm_error(e: HelmError) -> ProviderError {
    let code = match &e {
        HelmError::Unusable { .. } => HELM_MISSING,
        HelmError::Cancelled(_) => aws::CANCELLED,
        HelmError::Failed { message, .. } if is_transient(message) => "HelmTransient",
        HelmError::Failed { .. } => "HelmFailed",
    };
    ProviderError::with_code(code, e.to_string())
}

/// Failures to reach the API server, or a release locked by an operation still running:
/// worth trying again.
fn is_transient(message: &str) -> bool {
    [
        "connection refused",
        "i/o timeout",
        "TLS handshake timeout",
        "context deadline exceeded",
        "another operation (install/upgrade/rollback) is in progress",
        "the server is currently unable to handle the request",
        "Unauthorized",
    ]
    .iter()
    .any(|m| message.contains(m))
}

impl ResourceKind for HelmRelease {
    const KIND: &'static str = KIND;
    type Inputs = Inputs;
    /// A new name or namespace is another release; chart, version, values and the cluster's
    /// access details upgrade in place.
    const REPLACE_ON: &'static [&'static str] = &["name", "namespace"];
    const UNIQUE_BY: &'static [&'static [&'static str]] = &[&["cluster", "namespace", "name"]];

    fn check(inputs: &Inputs) -> Result<(), String> {
        if inputs.timeout_seconds == 0 {
            return Err("timeout_seconds is 0".into());
        }
        Ok(())
    }
}

#[async_trait]
impl TypedProvider for HelmRelease {
    async fn create(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Created> {
        self.apply(ctx, inputs).await
    }

    async fn read(&self, ctx: &Ctx, id: &str, recorded: &Inputs) -> Result<Seen<Inputs>> {
        let mut inputs = recorded.clone();
        let helm = self.helm()?;
        let access = self.access(&inputs.cluster).await?;
        let (name, namespace) = (&inputs.release.name, &inputs.release.namespace);
        let listed = helm
            .status(&access, name, namespace, &ctx.cancel)
            .await
            .map_err(helm_error)?
            .ok_or_else(|| super::not_found("helm release", id))?;
        // What can drift: the chart version and the values (`{chart}-{version}`).
        let prefix = format!("{}-", chart_name(&inputs.release.chart));
        if let Some(version) = listed.chart.strip_prefix(&prefix) {
            inputs.release.version = version.to_string();
        }
        inputs.release.values = helm
            .values(&access, name, namespace, &ctx.cancel)
            .await
            .map_err(helm_error)?;
        Ok(Seen {
            inputs,
            outputs: created(&listed).outputs,
        })
    }

    async fn update(&self, ctx: &Ctx, _: &str, _: &Inputs, new: &Inputs) -> Result<Value> {
        Ok(self.apply(ctx, new).await?.outputs)
    }

    async fn delete(&self, ctx: &Ctx, _: &str, inputs: &Inputs) -> Result<()> {
        let access = self.access(&inputs.cluster).await?;
        self.helm()?
            .uninstall(
                &access,
                &inputs.release.name,
                &inputs.release.namespace,
                Duration::from_secs(inputs.timeout_seconds),
                &ctx.cancel,
            )
            .await
            .map_err(helm_error)
    }

    async fn find_existing(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Option<Created>> {
        let access = self.access(&inputs.cluster).await?;
        let (name, namespace) = (&inputs.release.name, &inputs.release.namespace);
        // The cluster is this stack's, and so is a release of this name in it. An
        // interrupted install may have left it failed or pending: finish it.
        match self
            .helm()?
            .status(&access, name, namespace, &ctx.cancel)
            .await
            .map_err(helm_error)?
        {
            None => Ok(None),
            Some(_) => self.apply(ctx, inputs).await.map(Some),
        }
    }

    fn classify(error: &ProviderError) -> ErrorClass {
        match error.code.as_deref() {
            Some("HelmTransient") => ErrorClass::Transient,
            Some("HelmFailed" | HELM_MISSING) => ErrorClass::Permanent,
            _ => aws::classify(error),
        }
    }
}

/// `argo-cd` of `argo-cd`, `oci://public.ecr.aws/karpenter/karpenter` or `./charts/demo`.
fn chart_name(chart: &str) -> &str {
    chart
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(chart)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_names_and_transient_failures() {
        assert_eq!(chart_name("argo-cd"), "argo-cd");
        assert_eq!(
            chart_name("oci://public.ecr.aws/karpenter/karpenter"),
            "karpenter"
        );
        assert_eq!(chart_name("/tmp/charts/demo/"), "demo");
        assert!(is_transient(
            "Kubernetes cluster unreachable: dial tcp: i/o timeout"
        ));
        assert!(!is_transient(
            "execution error at (demo/templates/x.yaml): values.bad"
        ));
    }
}
