//! The helm CLI, as byoc drives it: its version checked once, releases installed
//! (`upgrade --install --atomic --wait`), read (`list`, `get values`) and uninstalled in a
//! cluster reached through a temporary kubeconfig, and rendered locally (`template`).
//!
//! Charts and release names come from tenants' configs, so helm gets them after `--` (never
//! read as flags), runs with none of the worker's environment (its AWS credentials above
//! all), and what it prints reaches the tenant only through [`sanitize`].

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
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
    /// helm's HOME, with its cache, config and data: byoc's own for this process, so helm
    /// reads no operator's repositories, registry logins or plugins.
    home: Arc<tempfile::TempDir>,
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
            reason: sanitize(&reason),
        };
        let home = tempfile::Builder::new()
            .prefix("byoc-helm-")
            .tempdir()
            .map_err(|e| unusable(format!("making its home directory: {e}")))?;
        let out = helm_command(&path, home.path())
            .args(["version", "--short"])
            .output()
            .await
            .map_err(|e| unusable(e.to_string()))?;
        if !out.status.success() {
            return Err(unusable(String::from_utf8_lossy(&out.stderr).into_owned()));
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
        Ok(Helm {
            path,
            version,
            home: Arc::new(home),
        })
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// The HOME helm runs with (its cache, config and data directories are in it).
    pub fn home(&self) -> &Path {
        self.home.path()
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
        let mut args = vec!["upgrade", "--install"];
        args.extend(chart.flags());
        args.extend(["--namespace", &release.namespace, "--create-namespace"]);
        let timeout = format!("{}s", timeout.as_secs());
        args.extend(["--atomic", "--wait", "--timeout", &timeout]);
        args.extend(["--values", path_str(values.path())?]);
        let positional = [release.name.as_str(), chart.path()];
        self.run(&args, &positional, Some(access), cancel)
            .await
            .map(drop)
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
        let out = self.run(&args, &[], Some(access), cancel).await?;
        let listed: Vec<Listed> = serde_json::from_str(&out)
            .map_err(|e| HelmError::failed("list", &format!("unexpected output ({e}): {out}")))?;
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
            "--namespace",
            namespace,
            "--output",
            "json",
        ];
        let out = self.run(&args, &[name], Some(access), cancel).await?;
        serde_json::from_str(&out).map_err(|e| {
            HelmError::failed("get values", &format!("unexpected output ({e}): {out}"))
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
            "--namespace",
            namespace,
            "--wait",
            "--timeout",
            &timeout,
        ];
        match self.run(&args, &[name], Some(access), cancel).await {
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
        let mut args = vec!["template"];
        args.extend(chart.flags());
        args.extend(["--namespace", &release.namespace]);
        args.extend(["--values", path_str(values.path())?]);
        self.run(&args, &[&release.name, chart.path()], None, cancel)
            .await
    }

    /// Runs helm with `args` (the subcommand and its flags), then `--` and `positional`:
    /// stdout on success, stderr in the error otherwise. The kubeconfig file lives exactly
    /// as long as the process.
    async fn run(
        &self,
        args: &[&str],
        positional: &[&str],
        access: Option<&ClusterAccess>,
        cancel: &CancellationToken,
    ) -> Result<String, HelmError> {
        let command = args
            .iter()
            .take_while(|a| !a.starts_with('-'))
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        let kubeconfig = access
            .map(ClusterAccess::kubeconfig)
            .transpose()
            .map_err(|e| HelmError::failed(&command, &format!("writing the kubeconfig: {e}")))?;
        let mut cmd = helm_command(&self.path, self.home());
        cmd.args(args);
        if let Some(file) = &kubeconfig {
            cmd.arg("--kubeconfig").arg(file.path());
        }
        if !positional.is_empty() {
            // A release or chart name starting with `-` stays a name.
            cmd.arg("--").args(positional);
        }
        let output = tokio::select! {
            out = cmd.output() => out.map_err(|e| HelmError::failed(&command, &e.to_string()))?,
            () = cancel.cancelled() => return Err(HelmError::Cancelled(command)),
        };
        drop(kubeconfig);
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(HelmError::failed(
                &command,
                &String::from_utf8_lossy(&output.stderr),
            ))
        }
    }
}

impl HelmError {
    /// A failure whose message may hold helm's output: it ends up in the run's error and
    /// events, which the tenant reads, so it is sanitised.
    fn failed(command: &str, message: &str) -> HelmError {
        HelmError::Failed {
            command: command.to_string(),
            message: sanitize(message),
        }
    }
}

