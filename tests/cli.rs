//! The `byoc` client commands, run as the real binary against a live `byoc serve` (with its
//! embedded workers deploying into the emulator).

use std::path::Path;
use std::process::{Command, Output, Stdio};

use anyhow::{Context, bail};
use byoc_testkit::{ADMIN_TOKEN, ByocProcess, Emulator, TestDb};
use serde_json::Value;

const ADMIN: &str = ADMIN_TOKEN;

struct Server {
    _process: ByocProcess,
    url: String,
}

impl Server {
    fn start(database_url: &str, emulator: &str) -> anyhow::Result<Server> {
        let bin = Path::new(env!("CARGO_BIN_EXE_byoc"));
        let mut command = ByocProcess::command(bin, database_url, Some(emulator));
        command.args(["serve", "--listen", "127.0.0.1:0"]);
        command.stderr(Stdio::null());
        let process = ByocProcess::serve(command)?;
        Ok(Server {
            url: process.url().to_string(),
            _process: process,
        })
    }

    /// Runs `byoc ARGS` against this server with the admin token.
    fn byoc(&self, args: &[&str]) -> anyhow::Result<Output> {
        Ok(Command::new(env!("CARGO_BIN_EXE_byoc"))
            .args(args)
            .env("BYOC_URL", &self.url)
            .env("BYOC_TOKEN", ADMIN)
            .output()?)
    }

    fn ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.byoc(args)?;
        let stdout = String::from_utf8(out.stdout)?;
        let stderr = String::from_utf8(out.stderr)?;
        anyhow::ensure!(
            out.status.success(),
            "byoc {args:?} failed: {stderr}\n{stdout}"
        );
        Ok(stdout)
    }

    fn json(&self, args: &[&str]) -> anyhow::Result<Value> {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let text = self.ok(&all)?;
        serde_json::from_str(&text).with_context(|| text)
    }
}

async fn get_text(server: &Server, path: &str) -> anyhow::Result<String> {
    let resp = reqwest::Client::new()
        .get(format!("{}{path}", server.url))
        .bearer_auth(ADMIN)
        .send()
        .await?;
    anyhow::ensure!(resp.status().is_success(), "{path}: {}", resp.status());
    Ok(resp.text().await?)
}

