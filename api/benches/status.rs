//! `cargo bench -p byoc-api --bench status`: `GET .../status` throughput and latency at 64
//! concurrent connections, on SQLite and on Postgres (goal: >= 5,000 req/s, p99 < 20 ms on
//! 2 cores). The load generator runs in the same process as the server, so the two share
//! the cores: the figures are a floor. `BENCH_SECONDS` (default 10) sets the length.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use byoc_api::{AppState, SchemaState};
use byoc_stacks::{Database, NewTenant, Sealer, migrate_url, schema_fingerprint};
use byoc_testkit::TestDb;
use serde_json::json;

const CONNECTIONS: usize = 64;

fn main() -> anyhow::Result<()> {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!(
        "byoc-api status benchmark ({} cores, {} build), {CONNECTIONS} connections, {seconds} s per database",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    rt.block_on(async {
        let dbs = TestDb::both(&schema_fingerprint(), |url| async move { Ok(migrate_url(&url).await?) }).await?;
        for t in dbs {
            if t.url().starts_with("sqlite") {
                migrate_url(t.url()).await?;
            }
            let name = if t.url().starts_with("sqlite") { "SQLite" } else { "Postgres" };
            let db = Database::connect(t.url()).await?;
            let sealer = Sealer::from_hex(&"ab".repeat(32))?;
            let new = NewTenant { slug: "acme".into(), name: "Acme".into(), aws_account_id: "111111111111".into(), labels: Default::default() };
            let (tenant, _) = db.create_tenant(&sealer, &new, "bench").await?;
            db.save_config(&tenant.id, "acme", "dev", &json!({"region": "us-east-1"}), "bench").await?;
            let (_, token) = db.create_token("bench", None, "bench").await?;
            let (tx, schema) = tokio::sync::watch::channel(SchemaState::Ready);
            let app = byoc_api::router(AppState::with_rate(db.clone(), schema, sealer, (1_000_000, 1_000_000)));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let url = format!("http://{}/api/v1/tenants/acme/environments/dev/status", listener.local_addr()?);
            let server = tokio::spawn(async move { axum::serve(listener, app).await });

            let client = reqwest::Client::builder().pool_max_idle_per_host(CONNECTIONS).build()?;
            // Warm-up: connections, statement caches.
            for _ in 0..200 {
                client.get(&url).bearer_auth(&token).send().await?.error_for_status()?;
            }
            let stop = Arc::new(AtomicBool::new(false));
            let started = Instant::now();
            let mut workers = Vec::new();
            for _ in 0..CONNECTIONS {
                let (client, url, token, stop) = (client.clone(), url.clone(), token.clone(), stop.clone());
                workers.push(tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        let resp = client.get(&url).bearer_auth(&token).send().await?;
                        anyhow::ensure!(resp.status().is_success(), "status {}", resp.status());
                        resp.bytes().await?;
                        latencies.push(t.elapsed());
                    }
                    Ok::<_, anyhow::Error>(latencies)
                }));
            }
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            stop.store(true, Ordering::Relaxed);
            let mut all = Vec::new();
            for w in workers {
                all.extend(w.await??);
            }
            let elapsed = started.elapsed();
            all.sort();
            let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
            let rate = all.len() as f64 / elapsed.as_secs_f64();
            println!(
                "{name}: {} requests, {:.0} req/s ({:.2}x of the 5,000 goal), p50 {:.1} ms, p99 {:.1} ms (goal < 20 ms)",
                all.len(),
                rate,
                rate / 5000.0,
                pct(0.50).as_secs_f64() * 1e3,
                pct(0.99).as_secs_f64() * 1e3,
            );
            server.abort();
            drop(tx);
        }
        Ok(())
    })
}
