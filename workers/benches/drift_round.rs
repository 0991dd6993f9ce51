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

use byoc_model::{RunKind, RunStatus};
use byoc_stacks::{Database, Pool, now_ms};
use byoc_testkit::{Emulator, EmulatorOptions};
use byoc_workers::AwsBlueprint;
use byoc_workers::schedule::{ScheduleConfig, tick};
use common::{aws_calls, cpu_seconds};

const TENANTS: usize = 10;
const ENVS_PER_TENANT: usize = 10;
const IN_FLIGHT: usize = 20;

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
        let (_t, db, stacks, platform) =
            common::emulated_fleet(&emulator, "drift", TENANTS, ENVS_PER_TENANT).await?;
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
            (aws_calls(&emulator)?, cpu_seconds("self")?, cpu_seconds(&emulator_pid)?);
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
        let aws = aws_calls(&emulator)? - calls0;
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
