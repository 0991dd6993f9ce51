//! How byoc runs the helm binary, seen through a stand-in `helm` script that records each
//! call's arguments and environment: tenant-given names come after `--`, and helm gets none
//! of the worker's environment (its AWS credentials above all), only byoc's own HOME.
//! The only test in this binary: it sets process environment variables.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use byoc_components::helm::{Helm, HelmError, Release};
use byoc_components::kube::ClusterAccess;
use byoc_engine::CancellationToken;
use serde_json::json;

const FAKE_HELM: &str = r#"#!/bin/sh
# Records its call, then answers as helm would.
{
  echo call
  for arg in "$@"; do printf 'arg %s\n' "$arg"; done
  env | sed 's/^/env /'
} >> "$(dirname "$0")/calls"
case "$1" in
  version) echo v3.17.2+gfake ;;
  list) echo '[{"name":"argocd","namespace":"argocd","revision":"1","status":"deployed","chart":"argo-cd-7.8.26"}]' ;;
  get) printf 'Error: \033[31mboom\033[0m as AKIAIOSFODNN7EXAMPLE\n' >&2; exit 1 ;;
esac
"#;

/// One recorded call: its arguments and its environment.
struct Call {
    args: Vec<String>,
    env: BTreeMap<String, String>,
}

fn calls(text: &str) -> Vec<Call> {
    let mut calls = Vec::new();
    for line in text.lines() {
        if line == "call" {
            calls.push(Call {
                args: Vec::new(),
                env: BTreeMap::new(),
            });
        } else if let Some(arg) = line.strip_prefix("arg ") {
            calls.last_mut().unwrap().args.push(arg.to_string());
        } else if let Some((key, value)) = line.strip_prefix("env ").and_then(|v| v.split_once('='))
        {
            let env = &mut calls.last_mut().unwrap().env;
            env.insert(key.to_string(), value.to_string());
        }
    }
    calls
}

#[tokio::test]
async fn helm_gets_names_after_dashes_and_none_of_the_workers_environment() -> anyhow::Result<()> {
    // SAFETY: set before anything else in this binary reads the environment or spawns
    // threads that do (this is its only test).
    unsafe {
        std::env::set_var("BYOC_TEST_SECRET", "x");
        std::env::set_var("AWS_ACCESS_KEY_ID", "AKIAPLATFORMKEY00001");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "platform-secret");
        std::env::set_var("AWS_SESSION_TOKEN", "platform-session");
        std::env::set_var("KUBECONFIG", "/root/.kube/config");
        std::env::set_var(
            "HELM_REPOSITORY_CONFIG",
            "/root/.config/helm/repositories.yaml",
        );
    }
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("helm");
    std::fs::write(&path, FAKE_HELM)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;

    let helm = Helm::locate(&path).await?;
    let access = ClusterAccess {
        name: "acme-dev".into(),
        endpoint: "https://ABC.gr7.eu-west-1.eks.amazonaws.com".into(),
        ca_data: "Q0EgZGF0YQ==".into(),
        token: "k8s-aws-v1.token".into(),
    };
    let release = Release {
        name: "argocd".into(),
        namespace: "argocd".into(),
        chart: "argo-cd".into(),
        repo: Some("https://argoproj.github.io/argo-helm".into()),
        version: "7.8.26".into(),
        values: json!({}),
    };
    let cancel = CancellationToken::new();
    let timeout = Duration::from_secs(60);
    helm.upgrade_install(&access, &release, timeout, &cancel)
        .await?;
    let listed = helm.status(&access, "argocd", "argocd", &cancel).await?;
    assert_eq!(listed.map(|l| l.status).as_deref(), Some("deployed"));
    helm.uninstall(&access, "argocd", "argocd", timeout, &cancel)
        .await?;
    helm.template(&release, &cancel).await?;
    // What helm prints reaches the tenant bounded and scrubbed.
    let HelmError::Failed { message, .. } = helm
        .values(&access, "argocd", "argocd", &cancel)
        .await
        .unwrap_err()
    else {
        panic!("a failed helm call is HelmError::Failed");
    };
    assert!(
        message.contains("boom") && message.contains("[redacted]"),
        "{message}"
    );
    assert!(
        !message.contains("AKIA") && !message.contains('\x1b'),
        "{message}"
    );

    let calls = calls(&std::fs::read_to_string(dir.path().join("calls"))?);
    let commands: Vec<&str> = calls.iter().map(|c| c.args[0].as_str()).collect();
    assert_eq!(
        commands,
        ["version", "upgrade", "list", "uninstall", "template", "get"]
    );
    let home = helm.home().to_str().unwrap();
    for call in &calls {
        // Positional arguments only after `--`, every flag (the kubeconfig too) before it.
        let after: Vec<&str> = match call.args.iter().position(|a| a == "--") {
            Some(dashes) => {
                assert!(
                    call.args[..dashes].iter().any(|a| a == "--namespace"),
                    "{:?}",
                    call.args
                );
                call.args[dashes + 1..].iter().map(String::as_str).collect()
            }
            None => Vec::new(),
        };
        let expected: &[&str] = match call.args[0].as_str() {
            "upgrade" | "template" => &["argocd", "argo-cd"],
            "uninstall" | "get" => &["argocd"],
            _ => &[],
        };
        assert_eq!(after, expected, "{:?}", call.args);
        if call.args[0] != "version" && call.args[0] != "template" {
            let kubeconfig = call.args.iter().position(|a| a == "--kubeconfig");
            assert!(kubeconfig.is_some(), "{:?}", call.args);
        }

        // The environment: byoc's HOME and helm directories, PATH, and what sh adds itself.
        let env = &call.env;
        assert_eq!(env.get("HOME").map(String::as_str), Some(home), "{env:?}");
        assert_ne!(std::env::var("HOME").ok().as_deref(), Some(home));
        for dir in ["HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"] {
            assert!(env[dir].starts_with(home), "{dir}: {env:?}");
        }
        let allowed = [
            "PATH",
            "HOME",
            "HELM_CACHE_HOME",
            "HELM_CONFIG_HOME",
            "HELM_DATA_HOME",
            // sh's own.
            "PWD",
            "OLDPWD",
            "SHLVL",
            "_",
        ];
        let extra: Vec<&String> = env
            .keys()
            .filter(|k| !allowed.contains(&k.as_str()))
            .collect();
        assert!(extra.is_empty(), "helm inherited {extra:?}");
        assert!(!env.keys().any(|k| k.starts_with("AWS_")), "{env:?}");
        assert!(!env.contains_key("BYOC_TEST_SECRET"), "{env:?}");
    }
    Ok(())
}
