//! `cargo bench -p byoc-api --bench streams`: the latency of an admin `GET .../status` while
//! 1,000 live event streams (SSE) follow runs, beside the same server with none open. The
//! streams follow 50 queued runs (20 each, one token per run), so they share 50 pollers and
//! 50 token checks. SQLite; `BENCH_SECONDS` (default 5) per phase.

use std::time::{Duration, Instant};

use byoc_api::{AppState, SchemaState, StreamLimits};
use byoc_model::RunKind;
use byoc_stacks::{Database, NewTenant, Sealer, migrate_url};
use byoc_testkit::TestDb;
use serde_json::json;

const STREAMS: usize = 1_000;
const RUNS: usize = 50;

fn main() -> anyhow::Result<()> {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let t = TestDb::sqlite().await?;
        migrate_url(t.url()).await?;
        let db = Database::connect(t.url()).await?;
        let sealer = Sealer::from_hex(&"ab".repeat(32))?;
        let mut runs = Vec::new();
        for i in 0..RUNS {
            let slug = format!("tenant{i}");
            let new = NewTenant {
                slug: slug.clone(),
                name: slug.clone(),
                aws_account_id: "111111111111".into(),
                labels: Default::default(),
            };
            let (tenant, _) = db.create_tenant(&sealer, &new, "bench").await?;
            db.save_config(
                &tenant.id,
                &slug,
                "dev",
                &json!({"region": "us-east-1"}),
                "bench",
            )
            .await?;
            let (run, _) = db
                .request_run(&format!("{slug}-dev"), RunKind::Deploy, "bench")
                .await?;
            let (_, token) = db.create_token(&slug, Some(&tenant.id), "bench").await?;
            runs.push((run.id, token));
        }
        let (_, admin) = db.create_token("bench", None, "bench").await?;
        let (_tx, schema) = tokio::sync::watch::channel(SchemaState::Ready);
        let limits = StreamLimits {
            total: STREAMS + 10,
            ..StreamLimits::default()
        };
        let state = AppState::with_rate(db.clone(), schema, sealer, (1_000_000, 1_000_000))
            .with_stream_limits(limits);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let app = byoc_api::router(state);
        tokio::spawn(async move { axum::serve(listener, app).await });
        let status = format!("{base}/api/v1/tenants/tenant0/environments/dev/status");
        let client = reqwest::Client::new();

        let idle = latencies(&client, &status, &admin, seconds).await?;
        let mut streams = Vec::new();
        for i in 0..STREAMS {
            let (run, token) = &runs[i % RUNS];
            let resp = reqwest::Client::new()
                .get(format!("{base}/api/v1/runs/{run}/events"))
                .bearer_auth(token)
                .header("accept", "text/event-stream")
                .send()
                .await?;
            anyhow::ensure!(resp.status().is_success(), "stream {i}: {}", resp.status());
            streams.push(resp);
        }
        let busy = latencies(&client, &status, &admin, seconds).await?;
        println!(
            "streams benchmark ({} cores, {} build): admin GET status, p50 / p99",
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
        );
        println!("  no streams:          {}", show(&idle));
        println!("  {STREAMS} streams open:   {}", show(&busy));
        println!(
            "  ratio (open / none): p50 {:.2}x, p99 {:.2}x",
            pct(&busy, 0.5).as_secs_f64() / pct(&idle, 0.5).as_secs_f64(),
            pct(&busy, 0.99).as_secs_f64() / pct(&idle, 0.99).as_secs_f64(),
        );
        drop(streams);
        Ok(())
    })
}

/// Sequential requests for `seconds`: their latencies, sorted.
async fn latencies(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    seconds: u64,
) -> anyhow::Result<Vec<Duration>> {
    let mut out = Vec::new();
    let until = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < until {
        let t = Instant::now();
        let resp = client.get(url).bearer_auth(token).send().await?;
        anyhow::ensure!(resp.status().is_success(), "status {}", resp.status());
        resp.bytes().await?;
        out.push(t.elapsed());
    }
    out.sort();
    Ok(out)
}

fn pct(all: &[Duration], p: f64) -> Duration {
    all[((all.len() as f64 * p) as usize).min(all.len() - 1)]
}

fn show(all: &[Duration]) -> String {
    format!(
        "{:.1} ms / {:.1} ms ({} requests)",
        pct(all, 0.5).as_secs_f64() * 1e3,
        pct(all, 0.99).as_secs_f64() * 1e3,
        all.len()
    )
}
