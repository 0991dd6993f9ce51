//! Soak (not part of CI): `cargo bench -p byoc-workers --bench soak`. Pushes no-op runs in
//! bursts with idle gaps for a long time, on SQLite and on Postgres, and reports every run
//! that waited more than 2 s to start. apalis-sqlite#58 reports SQLite-backed workers that
//! stop picking up jobs in long-running servers; the embedded default must not.
//!
//! `SOAK_RUNS` (default 10000), `SOAK_MINUTES` (default 30) and `SOAK_BURST` (default 20)
//! set the size. A burst is small enough for one worker to start all of it well within 2 s,
//! so a longer wait is a stall, not a queue.

mod common;

use std::time::{Duration, Instant};

use byoc_model::RunKind;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    let runs = env_or("SOAK_RUNS", 10_000) as usize;
    let minutes = env_or("SOAK_MINUTES", 30);
    let burst_size = env_or("SOAK_BURST", 20) as usize;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        for (name, _t, db) in common::databases().await? {
            // Bursts of runs on distinct stacks, spread evenly over the duration.
            let bursts = runs.div_ceil(burst_size).max(1);
            let gap = Duration::from_secs(minutes * 60) / bursts as u32;
            let stacks = common::stacks(&db, burst_size).await?;
            let (queue, shutdown, daemon) =
                common::start_daemon(&db, std::sync::Arc::new(common::Empty), 4).await?;
            let started = Instant::now();
            let (mut slow, mut done, mut worst) = (Vec::new(), 0usize, 0i64);
            for burst in 0..bursts {
                let mut ids = Vec::new();
                for stack in stacks.iter().take((runs - done).min(burst_size)) {
                    ids.push(
                        queue
                            .request(&db, stack, RunKind::Deploy, "soak")
                            .await?
                            .0
                            .id,
                    );
                }
                for id in &ids {
                    let run = loop {
                        let run = db.run(id).await?;
                        if run.status.is_finished() {
                            break run;
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    };
                    let waited = run.started_at.unwrap_or(run.created_at) - run.created_at;
                    worst = worst.max(waited);
                    if waited > 2_000 {
                        slow.push((burst, id.clone(), waited));
                    }
                }
                done += ids.len();
                println!(
                    "{name}: burst {}/{bursts}: {done} runs done, worst wait so far {worst} ms",
                    burst + 1
                );
                // Idle gap: the failure mode reported is workers that stop after idling.
                tokio::time::sleep(gap.saturating_sub(Duration::from_millis(1))).await;
            }
            shutdown.cancel();
            let _ = daemon.await;
            println!(
                "{name}: {done} runs in {:?}; {} waited more than 2 s to start",
                started.elapsed(),
                slow.len()
            );
            for (burst, id, waited) in &slow {
                println!("  burst {burst}: run {id} waited {waited} ms");
            }
        }
        anyhow::Ok(())
    })
}