/// helm at `path` with none of the worker's environment: not its AWS credentials (the
/// kubeconfig carries a bearer token, so helm needs none), not its KUBECONFIG, not its
/// helm settings. PATH stays (helm looks up nothing secret in it); HOME and helm's own
/// directories are `home`.
fn helm_command(path: &Path, home: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(path);
    cmd.env_clear()
        .env("HOME", home)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd
}

/// The most characters of helm's output an error carries.
pub const MAX_MESSAGE_CHARS: usize = 2000;

const REDACTED: &str = "[redacted]";

/// `text` as a tenant may read it: control characters (terminal escapes, carriage returns,
/// bidirectional overrides) gone but for newlines and tabs; what looks like a credential
/// (AWS access key ids, EKS tokens, `Authorization` and bearer values, `secret=`/`token:`
/// values, URL user info) redacted; at most [`MAX_MESSAGE_CHARS`], its start and its end
/// kept (helm prints its `Error:` line last).
pub fn sanitize(text: &str) -> String {
    let bidi = |c: char| matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    let clean: String = text
        .trim()
        .chars()
        .filter(|&c| matches!(c, '\n' | '\t') || !(c.is_control() || bidi(c)))
        .collect();
    let redacted = redact(&clean);
    let count = redacted.chars().count();
    if count <= MAX_MESSAGE_CHARS {
        return redacted;
    }
    // The marker fits in 40 characters for any count.
    let keep = MAX_MESSAGE_CHARS - 40;
    let (head, tail) = (keep / 2, keep - keep / 2);
    let start: String = redacted.chars().take(head).collect();
    let end: String = redacted.chars().skip(count - tail).collect();
    format!("{start}\n[... {} characters cut ...]\n{end}", count - keep)
}

/// Keys whose `key=value` / `key: value` values are secrets.
const SECRET_KEYS: &[&str] = &[
    "secret",
    "password",
    "passwd",
    "token",
    "signature",
    "credential",
    "api-key",
    "api_key",
    "apikey",
];

