//! `byoc worker` and the workers embedded in `byoc serve`, as real processes, deploying the
//! AWS environment into an emulated tenant account.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use byoc_model::{RunKind, RunStatus};
use byoc_stacks::{Database, JobQueue, NewTenant, QueueConfig, Sealer, migrate_url};
use byoc_testkit::{ByocProcess, Emulator, EmulatorOptions, TestDb};
use serde_json::json;

/// A byoc child process with a short lease, so that takeovers happen within the test.
fn start(args: &[&str], database_url: &str, emulator: &str) -> anyhow::Result<ByocProcess> {
    let mut cmd = ByocProcess::command(
        Path::new(env!("CARGO_BIN_EXE_byoc")),
        database_url,
        Some(emulator),
    );
    cmd.args(args).env("BYOC_LEASE_TTL_SECONDS", "5");
    ByocProcess::spawn(cmd)
}

/// A tenant in a fresh emulated account with a managed-mode environment `dev`.
async fn tenant(db: &Database, account: &str) -> anyhow::Result<()> {
    // No BYOC_SECRET_KEY: the key file beside the SQLite database, as the processes use.
    let sealer = Sealer::for_database(db, None)?;
    let new = NewTenant {
        slug: "acme".into(),
        name: "Acme".into(),
        aws_account_id: account.into(),
        labels: Default::default(),
    };
    let (tenant, _) = db.create_tenant(&sealer, &new, "test").await?;
    let config = json!({
        "region": "us-east-1",
        "eks_mode": "managed",
        "node_group_config": {"desired_size": 2, "min_size": 1, "max_size": 3, "instance_types": ["m6i.large"], "disk_size": 50},
    });
    db.save_config(&tenant.id, "acme", "dev", &config, "test")
        .await?;
    Ok(())
}

async fn wait_finished(db: &Database, run: &str, limit: Duration) -> anyhow::Result<RunStatus> {
    let start = Instant::now();
    loop {
        let r = db.run(run).await?;
        if r.status.is_finished() {
            ensure!(
                r.status == RunStatus::Succeeded,
                "run {run} ended {}: {:?}",
                r.status,
                r.error
            );
            return Ok(r.status);
        }
        ensure!(
            start.elapsed() < limit,
            "run {run} still {} after {limit:?}",
            r.status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn byoc_worker_deploys_and_destroys_an_environment() -> anyhow::Result<()> {
    let emulator = Emulator::shared();
    let t = TestDb::sqlite().await?;
    migrate_url(t.url()).await?;
    let db = Database::connect(t.url()).await?;
    tenant(&db, &emulator.fresh_account()).await?;
    let queue = JobQueue::setup(&db, QueueConfig::default()).await?;
    let _worker = start(&["worker"], t.url(), emulator.endpoint())?;

    let (deploy, _) = queue
        .request(&db, "acme-dev", RunKind::Deploy, "test")
        .await?;
    wait_finished(&db, &deploy.id, Duration::from_secs(120)).await?;
    let state = db.snapshot("acme-dev").await?;
    assert_eq!(state.resources.len(), 26, "{:?}", state.resources.keys());
    assert!(state.resources.values().all(|r| !r.physical_id.is_empty()));
    assert!(
        state.resources["cluster"].outputs["endpoint"]
            .as_str()
            .is_some()
    );

    let (destroy, _) = queue
        .request(&db, "acme-dev", RunKind::Destroy, "test")
        .await?;
    wait_finished(&db, &destroy.id, Duration::from_secs(120)).await?;
    assert!(db.snapshot("acme-dev").await?.resources.is_empty());
    Ok(())
}

/// SIGTERM while a run is in flight: `byoc serve` stops taking jobs, finishes the run, then
/// exits cleanly.
#[tokio::test]
async fn serve_finishes_its_run_on_sigterm() -> anyhow::Result<()> {
    let emulator = Emulator::start(&EmulatorOptions {
        create_seconds: 2.0,
        ..EmulatorOptions::default()
    })?;
    let t = TestDb::sqlite().await?;
    migrate_url(t.url()).await?;
    let db = Database::connect(t.url()).await?;
    tenant(&db, &emulator.fresh_account()).await?;
    let queue = JobQueue::setup(&db, QueueConfig::default()).await?;
    let mut server = start(
        &["serve", "--listen", "127.0.0.1:0"],
        t.url(),
        emulator.endpoint(),
    )?;
    let (run, _) = queue
        .request(&db, "acme-dev", RunKind::Deploy, "test")
        .await?;
    let start = Instant::now();
    while db.snapshot("acme-dev").await?.resources.len() < 3 {
        ensure!(
            start.elapsed() < Duration::from_secs(60),
            "the embedded worker made no progress"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.terminate();
    let status = server
        .wait_exit(Duration::from_secs(120))
        .context("exit after SIGTERM")?;
    assert!(status.success(), "{status}");
    let r = db.run(&run.id).await?;
    assert_eq!(r.status, RunStatus::Succeeded, "{:?}", r.error);
    assert_eq!(db.snapshot("acme-dev").await?.resources.len(), 26);
    Ok(())
}