async fn until_ready(url: &str) -> anyhow::Result<()> {
    for _ in 0..200 {
        if let Ok(r) = reqwest::get(format!("{url}/readyz")).await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    bail!("{url} never became ready")
}

#[tokio::test]
async fn cli_drives_a_tenant_from_creation_to_a_watched_deploy() -> anyhow::Result<()> {
    // Postgres from a fresh (unmigrated) database: the server migrates it at start.
    let databases = TestDb::both("empty", |_| async { Ok(()) }).await?;
    for t in &databases {
        drive(t).await.with_context(|| format!("on {}", t.url()))?;
    }
    Ok(())
}

async fn drive(t: &TestDb) -> anyhow::Result<()> {
    let emulator = Emulator::shared();
    let server = Server::start(t.url(), emulator.endpoint())?;
    until_ready(&server.url).await?;
    let account = emulator.fresh_account();

    let created = server.json(&[
        "tenant",
        "create",
        "--slug",
        "acme",
        "--name",
        "Acme",
        "--account",
        &account,
    ])?;
    assert_eq!(created["tenant"]["slug"], "acme");
    assert!(
        created["external_id"]
            .as_str()
            .is_some_and(|e| e.len() >= 32)
    );
    let table = server.ok(&["tenant", "list"])?;
    assert!(table.lines().next().unwrap().starts_with("SLUG"), "{table}");
    assert!(
        table.contains("acme") && table.contains(&account),
        "{table}"
    );

    let dir = tempfile::tempdir()?;
    let file = dir.path().join("dev.yaml");
    std::fs::write(
        &file,
        "region: us-east-1\neks_mode: managed\nnode_group_config:\n  desired_size: 2\n  min_size: 1\n  max_size: 3\n  instance_types: [m6i.large]\n  disk_size: 50\n",
    )?;
    let saved = server.json(&[
        "env",
        "config",
        "set",
        "acme",
        "dev",
        "-f",
        file.to_str().unwrap(),
    ])?;
    assert_eq!(saved["version"], 1);
    let shown = server.ok(&["env", "config", "show", "acme", "dev"])?;
    assert!(shown.contains("eks_mode: managed"), "{shown}");

    // A bad config is refused with the field named, and a non-zero exit.
    std::fs::write(&file, "region: us-east-1\naz_count: 7\n")?;
    let out = server.byoc(&[
        "env",
        "config",
        "set",
        "acme",
        "dev",
        "-f",
        file.to_str().unwrap(),
    ])?;
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr)?;
    assert!(stderr.contains("az_count"), "{stderr}");

    // Until the customer's account trusts byoc, deploys are refused at once.
    let out = server.byoc(&["deploy", "acme", "dev"])?;
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr)?;
    assert!(stderr.contains("pending_trust"), "{stderr}");
    // Verifying before the customer launched the trust stack says what is missing.
    let out = server.byoc(&["tenant", "verify", "acme"])?;
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr)?;
    assert!(
        stderr.contains("trust_failed") && stderr.contains("no trust stack byoc-trust"),
        "{stderr}"
    );
    // The customer launches the template byoc hands out, with the tenant's external id.
    let template = dir.path().join("trust.yaml");
    server.ok(&[
        "tenant",
        "trust-template",
        "acme",
        "-o",
        template.to_str().unwrap(),
    ])?;
    assert!(std::fs::read_to_string(&template)?.contains("sts:ExternalId"));
    let external_id = created["external_id"].as_str().context("external id")?;
    emulator.launch_trust_stack(&account, external_id, &["--tenant-slug", "acme"])?;
    let verified = server.ok(&["tenant", "verify", "acme", "--region", "us-east-1"])?;
    assert!(verified.contains("trusted"), "{verified}");
    let shown = server.json(&["tenant", "show", "acme"])?;
    assert_eq!(shown["tenant"]["onboarding_status"], "trusted", "{shown}");
    assert_eq!(
        shown["tenant"]["trust_template_version"],
        byoc_model::TRUST_TEMPLATE_VERSION
    );

    // Deploy and follow the run's SSE stream to its end.
    let watched = server.ok(&["deploy", "acme", "dev", "--watch"])?;
    assert!(watched.contains("succeeded"), "{watched}");
    assert!(
        watched.contains("cluster"),
        "events name resources: {watched}"
    );
    let status = server.json(&["status", "acme", "dev"])?;
    assert_eq!(status["status"]["last_run"]["status"], "succeeded");
    assert!(
        status["outputs"]["cluster"]["endpoint"].as_str().is_some(),
        "{status}"
    );
    let runs = server.ok(&["runs", "list", "acme", "dev"])?;
    assert!(
        runs.contains("deploy") && runs.contains("succeeded"),
        "{runs}"
    );

    // The worker recorded the platform account (moto's default account) for the template.
    let trust: Value =
        serde_json::from_str(&get_text(&server, "/api/v1/tenants/acme/trust-template").await?)?;
    assert_eq!(
        trust["parameters"]["TrustedAccountId"], "123456789012",
        "{trust}"
    );

    // The graph, the state history and the audit log of what just happened.
    let env = "/api/v1/tenants/acme/environments/dev";
    let mermaid = get_text(&server, &format!("{env}/graph?format=mermaid")).await?;
    assert!(
        mermaid.starts_with("graph LR") && mermaid.contains("-->") && mermaid.contains("vpc"),
        "{mermaid}"
    );
    let dot = get_text(&server, &format!("{env}/graph?format=dot")).await?;
    assert!(dot.contains("\"vpc\" -> \"subnet-private-a\""), "{dot}");
    let graph: Value = serde_json::from_str(&get_text(&server, &format!("{env}/graph")).await?)?;
    assert_eq!(graph["nodes"].as_array().unwrap().len(), 26);
    let history: Value =
        serde_json::from_str(&get_text(&server, &format!("{env}/state/history")).await?)?;
    assert_eq!(history["versions"][0]["version"], 1, "{history}");
    let audit: Value = serde_json::from_str(&get_text(&server, "/api/v1/audit").await?)?;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for expected in ["tenant.create", "config.save", "run.request.deploy"] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }

    // The stack commands, by stack name.
    let state = server.ok(&["stack", "show", "acme", "dev"])?;
    assert!(
        state.lines().next().unwrap().starts_with("RESOURCE"),
        "{state}"
    );
    assert!(
        state.contains("aws:eks:Cluster") && state.contains("vpc-"),
        "{state}"
    );
    let versions = server.ok(&["stack", "history", "acme", "dev"])?;
    assert!(versions.lines().count() >= 2, "{versions}");
    assert!(versions.contains("create: 26"), "{versions}");
    let graph = server.ok(&["stack", "graph", "acme", "dev", "--format", "json"])?;
    let graph: Value = serde_json::from_str(&graph)?;
    assert_eq!(graph["nodes"].as_array().map(Vec::len), Some(26), "{graph}");
    let graph = server.ok(&["stack", "graph", "acme", "dev", "--format", "dot"])?;
    assert!(graph.starts_with("digraph"), "{graph}");
    let out = server.byoc(&["stack", "show", "nope", "dev"])?;
    assert!(!out.status.success());

    // On a terminal, watch draws a line per resource and a summary.
    let run = status["status"]["last_run"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let command = format!(
        "BYOC_URL={} BYOC_TOKEN={ADMIN} {} watch {run}",
        server.url,
        env!("CARGO_BIN_EXE_byoc")
    );
    let tty = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .output()?;
    let drawn = String::from_utf8_lossy(&tty.stdout);
    assert!(tty.status.success(), "{drawn}");
    assert!(
        drawn.contains("✓ vpc")
            && drawn.contains("26/26 steps")
            && drawn.contains("succeeded (0 failed)"),
        "{drawn}"
    );

    let completions = server.ok(&["completions", "bash"])?;
    assert!(completions.contains("byoc"), "{completions}");

    // A refresh compares the state with the emulator and records the drift it found.
    let refreshed = server.ok(&["refresh", "acme", "dev", "--watch"])?;
    assert!(refreshed.contains("succeeded"), "{refreshed}");
    let status = server.json(&["status", "acme", "dev"])?;
    // Right after a deploy, every read agrees with the recorded state.
    assert_eq!(status["drift"]["drift"], serde_json::json!([]), "{status}");

    // The unchanged config previews as no change.
    let preview = server.ok(&["preview", "acme", "dev"])?;
    assert!(preview.contains("No changes. 26 unchanged."), "{preview}");

    // A change previews as a diff of the plan the run recorded (its PlanView), field by field.
    let config = |desired: u32, instance: &str| {
        format!(
            "region: us-east-1\neks_mode: managed\nnode_group_config:\n  desired_size: {desired}\n  min_size: 1\n  max_size: 3\n  instance_types: [{instance}]\n  disk_size: 50\n"
        )
    };
    let set = |desired, instance| -> anyhow::Result<String> {
        std::fs::write(&file, config(desired, instance))?;
        server.ok(&[
            "env",
            "config",
            "set",
            "acme",
            "dev",
            "-f",
            file.to_str().unwrap(),
        ])
    };
    set(3, "m6i.large")?;
    let preview = server.ok(&["preview", "acme", "dev"])?;
    assert!(
        preview.contains("  ~ nodegroup-default (aws:eks:Nodegroup): changed")
            && preview.contains("      ~ scaling.desired_size = 2 -> 3\n")
            && preview.ends_with("\nPlan: 0 to create, 1 to update, 0 to replace, 0 to delete.\n"),
        "{preview}"
    );
    let plan = server.json(&["preview", "acme", "dev"])?;
    assert_eq!(plan["counts"]["update"], 1, "{plan}");
    assert_eq!(plan["counts"]["unchanged"], 25, "{plan}");
    set(2, "m6i.xlarge")?;
    let preview = server.ok(&["preview", "acme", "dev"])?;
    assert!(
        preview.contains(
            "  +/- nodegroup-default (aws:eks:Nodegroup): instance_types, name forces replacement"
        ) && preview.contains(
            r#"      ~ instance_types = ["m6i.large"] -> ["m6i.xlarge"]  # forces replacement"#
        ) && preview.ends_with("\nPlan: 0 to create, 0 to update, 1 to replace, 0 to delete.\n"),
        "{preview}"
    );

    let token = server.json(&["token", "create", "acme-ci", "--tenant", "acme"])?;
    assert!(token["secret"].as_str().unwrap().starts_with("byoc_"));
    let tokens = server.ok(&["token", "list"])?;
    assert!(tokens.contains("acme-ci"), "{tokens}");

    let destroyed = server.ok(&["destroy", "acme", "dev", "--watch"])?;
    assert!(destroyed.contains("succeeded"), "{destroyed}");

    // The state as the deploy left it (version 1), and what the destroy changed since.
    let history = server.json(&["stack", "history", "acme", "dev"])?;
    let latest = history["versions"][0]["version"].as_i64().unwrap();
    assert!(latest >= 2, "{history}");
    let deployed = server.ok(&["stack", "show", "acme", "dev", "--version", "1"])?;
    assert!(
        deployed.lines().next().unwrap().starts_with("RESOURCE")
            && deployed.contains("aws:eks:Cluster")
            && deployed.contains("vpc-"),
        "{deployed}"
    );
    let deployed = server.json(&["stack", "show", "acme", "dev", "--version", "1"])?;
    assert_eq!(deployed["resources"].as_array().map(Vec::len), Some(26));
    let now = server.json(&[
        "stack",
        "show",
        "acme",
        "dev",
        "--version",
        &latest.to_string(),
    ])?;
    assert_eq!(now["resources"], serde_json::json!([]), "{now}");
    let diff = server.ok(&["stack", "diff", "acme", "dev", "1", &latest.to_string()])?;
    assert!(
        diff.contains("  - vpc (")
            && diff.ends_with("0 added, 26 removed, 0 changed, 0 unchanged.\n"),
        "{diff}"
    );
    let diff = server.json(&["stack", "diff", "acme", "dev", "0", "1"])?;
    assert_eq!(diff["counts"]["added"], 26, "{diff}");
    let out = server.byoc(&["stack", "show", "acme", "dev", "--version", "99"])?;
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr)?;
    assert!(
        stderr.contains("404") && stderr.contains("state version 99"),
        "{stderr}"
    );

    // Nothing holds the stack's lease now: there is nothing to unlock.
    for args in [
        &["env", "unlock", "acme", "dev"][..],
        &["env", "unlock", "acme", "dev", "--force"][..],
    ] {
        let out = server.byoc(args)?;
        assert!(!out.status.success());
        let stderr = String::from_utf8(out.stderr)?;
        assert!(
            stderr.contains("409") && stderr.contains("not locked"),
            "{stderr}"
        );
    }
    server.ok(&["env", "config", "delete", "acme", "dev"])?;
    server.ok(&["tenant", "delete", "acme"])?;
    let out = server.byoc(&["tenant", "show", "acme"])?;
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr)?.contains("404"));
    Ok(())
}
