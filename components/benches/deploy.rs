//! `cargo bench -p byoc-components --bench deploy`: a full managed-mode environment
//! deployed into the emulator with realistic readiness delays, scaled down from AWS's
//! minutes to seconds (NAT gateway 2 s, EKS cluster 4 s, node group 3 s). Prints the wall
//! time, the DAG's critical path and their ratio (goal: <= 1.05); then the cost of a no-op
//! redeploy, and of reading every resource (a refresh) against the slowest single read
//! (goal: <= 1.5).
//!
//! Two bounds: the critical path of the steps as they ran (each step's own measured
//! duration: what a perfect scheduler would reach with these providers), and the physical
//! bound (the readiness delays alone along the longest chain: no client could be faster).
//! Waiters poll at 5% of the time waited (100 ms to 500 ms here, 1 s to 15 s for real AWS),
//! so they overshoot a readiness by about 5%.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use byoc_components::RateLimits;
use byoc_components::blueprint::environment;
use byoc_engine::{Event, Graph, RetryPolicy, RunStatus, drift, refresh};
use byoc_testkit::{Emulator, EmulatorOptions};
use common::env::{Env, managed_config, platform};

const DELAYS: [(&str, f64); 3] = [
    ("aws:ec2:NatGateway", 2.0),
    ("aws:eks:Cluster", 4.0),
    ("aws:eks:Nodegroup", 3.0),
];

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let emulator = Emulator::start(&EmulatorOptions::default())?;
    emulator.configure(
        r#"{"create_seconds_by_kind": {"nat_gateway": 2, "eks_cluster": 4, "eks_nodegroup": 3}}"#,
    )?;
    println!(
        "byoc-components deploy benchmark ({} cores), managed mode, 2 zones, one NAT gateway",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    rt.block_on(async {
        let platform = platform(emulator.endpoint(), RateLimits::default()).await;
        for round in 1..=3 {
            let env = Env::new(&platform, &emulator.fresh_account(), &format!("bench{round}-dev"));
            let config = managed_config();
            // moto builds an account's default VPC and the like on its first request there,
            // which takes about a second and has no counterpart in AWS: done before timing.
            env.census().await;
            let report = env.deploy(&config, "deploy").await;
            anyhow::ensure!(report.status == RunStatus::Succeeded, "{report:?}");
            let measured: BTreeMap<String, u64> = env
                .events
                .events()
                .into_iter()
                .filter_map(|e| match e {
                    Event::StepSucceeded { resource, duration_ms, .. } => Some((resource, duration_ms)),
                    _ => None,
                })
                .collect();
            let graph = Graph::new(environment(&env.stack, &config)?)?;
            let steps = graph.critical_path(|r| Duration::from_millis(measured[&r.name]));
            let physical = graph.critical_path(|r| {
                let delay = DELAYS.iter().find(|(kind, _)| *kind == r.kind).map_or(0.0, |d| d.1);
                Duration::from_secs_f64(delay)
            });
            let wall = report.duration;
            println!(
                "round {round}: {} resources, wall {:.2} s; critical path of the steps {:.2} s, ratio {:.3} (goal <= 1.05); physical bound {:.2} s, ratio {:.3}",
                graph.len(),
                wall.as_secs_f64(),
                steps.as_secs_f64(),
                wall.as_secs_f64() / steps.as_secs_f64(),
                physical.as_secs_f64(),
                wall.as_secs_f64() / physical.as_secs_f64(),
            );
            // A redeploy of the unchanged config, then the reads a refresh makes: each
            // resource's alone, one after another, and all of them as the refresh does.
            let calls = |stats: String| -> anyhow::Result<u64> {
                let v: serde_json::Value = serde_json::from_str(&stats)?;
                Ok(v["requests"].as_u64().unwrap_or(0))
            };
            let before = calls(emulator.stats()?)?;
            let started = Instant::now();
            let report = env.deploy(&config, "redeploy").await;
            let redeploy = started.elapsed();
            anyhow::ensure!(report.status == RunStatus::Succeeded, "{report:?}");
            let redeploy_calls = calls(emulator.stats()?)? - before;
            // AWS answers a read in tens of milliseconds, the emulator in a few, and those
            // few are its own CPU (one Python process): 100 ms per call gives the reads
            // AWS's shape, where waiting dominates.
            emulator.configure(r#"{"latency_ms": "100"}"#)?;
            let snapshot = env.store.snapshot();
            let retry = RetryPolicy::default();
            // A stack at rest: the account's request buckets (byoc's own limiter, 50 calls
            // of burst per service) have refilled since the deploy.
            tokio::time::sleep(Duration::from_secs(3)).await;
            let before = calls(emulator.stats()?)?;
            let started = Instant::now();
            let observed =
                refresh(&env.stack, &snapshot, &env.providers, None, &retry, &env.cancel).await?;
            let all = started.elapsed();
            let read_calls = calls(emulator.stats()?)? - before;
            let mut slowest = (Duration::ZERO, String::new());
            for name in snapshot.resources.keys() {
                let mut one = snapshot.clone();
                one.resources.retain(|k, _| k == name);
                let started = Instant::now();
                refresh(&env.stack, &one, &env.providers, None, &retry, &env.cancel).await?;
                slowest = slowest.max((started.elapsed(), name.clone()));
            }
            emulator.configure(r#"{"latency_ms": "0"}"#)?;
            anyhow::ensure!(drift(&snapshot, &observed, &env.providers).is_empty());
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            println!(
                "  no-op redeploy {:.1} ms, {redeploy_calls} AWS calls (planned against the recorded state); reading all {} resources ({read_calls} calls) {:.0} ms, slowest single read {:.0} ms ({}), with 100 ms per call: ratio {:.2} (goal <= 1.5)",
                ms(redeploy),
                snapshot.resources.len(),
                ms(all),
                ms(slowest.0),
                slowest.1,
                all.as_secs_f64() / slowest.0.as_secs_f64(),
            );
            if std::env::var_os("BENCH_STEPS").is_some() {
                let mut slow: Vec<_> = measured.iter().collect();
                slow.sort_by_key(|(_, ms)| std::cmp::Reverse(**ms));
                println!("  slowest steps: {:?}", &slow[..8]);
            }
            let report = env.destroy("destroy").await;
            anyhow::ensure!(report.status == RunStatus::Succeeded, "{report:?}");
        }
        Ok(())
    })
}
