//! Fleet benchmark: `cargo bench --workspace --bench fleet` (release). Prints
//! figures; asserts only that every run succeeded.
//!
//! 100 managed-mode environments (10 tenants in 10 emulated accounts, 26 resources each)
//! deployed through one worker daemon, 20 runs in flight, on SQLite. Measures the worker's
//! CPU time against the emulator's for the same work (the emulator only answers calls, so
//! it is the floor of what the calls cost), and the worker's peak memory above its idle
//! baseline per run in flight.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use byoc_model::{RunKind, RunStatus};
use byoc_testkit::{Emulator, EmulatorOptions};
use byoc_workers::AwsBlueprint;
use common::{aws_calls, cpu_seconds};

const TENANTS: usize = 10;
const ENVS_PER_TENANT: usize = 10;
const IN_FLIGHT: usize = 20;

/// A line of /proc/self/status in MiB (`VmRSS`, `VmHWM`).
fn memory_mib(field: &str) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .ok_or_else(|| anyhow::anyhow!("no {field}"))?;
    let kib: f64 = line.split_whitespace().nth(1).unwrap_or("0").parse()?;
    Ok(kib / 1024.0)
}

fn main() -> anyhow::Result<()> {
    // As `byoc worker` and `byoc serve` do.
    byoc_workers::cap_malloc_arenas();
    let emulator = Emulator::start(&EmulatorOptions::default())?;
    let emulator_pid = emulator.pid().expect("a private emulator").to_string();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!(
        "byoc-workers fleet benchmark ({} cores): {} environments, one worker, {IN_FLIGHT} in flight, SQLite",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        TENANTS * ENVS_PER_TENANT
    );
    rt.block_on(async {
        let (_t, db, stacks, platform) =
            common::emulated_fleet(&emulator, "fleet", TENANTS, ENVS_PER_TENANT).await?;
        let (queue, shutdown, daemon) =
            common::start_daemon(&db, Arc::new(AwsBlueprint::new(platform)), IN_FLIGHT).await?;
        let idle_rss = memory_mib("VmRSS")?;
        let (worker_cpu0, emulator_cpu0) = (cpu_seconds("self")?, cpu_seconds(&emulator_pid)?);

        let started = Instant::now();
        let mut ids = Vec::new();
        for stack in &stacks {
            ids.push(queue.request(&db, stack, RunKind::Deploy, "bench").await?.0.id);
        }
        let mut peak_rss = idle_rss;
        let mut failed = 0;
        for id in &ids {
            loop {
                peak_rss = peak_rss.max(memory_mib("VmRSS")?);
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
        let wall = started.elapsed().as_secs_f64();
        let worker_cpu = cpu_seconds("self")? - worker_cpu0;
        let emulator_cpu = cpu_seconds(&emulator_pid)? - emulator_cpu0;
        let resources: usize = {
            let mut n = 0;
            for stack in &stacks {
                n += db.snapshot(stack).await?.resources.len();
            }
            n
        };
        shutdown.cancel();
        let _ = daemon.await;
        anyhow::ensure!(failed == 0, "{failed} runs failed");
        let calls = aws_calls(&emulator)?;
        println!(
            "{} deploys, {resources} resources, {calls} AWS calls, in {wall:.1} s wall ({:.2} deploys/s)",
            ids.len(),
            ids.len() as f64 / wall
        );
        println!(
            "CPU: worker {worker_cpu:.1} s, emulator {emulator_cpu:.1} s: worker/emulator = {:.2} ({:.2} ms of worker CPU per AWS call)",
            worker_cpu / emulator_cpu,
            worker_cpu * 1000.0 / calls
        );
        println!(
            "memory: idle {idle_rss:.0} MiB, peak {peak_rss:.0} MiB: {:.2} MiB per run in flight ({IN_FLIGHT})",
            (peak_rss - idle_rss) / IN_FLIGHT as f64
        );
        Ok(())
    })
}
