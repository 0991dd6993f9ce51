//! Set-up shared by the queue, soak, fleet and drift_round benchmarks.
// Each benchmark uses a part of it.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use byoc_components::{Platform, PlatformOptions, WaitPolicy};
use byoc_engine::{CancellationToken, Providers, Resource};
use byoc_stacks::{
    Database, JobQueue, NewTenant, QueueConfig, Sealer, migrate_url, schema_fingerprint,
};
use byoc_testkit::{Emulator, TestDb};
use byoc_workers::{Blueprint, RunTarget, Worker, WorkerConfig, WorkerError, run_daemon};
use serde_json::{Value, json};

/// Every environment is empty: a run plans nothing and applies nothing.
pub struct Empty;

impl Blueprint for Empty {
    fn build(&self, _: &RunTarget, _: &Value) -> Result<(Vec<Resource>, Providers), String> {
        Ok((Vec::new(), Providers::new()))
    }
}

/// A fresh migrated SQLite file and Postgres database (kept alive by the `TestDb`s).
pub async fn databases() -> anyhow::Result<Vec<(&'static str, TestDb, Database)>> {
    let [sqlite, postgres] = TestDb::both(&schema_fingerprint(), |url| async move {
        Ok(migrate_url(&url).await?)
    })
    .await?;
    let mut out = Vec::new();
    for (name, t) in [("SQLite", sqlite), ("Postgres", postgres)] {
        let db = Database::connect(t.url()).await?;
        out.push((name, t, db));
    }
    Ok(out)
}

/// `n` stacks of one tenant, each with an empty config.
pub async fn stacks(db: &Database, n: usize) -> anyhow::Result<Vec<String>> {
    tenant_stacks(db, "bench", "111111111111", n, &json!({})).await
}

/// `n` environments `e0`, `e1`, ... of a new tenant `slug` in `account`, all with `config`.
pub async fn tenant_stacks(
    db: &Database,
    slug: &str,
    account: &str,
    n: usize,
    config: &Value,
) -> anyhow::Result<Vec<String>> {
    let new = NewTenant {
        slug: slug.into(),
        name: slug.into(),
        aws_account_id: account.into(),
        labels: Default::default(),
    };
    let (tenant, _) = db
        .create_tenant(&Sealer::from_hex(&"ab".repeat(32))?, &new, "bench")
        .await?;
    let mut out = Vec::new();
    for i in 0..n {
        let env = format!("e{i}");
        db.save_config(&tenant.id, slug, &env, config, "bench")
            .await?;
        out.push(format!("{slug}-{env}"));
    }
    Ok(out)
}

type Daemon = tokio::task::JoinHandle<Result<(), WorkerError>>;

/// A worker daemon running runs of `blueprint`, `concurrency` at a time.
pub async fn start_daemon(
    db: &Database,
    blueprint: Arc<dyn Blueprint>,
    concurrency: usize,
) -> anyhow::Result<(JobQueue, CancellationToken, Daemon)> {
    let config = QueueConfig {
        batch: concurrency,
        heartbeat: Duration::from_secs(30),
        ..QueueConfig::default()
    };
    let queue = JobQueue::setup(db, config).await?;
    let shutdown = CancellationToken::new();
    let mut worker_config = WorkerConfig::new(format!("bench-{}", std::process::id()));
    worker_config.poll = Duration::from_millis(5);
    let worker = Worker::new(
        db.clone(),
        Sealer::from_hex(&"ab".repeat(32))?,
        blueprint,
        worker_config,
        shutdown.clone(),
    );
    let daemon = tokio::spawn(run_daemon(
        db.clone(),
        queue.clone(),
        worker,
        concurrency,
        shutdown.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok((queue, shutdown, daemon))
}

/// Seconds of CPU (user + system) a process has used, from /proc.
pub fn cpu_seconds(pid: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap_or(0) + 2..]
        .split_whitespace()
        .collect();
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok((fields[11].parse::<f64>()? + fields[12].parse::<f64>()?) / ticks)
}

/// How many AWS calls the emulator has answered.
pub fn aws_calls(emulator: &Emulator) -> anyhow::Result<f64> {
    let stats: Value = serde_json::from_str(&emulator.stats()?)?;
    Ok(stats["requests"].as_f64().unwrap_or(0.0))
}

/// A fleet on the emulator, on a fresh migrated SQLite store: `tenants` tenants
/// `{prefix}00`, `{prefix}01`, ... each in a fresh emulated account with `envs`
/// managed-mode environments (26 resources each); and the platform to deploy them with.
pub async fn emulated_fleet(
    emulator: &Emulator,
    prefix: &str,
    tenants: usize,
    envs: usize,
) -> anyhow::Result<(TestDb, Database, Vec<String>, Platform)> {
    let t = TestDb::sqlite().await?;
    migrate_url(t.url()).await?;
    let db = Database::connect(t.url()).await?;
    let config = json!({
        "region": "us-east-1", "eks_mode": "managed", "az_count": 2,
        "node_group_config": {"desired_size": 2, "min_size": 1, "max_size": 3,
            "instance_types": ["m6i.large"], "disk_size": 50},
    });
    let mut stacks = Vec::new();
    for i in 0..tenants {
        let account = emulator.fresh_account();
        let slug = format!("{prefix}{i:02}");
        stacks.extend(tenant_stacks(&db, &slug, &account, envs, &config).await?);
    }
    let options = PlatformOptions {
        endpoint: Some(emulator.endpoint().to_string()),
        wait: WaitPolicy::emulator(),
        ..PlatformOptions::default()
    };
    // The platform's credentials: moto's default account, which may act in any account.
    let platform =
        Platform::load_with_keys("AKIADEFAULTACCOUNT01", "secret", "us-east-1", options).await;
    Ok((t, db, stacks, platform))
}
