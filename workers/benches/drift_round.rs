//! Scheduled drift checks: `cargo bench -p byoc-workers --bench drift_round --profile dev`.
//! Prints figures; asserts only that every run succeeded.
//!
//! 100 managed-mode environments (10 tenants in 10 emulated accounts, 26 resources each)
//! are deployed through one worker daemon (20 runs in flight, SQLite, the emulator), then
//! one scheduler round (server default period, no environment has its own) queues a check
//! of each, which the daemon runs. Measures that round: the scheduler's own time, the AWS
//! calls, and the worker's CPU against the emulator's.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use byoc_components::{Platform, PlatformOptions, WaitPolicy};
use byoc_model::{RunKind, RunStatus};
use byoc_stacks::{Database, Pool, migrate_url, now_ms};
use byoc_testkit::{Emulator, EmulatorOptions, TestDb};
use byoc_workers::AwsBlueprint;
use byoc_workers::schedule::{ScheduleConfig, tick};
use serde_json::json;

const TENANTS: usize = 10;
const ENVS_PER_TENANT: usize = 10;
const IN_FLIGHT: usize = 20;

/// Seconds of CPU (user + system) a process has used, from /proc.
fn cpu_seconds(pid: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap_or(0) + 2..]
        .split_whitespace()
        .collect();
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok((fields[11].parse::<f64>()? + fields[12].parse::<f64>()?) / ticks)
}

async fn wait_all(db: &Database, ids: &[String]) -> anyhow::Result<usize> {
    let mut failed = 0;
    for id in ids {
        loop {
            let run = db.run(id).await?;
            if run.status.is_finished() {
                if run.status != RunStatus::Succeeded {
                    failed += 1;
                    eprintln!("run {id} {}: {:?}", run.status, run.error);
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(failed)
}

fn calls(emulator: &Emulator) -> anyhow::Result<f64> {
    let stats: serde_json::Value = serde_json::from_str(&emulator.stats()?)?;
    Ok(stats["requests"].as_f64().unwrap_or(0.0))
}

fn main() -> anyhow::Result<()> {
    let emulator = Emulator::start(&EmulatorOptions::default())?;
    let emulator_pid = emulator.pid().expect("a private emulator").to_string();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let envs = TENANTS * ENVS_PER_TENANT;
    println!(
        "byoc-workers scheduled drift check ({} cores): {envs} environments, one worker, {IN_FLIGHT} in flight, SQLite",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    rt.block_on(async {
        let t = TestDb::sqlite().await?;
        migrate_url(t.url()).await?;
        let db = Database::connect(t.url()).await?;
        let config = json!({
            "region": "us-east-1", "eks_mode": "managed", "az_count": 2,
            "node_group_config": {"desired_size": 2, "min_size": 1, "max_size": 3,
                "instance_types": ["m6i.large"], "disk_size": 50},
        });
        let mut stacks = Vec::new();
        for i in 0..TENANTS {
            let account = emulator.fresh_account();
            let slug = format!("drift{i:02}");
            stacks.extend(common::tenant_stacks(&db, &slug, &account, ENVS_PER_TENANT, &config).await?);
        }
        let options = PlatformOptions {
            endpoint: Some(emulator.endpoint().to_string()),
            wait: WaitPolicy {
                min_delay: Duration::from_millis(50),
                ..WaitPolicy::default()
            },
            ..PlatformOptions::default()
        };
        let platform =
            Platform::load_with_keys("AKIADEFAULTACCOUNT01", "secret", "us-east-1", options)
                .await;
        let (queue, shutdown, daemon) =
            common::start_daemon(&db, Arc::new(AwsBlueprint::new(platform)), IN_FLIGHT).await?;
        let mut ids = Vec::new();
        for stack in &stacks {
            ids.push(queue.request(&db, stack, RunKind::Deploy, "bench").await?.0.id.to_string());
        }
        anyhow::ensure!(wait_all(&db, &ids).await? == 0, "deploys failed");
        // Checks are for trusted tenants only; the bench's tenants skipped verification.
        if let Pool::Sqlite(p) = db.pool() {
            sqlx::query("UPDATE tenants SET onboarding_status = 'trusted'").execute(p).await?;
        }

        let (calls0, worker_cpu0, emulator_cpu0) =
            (calls(&emulator)?, cpu_seconds("self")?, cpu_seconds(&emulator_pid)?);
        let started = Instant::now();
        let schedule = ScheduleConfig {
            default_every_minutes: Some(360),
            ..ScheduleConfig::default()
        };
        let round = tick(&db, &queue, &schedule, now_ms()).await?;
        let tick_ms = started.elapsed().as_secs_f64() * 1000.0;
        let checks: Vec<String> = round.queued.iter().map(|r| r.id.to_string()).collect();
        let failed = wait_all(&db, &checks).await?;
        let wall = started.elapsed().as_secs_f64();
        let worker_cpu = cpu_seconds("self")? - worker_cpu0;
        let emulator_cpu = cpu_seconds(&emulator_pid)? - emulator_cpu0;
        let aws = calls(&emulator)? - calls0;
        // A second round in the same slot queues nothing.
        let again = tick(&db, &queue, &schedule, now_ms()).await?;
        shutdown.cancel();
        let _ = daemon.await;
        anyhow::ensure!(failed == 0, "{failed} checks failed");
        anyhow::ensure!(again.queued.is_empty(), "a second round queued checks");
        println!(
            "one round: {} candidates, {} checks queued in {tick_ms:.0} ms; all done in {wall:.1} s wall",
            round.candidates,
            checks.len()
        );
        println!(
            "AWS calls: {aws} ({:.1} per environment); CPU: worker {worker_cpu:.2} s ({:.1} ms per environment), emulator {emulator_cpu:.2} s",
            aws / checks.len() as f64,
            worker_cpu * 1000.0 / checks.len() as f64
        );
        Ok(())
    })
}
