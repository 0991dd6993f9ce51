//! What several API tests need: a server on a real store, and a worker's part played by hand
//! (no worker runs in these tests). Each test binary uses a part of it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::bail;
use byoc_api::{AppState, SchemaState};
use byoc_model::{RunStatus, TRUST_TEMPLATE_VERSION, TrustStackReport, Verdict};
use byoc_stacks::{Begin, Database, Sealer};

/// A tool of the pinned venv (`tools/setup.sh` installs it).
pub fn venv_tool(name: &str) -> anyhow::Result<PathBuf> {
    let path = byoc_testkit::workspace_root().join(".venv/bin").join(name);
    if !path.exists() {
        bail!("{} is missing: run tools/setup.sh", path.display());
    }
    Ok(path)
}

/// Runs `command`; its standard output, or an error with everything it printed.
pub fn output_of(command: &mut Command, what: &str) -> anyhow::Result<String> {
    let out = command.output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        bail!(
            "{what} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(stdout)
}

pub fn sealer() -> Sealer {
    Sealer::from_hex(&"ab".repeat(32)).expect("a valid key")
}

/// Serves the API on 127.0.0.1 with `db`; returns its base URL.
pub async fn serve(db: Database, default_region: Option<&str>) -> anyhow::Result<String> {
    let (tx, schema) = tokio::sync::watch::channel(SchemaState::Ready);
    // Kept alive by the router's state for the test's life.
    std::mem::forget(tx);
    let state = AppState::with_rate(db, schema, sealer(), (1_000_000, 1_000_000))
        .with_default_region(default_region.map(str::to_string));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, byoc_api::router(state)).await });
    Ok(base)
}

/// Plays the worker for the verify run `run_id` of tenant `slug`: it finds a current trust
/// stack in eu-west-1, and the tenant ends up trusted.
pub async fn complete_verification(db: &Database, slug: &str, run_id: &str) -> anyhow::Result<()> {
    let Begin::Started(lease) = db
        .begin_run(run_id, "test-worker", Duration::from_secs(60))
        .await?
    else {
        bail!("the verify run did not start");
    };
    let role = "arn:aws:iam::111111111111:role/byoc-deployer".to_string();
    let report = TrustStackReport {
        region: "eu-west-1".into(),
        stack_name: "byoc-trust".into(),
        assumed_role_arn: role.clone(),
        status: "CREATE_COMPLETE".into(),
        role_arn: Some(role),
        template_version: Some(TRUST_TEMPLATE_VERSION.into()),
    };
    let sealed = db.sealed_external_id(&slug.parse()?).await?;
    anyhow::ensure!(
        db.record_verdict(&lease, &sealed, &Verdict::of_report(&report, slug))
            .await?
    );
    db.finish_run(run_id, &lease, RunStatus::Succeeded, None, None)
        .await?;
    Ok(())
}
