//! Opt-in: the bootstrap releases against a real Kubernetes cluster. Set
//! `BYOC_E2E_KUBECONFIG` to the kubeconfig of a disposable cluster whose current user has a
//! bearer token (and that can pull the charts): the ArgoCD, cert-manager, External Secrets
//! and ingress-nginx releases the blueprint makes are installed with the real helm, read
//! back, the cluster is drained and the releases uninstalled. Karpenter is left out: it
//! needs the AWS side (IAM for its service account, its queue) of an EKS cluster. Skipped,
//! saying so, when the variable is not set; nothing here can run on the CI machine.

use std::time::Duration;

use anyhow::Context;
use byoc_components::blueprint::environment;
use byoc_components::helm::{Helm, Release};
use byoc_components::kube::{ClusterAccess, KubeClient};
use byoc_components::resources::helm_release;
use byoc_engine::{CancellationToken, resolve};
use byoc_model::EnvironmentConfig;
use byoc_testkit::workspace_root;
use serde_json::{Value, json};

/// The current context's server, CA and token.
fn access(kubeconfig: &str) -> anyhow::Result<ClusterAccess> {
    let config: Value = serde_norway::from_str(&std::fs::read_to_string(kubeconfig)?)?;
    let current = config["current-context"]
        .as_str()
        .context("current-context")?;
    let find = |list: &str, name: &str| {
        config[list]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["name"] == name)
            .cloned()
            .with_context(|| format!("{list} entry {name:?}"))
    };
    let context = find("contexts", current)?;
    let cluster = find(
        "clusters",
        context["context"]["cluster"].as_str().unwrap_or(""),
    )?;
    let user = find("users", context["context"]["user"].as_str().unwrap_or(""))?;
    Ok(ClusterAccess {
        name: current.to_string(),
        endpoint: cluster["cluster"]["server"]
            .as_str()
            .context("server")?
            .to_string(),
        ca_data: cluster["cluster"]["certificate-authority-data"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        token: user["user"]["token"]
            .as_str()
            .context("the e2e test needs a user with a bearer token")?
            .to_string(),
    })
}

#[tokio::test]
async fn bootstrap_releases_on_a_real_cluster() -> anyhow::Result<()> {
    let Ok(kubeconfig) = std::env::var("BYOC_E2E_KUBECONFIG") else {
        eprintln!(
            "skipped: set BYOC_E2E_KUBECONFIG to a disposable cluster's kubeconfig to run it"
        );
        return Ok(());
    };
    let access = access(&kubeconfig)?;
    let helm = Helm::locate(
        std::env::var("BYOC_HELM")
            .map(Into::into)
            .unwrap_or_else(|_| workspace_root().join(".tools/helm")),
    )
    .await?;
    let kube = KubeClient::new(&access)?;
    anyhow::ensure!(
        kube.get("/api/v1/namespaces").await?.is_some(),
        "the API answers"
    );

    let config = EnvironmentConfig::from_value(&json!({
        "region": "eu-west-1",
        "eks_mode": "auto",
        "components": {"argocd": {}, "cert_manager": {}, "external_secrets": {}, "ingress_nginx": {}},
    }))?;
    let outputs = json!({
        "cluster": {"name": access.name, "endpoint": access.endpoint, "certificate_authority": access.ca_data},
        "external-secrets-role": {"arn": "arn:aws:iam::111111111111:role/byoc-e2e"},
    });
    let lookup = |name: &str| outputs.get(name);
    let cancel = CancellationToken::new();
    let mut installed: Vec<Release> = Vec::new();
    for r in environment("e2e", &config)? {
        if r.kind != helm_release::KIND {
            continue;
        }
        let inputs: helm_release::Inputs =
            serde_json::from_value(resolve(&r.inputs, &lookup, false)?)?;
        let release = inputs.release;
        helm.upgrade_install(&access, &release, Duration::from_secs(600), &cancel)
            .await
            .with_context(|| format!("installing {}", release.name))?;
        let listed = helm
            .status(&access, &release.name, &release.namespace, &cancel)
            .await?
            .context("listed after install")?;
        assert_eq!(listed.status, "deployed", "{listed:?}");
        installed.push(release);
    }
    // The drain's view of the cluster: ingress-nginx's LoadBalancer Service is there.
    let services = kube.get("/api/v1/services").await?.context("services")?;
    assert!(services["items"].as_array().is_some_and(|s| !s.is_empty()));

    for release in installed.iter().rev() {
        helm.uninstall(
            &access,
            &release.name,
            &release.namespace,
            Duration::from_secs(600),
            &cancel,
        )
        .await?;
        assert!(
            helm.status(&access, &release.name, &release.namespace, &cancel)
                .await?
                .is_none()
        );
        // Uninstalling what is gone counts as done.
        helm.uninstall(
            &access,
            &release.name,
            &release.namespace,
            Duration::from_secs(60),
            &cancel,
        )
        .await?;
    }
    Ok(())
}
