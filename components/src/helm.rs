//! The helm CLI, as byoc drives it: its version checked once, releases installed
//! (`upgrade --install --atomic --wait`), read (`list`, `get values`) and uninstalled in a
//! cluster reached through a temporary kubeconfig, and rendered locally (`template`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use byoc_engine::CancellationToken;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::kube::ClusterAccess;

/// The oldest helm byoc drives: `upgrade --install --atomic --wait` and `-o json` as used
/// here have been stable since 3.14.
pub const MIN_VERSION: (u64, u64) = (3, 14);

/// The charts byoc ships inside its binary, named `byoc:{name}` in a release's `chart`.
const BUILTIN_CHARTS: &[(&str, &[(&str, &str)])] = &[(
    "karpenter-defaults",
    &[
        (
            "Chart.yaml",
            include_str!("../charts/karpenter-defaults/Chart.yaml"),
        ),
        (
            "templates/nodeclass.yaml",
            include_str!("../charts/karpenter-defaults/templates/nodeclass.yaml"),
        ),
        (
            "templates/nodepool.yaml",
            include_str!("../charts/karpenter-defaults/templates/nodepool.yaml"),
        ),
    ],
)];

/// The version of the built-in charts (they change with byoc).
pub const BUILTIN_CHART_VERSION: &str = "0.2.0";

#[derive(Debug, thiserror::Error)]
pub enum HelmError {
    #[error(
        "helm is not usable at {path}: {reason}. Install helm >= {}.{} or point --helm (BYOC_HELM) at it",
        MIN_VERSION.0,
        MIN_VERSION.1
    )]
    Unusable { path: String, reason: String },
    #[error("helm {command}: {message}")]
    Failed { command: String, message: String },
    #[error("helm {0}: cancelled")]
    Cancelled(String),
}

/// The helm binary, checked usable.
#[derive(Clone, Debug)]
pub struct Helm {
    path: PathBuf,
    version: String,
}

/// A chart release, as the environment config and the blueprint describe it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Release {
    pub name: String,
    pub namespace: String,
    /// A chart name in `repo`, an `oci://` reference, or a local path.
    pub chart: String,
    /// The chart repository URL (`--repo`); none for `oci://` and local charts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    pub version: String,
    /// The values helm gets (`--values`).
    pub values: Value,
}

/// A release as `helm list` shows it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Listed {
    pub name: String,
    pub namespace: String,
    pub revision: String,
    /// `deployed`, `failed`, `pending-install`, ...
    pub status: String,
    /// `{chart}-{version}`
    pub chart: String,
}