/// [`sanitize`]'s redaction, one pass over `text`.
fn redact(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    // Where a value starting at `from` ends: at whitespace, a quote or a separator.
    let value_end = |from: usize| {
        text[from..]
            .find(|c: char| c.is_whitespace() || "\"'&,;".contains(c))
            .map_or(text.len(), |n| from + n)
    };
    while i < text.len() {
        let rest = &text[i..];
        let lrest = &lower[i..];
        let boundary = !text[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric());
        // AWS access key ids: AKIA (long-lived) or ASIA (temporary) and 16 more.
        if boundary
            && (rest.starts_with("AKIA") || rest.starts_with("ASIA"))
            && rest
                .bytes()
                .skip(4)
                .take(16)
                .filter(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
                .count()
                == 16
        {
            out.push_str(REDACTED);
            i += 20;
            continue;
        }
        // An EKS token, and a URL's user info.
        if lrest.starts_with("k8s-aws-v1.") {
            out.push_str(REDACTED);
            i = value_end(i);
            continue;
        }
        if let Some(after) = rest.strip_prefix("://") {
            let authority = after
                .find(|c: char| c == '/' || c.is_whitespace() || "\"'".contains(c))
                .unwrap_or(after.len());
            if let Some(at) = after[..authority].rfind('@') {
                out.push_str("://");
                out.push_str(REDACTED);
                i += 3 + at;
                continue;
            }
        }
        // `Authorization: ...`: the rest of the line.
        if boundary && lrest.starts_with("authorization") {
            let key = "authorization".len();
            let sep = lrest[key..]
                .find(|c: char| !" \t\"':=".contains(c))
                .map_or(lrest.len() - key, |n| n);
            if lrest[key..key + sep].contains([':', '=']) {
                out.push_str(&rest[..key + sep]);
                out.push_str(REDACTED);
                i = text[i..].find('\n').map_or(text.len(), |n| i + n);
                continue;
            }
        }
        // `Bearer x`, `Basic x`: the next word.
        if boundary && (lrest.starts_with("bearer ") || lrest.starts_with("basic ")) {
            let word = rest.find(' ').expect("a space");
            let spaces = rest[word..].len() - rest[word..].trim_start_matches(' ').len();
            let start = i + word + spaces;
            if value_end(start) > start {
                out.push_str(&text[i..start]);
                out.push_str(REDACTED);
                i = value_end(start);
                continue;
            }
        }
        // `...secret=x`, `"token": "x"`, `X-Amz-Signature=x`: the value.
        if let Some(key) = SECRET_KEYS.iter().find(|k| lrest.starts_with(**k)) {
            let name_end = key.len()
                + lrest[key.len()..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                    .unwrap_or(lrest.len() - key.len());
            let sep = lrest[name_end..]
                .find(|c: char| !" \t\"':=".contains(c))
                .map_or(lrest.len() - name_end, |n| n);
            let start = i + name_end + sep;
            if lrest[name_end..name_end + sep].contains([':', '=']) && value_end(start) > start {
                out.push_str(&text[i..start]);
                out.push_str(REDACTED);
                i = value_end(start);
                continue;
            }
        }
        let c = rest.chars().next().expect("not at the end");
        out.push(c);
        i += c.len_utf8();
    }
    out
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
        let failed = |message: String| HelmError::failed("chart", &message);
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

    /// The chart as helm's positional argument.
    fn path(&self) -> &str {
        match &self.builtin {
            Some((_, path)) => path,
            None => &self.release.chart,
        }
    }

    fn flags(&self) -> Vec<&str> {
        let release = self.release;
        let mut args = vec!["--version", &release.version];
        if let Some(repo) = &release.repo {
            args.extend(["--repo", repo]);
        }
        args
    }
}

/// The values as a 0600 temporary file (JSON is YAML), removed when dropped.
fn values_file(values: &Value) -> Result<tempfile::NamedTempFile, HelmError> {
    let failed =
        |e: std::io::Error| HelmError::failed("values", &format!("writing the values file: {e}"));
    let file = tempfile::Builder::new()
        .prefix("byoc-values-")
        .suffix(".json")
        .tempfile()
        .map_err(failed)?;
    std::fs::write(file.path(), values.to_string()).map_err(failed)?;
    Ok(file)
}

fn path_str(path: &Path) -> Result<&str, HelmError> {
    path.to_str().ok_or_else(|| {
        HelmError::failed(
            "values",
            &format!("temporary path {} is not UTF-8", path.display()),
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_strips_control_characters_and_redacts_credentials() {
        let text = "\x1b[31mError:\x1b[0m upgrade failed\r\n\tat \u{202e}x\u{0}\n";
        assert_eq!(sanitize(text), "[31mError:[0m upgrade failed\n\tat x");
        for (text, secret) in [
            ("key AKIAIOSFODNN7EXAMPLE leaked", "AKIAIOSFODNN7EXAMPLE"),
            ("(ASIA0123456789ABCDEF)", "ASIA0123456789ABCDEF"),
            ("Authorization: Bearer abc.def", "abc.def"),
            ("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
            ("{\"authorization\":\"AWS4 sig\"}", "sig"),
            ("got 401 for bearer eyJhbGciOi.x.y here", "eyJhbGciOi"),
            (
                "token k8s-aws-v1.aHR0cHM6Ly9zdHM rejected",
                "aHR0cHM6Ly9zdHM",
            ),
            (
                "get https://sts.amazonaws.com/?X-Amz-Credential=ASIAX%2F2024&X-Amz-Security-Token=FwoGZX&X-Amz-Signature=0a1b2c",
                "FwoGZX",
            ),
            ("X-Amz-Signature=0a1b2c&x=1", "0a1b2c"),
            ("aws_secret_access_key = wJalrXUtnFEMI", "wJalrXUtnFEMI"),
            ("{\"password\": \"hunter2\"}", "hunter2"),
            ("pull https://robot:s3cret@charts.example.com/x", "s3cret"),
            ("oci://user@registry.example.com/x", "user@"),
        ] {
            let clean = sanitize(text);
            assert!(!clean.contains(secret), "{text} -> {clean}");
            assert!(clean.contains(REDACTED), "{text} -> {clean}");
        }
        // Helm's own words stay.
        let error = "Error: INSTALLATION FAILED: chart \"argo-cd\" version \"9.9.9\" not found in https://argoproj.github.io/argo-helm repository";
        assert_eq!(sanitize(error), error);
        assert_eq!(
            sanitize("Error: uninstall: Release not loaded: argocd: release: not found"),
            "Error: uninstall: Release not loaded: argocd: release: not found"
        );
    }

    #[test]
    fn sanitize_bounds_the_message_keeping_its_start_and_end() {
        let long = format!("Warning: start\n{}\nError: the end", "x".repeat(10_000));
        let short = sanitize(&long);
        assert!(
            short.chars().count() <= MAX_MESSAGE_CHARS,
            "{}",
            short.len()
        );
        assert!(short.starts_with("Warning: start"), "{short}");
        assert!(short.ends_with("Error: the end"), "{short}");
        assert!(short.contains(" characters cut ...]"), "{short}");
        let exactly = "y".repeat(MAX_MESSAGE_CHARS);
        assert_eq!(sanitize(&exactly), exactly);
        // Characters, not bytes: a multi-byte text is cut on character boundaries.
        assert!(sanitize(&"é".repeat(5_000)).chars().count() <= MAX_MESSAGE_CHARS);
    }
}