impl Helm {
    /// Finds helm at `path` (a file, or a name looked up in PATH) and checks its version.
    pub async fn locate(path: impl Into<PathBuf>) -> Result<Helm, HelmError> {
        let path = path.into();
        let unusable = |reason: String| HelmError::Unusable {
            path: path.display().to_string(),
            reason,
        };
        let out = tokio::process::Command::new(&path)
            .args(["version", "--short"])
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| unusable(e.to_string()))?;
        if !out.status.success() {
            return Err(unusable(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
        // `v3.17.2+gcc0bbbd`
        let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let numbers: Vec<u64> = version
            .trim_start_matches('v')
            .split(['.', '+', '-'])
            .take(2)
            .map(|n| n.parse().unwrap_or(0))
            .collect();
        match numbers[..] {
            [major, minor] if (major, minor) >= MIN_VERSION && major < 4 => {}
            _ => return Err(unusable(format!("version {version:?} is not supported"))),
        }
        Ok(Helm { path, version })
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// Installs or upgrades `release`, waiting until its resources are ready and rolling
    /// back if they are not within `timeout`.
    pub async fn upgrade_install(
        &self,
        access: &ClusterAccess,
        release: &Release,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<(), HelmError> {
        let values = values_file(&release.values)?;
        let chart = Chart::of(release)?;
        let mut args = vec!["upgrade", "--install", &release.name];
        args.extend(chart.args());
        args.extend(["--namespace", &release.namespace, "--create-namespace"]);
        let timeout = format!("{}s", timeout.as_secs());
        args.extend(["--atomic", "--wait", "--timeout", &timeout]);
        args.extend(["--values", path_str(values.path())?]);
        self.run(&args, Some(access), cancel).await.map(drop)
    }

    /// The release if it exists.
    pub async fn status(
        &self,
        access: &ClusterAccess,
        name: &str,
        namespace: &str,
        cancel: &CancellationToken,
    ) -> Result<Option<Listed>, HelmError> {
        let filter = format!("^{}$", regex_escape(name));
        let args = [
            "list",
            "--all",
            "--namespace",
            namespace,
            "--filter",
            &filter,
            "--output",
            "json",
        ];
        let out = self.run(&args, Some(access), cancel).await?;
        let listed: Vec<Listed> = serde_json::from_str(&out).map_err(|e| HelmError::Failed {
            command: "list".into(),
            message: format!("unexpected output ({e}): {out}"),
        })?;
        Ok(listed.into_iter().find(|r| r.name == name))
    }

    /// The values the release was installed with.
    pub async fn values(
        &self,
        access: &ClusterAccess,
        name: &str,
        namespace: &str,
        cancel: &CancellationToken,
    ) -> Result<Value, HelmError> {
        let args = [
            "get",
            "values",
            name,
            "--namespace",
            namespace,
            "--output",
            "json",
        ];
        let out = self.run(&args, Some(access), cancel).await?;
        serde_json::from_str(&out).map_err(|e| HelmError::Failed {
            command: "get values".into(),
            message: format!("unexpected output ({e}): {out}"),
        })
    }

    /// Uninstalls the release; one that is already gone counts as uninstalled.
    pub async fn uninstall(
        &self,
        access: &ClusterAccess,
        name: &str,
        namespace: &str,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<(), HelmError> {
        let timeout = format!("{}s", timeout.as_secs());
        let args = [
            "uninstall",
            name,
            "--namespace",
            namespace,
            "--wait",
            "--timeout",
            &timeout,
        ];
        match self.run(&args, Some(access), cancel).await {
            Err(HelmError::Failed { message, .. }) if message.contains("not found") => Ok(()),
            other => other.map(drop),
        }
    }

    /// Renders `release` locally (`helm template`), without a cluster.
    pub async fn template(
        &self,
        release: &Release,
        cancel: &CancellationToken,
    ) -> Result<String, HelmError> {
        let values = values_file(&release.values)?;
        let chart = Chart::of(release)?;
        let mut args = vec!["template", &release.name];
        args.extend(chart.args());
        args.extend(["--namespace", &release.namespace]);
        args.extend(["--values", path_str(values.path())?]);
        self.run(&args, None, cancel).await
    }

    /// Runs helm; stdout on success, stderr in the error otherwise. The kubeconfig file
    /// lives exactly as long as the process.
    async fn run(
        &self,
        args: &[&str],
        access: Option<&ClusterAccess>,
        cancel: &CancellationToken,
    ) -> Result<String, HelmError> {
        let command = args.iter().take(2).copied().collect::<Vec<_>>().join(" ");
        let kubeconfig = access
            .map(ClusterAccess::kubeconfig)
            .transpose()
            .map_err(|e| HelmError::Failed {
                command: command.clone(),
                message: format!("writing the kubeconfig: {e}"),
            })?;
        let mut cmd = tokio::process::Command::new(&self.path);
        cmd.args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            // Never the operator's own cluster: only the kubeconfig given here.
            .env_remove("KUBECONFIG");
        if let Some(file) = &kubeconfig {
            cmd.arg("--kubeconfig").arg(file.path());
        }
        let output = tokio::select! {
            out = cmd.output() => out.map_err(|e| HelmError::Failed {
                command: command.clone(),
                message: e.to_string(),
            })?,
            () = cancel.cancelled() => return Err(HelmError::Cancelled(command)),
        };
        drop(kubeconfig);
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(HelmError::Failed {
                command,
                message: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            })
        }
    }
}

/// Where helm finds a release's chart: as given, or a built-in chart written out to a
/// temporary directory that lives as long as this.
struct Chart<'a> {
    release: &'a Release,
    builtin: Option<(tempfile::TempDir, String)>,
}

impl<'a> Chart<'a> {
    fn of(release: &'a Release) -> Result<Chart<'a>, HelmError> {
        let Some(name) = release.chart.strip_prefix("byoc:") else {
            return Ok(Chart {
                release,
                builtin: None,
            });
        };
        let failed = |message: String| HelmError::Failed {
            command: "chart".into(),
            message,
        };
        let (_, files) = BUILTIN_CHARTS
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| failed(format!("byoc ships no chart {name:?}")))?;
        let dir = tempfile::Builder::new()
            .prefix("byoc-chart-")
            .tempdir()
            .map_err(|e| failed(e.to_string()))?;
        for (path, text) in *files {
            let path = dir.path().join(name).join(path);
            let parent = path
                .parent()
                .expect("chart files are in the chart's directory");
            std::fs::create_dir_all(parent).map_err(|e| failed(e.to_string()))?;
            std::fs::write(&path, text).map_err(|e| failed(e.to_string()))?;
        }
        let path = dir.path().join(name);
        let path = path_str(&path)?.to_string();
        Ok(Chart {
            release,
            builtin: Some((dir, path)),
        })
    }

    fn args(&self) -> Vec<&str> {
        let release = self.release;
        let chart = match &self.builtin {
            Some((_, path)) => path.as_str(),
            None => release.chart.as_str(),
        };
        let mut args = vec![chart, "--version", &release.version];
        if let Some(repo) = &release.repo {
            args.extend(["--repo", repo]);
        }
        args
    }
}

/// The values as a 0600 temporary file (JSON is YAML), removed when dropped.
fn values_file(values: &Value) -> Result<tempfile::NamedTempFile, HelmError> {
    let failed = |e: std::io::Error| HelmError::Failed {
        command: "values".into(),
        message: format!("writing the values file: {e}"),
    };
    let file = tempfile::Builder::new()
        .prefix("byoc-values-")
        .suffix(".json")
        .tempfile()
        .map_err(failed)?;
    std::fs::write(file.path(), values.to_string()).map_err(failed)?;
    Ok(file)
}

fn path_str(path: &Path) -> Result<&str, HelmError> {
    path.to_str().ok_or_else(|| HelmError::Failed {
        command: "values".into(),
        message: format!("temporary path {} is not UTF-8", path.display()),
    })
}

/// Release names are DNS labels; escape anyway, `--filter` takes a regex.
fn regex_escape(name: &str) -> String {
    name.chars()
        .flat_map(|c| {
            let special = !c.is_ascii_alphanumeric() && c != '-';
            special.then_some('\\').into_iter().chain([c])
        })
        .collect()
}
