//! Queue benchmark: `cargo bench -p byoc-workers`. Prints figures; asserts nothing.
//!
//! Enqueue-to-start latency (p50, p99) and runs per second for no-op runs through the full
//! path (record run + apalis job -> worker -> lease -> plan -> finish), on SQLite and
//! Postgres, beside a raw-SQL baseline queue on the same database in the same run
//! (`INSERT` + `UPDATE ... RETURNING` on SQLite, `SELECT ... FOR UPDATE SKIP LOCKED` on
//! Postgres, 4 consumers polling every millisecond).

mod common;

use std::time::{Duration, Instant};

use byoc_engine::CancellationToken;
use byoc_model::RunKind;
use byoc_stacks::{Database, Pool, RunLimits, now_ms};

const CONCURRENCY: usize = 4;
const LATENCY_RUNS: usize = 100;
const BURST_RUNS: usize = 300;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn wait_finished(db: &Database, ids: &[String]) -> anyhow::Result<Vec<f64>> {
    let mut latencies = Vec::new();
    for id in ids {
        loop {
            let run = db.run(id).await?;
            if run.status.is_finished() {
                latencies.push((run.started_at.unwrap_or(run.created_at) - run.created_at) as f64);
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    Ok(latencies)
}

/// (p50 ms, p99 ms, runs/s) through byoc's queue.
async fn byoc_queue(db: &Database) -> anyhow::Result<(f64, f64, f64)> {
    // The burst is one tenant's, past the default cap per tenant (which guards the API, not
    // what is measured here).
    let db = &db.clone().with_run_limits(RunLimits {
        per_tenant: BURST_RUNS as u32,
        ..RunLimits::DEFAULT
    });
    let stacks = common::stacks(db, BURST_RUNS).await?;
    let (queue, shutdown, daemon) =
        common::start_daemon(db, std::sync::Arc::new(common::Empty), CONCURRENCY).await?;

    // Latency: one run at a time, spaced so the queue is idle when each arrives.
    let mut latencies = Vec::new();
    for stack in stacks.iter().take(LATENCY_RUNS) {
        let (run, _) = queue.request(db, stack, RunKind::Deploy, "bench").await?;
        latencies.extend(wait_finished(db, &[run.id.to_string()]).await?);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    latencies.sort_by(f64::total_cmp);

    // Throughput: a burst of runs on distinct stacks.
    let started = Instant::now();
    let mut ids = Vec::new();
    for stack in &stacks {
        ids.push(
            queue
                .request(db, stack, RunKind::Deploy, "bench")
                .await?
                .0
                .id
                .to_string(),
        );
    }
    wait_finished(db, &ids).await?;
    let rate = BURST_RUNS as f64 / started.elapsed().as_secs_f64();
    shutdown.cancel();
    let _ = daemon.await;
    Ok((
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        rate,
    ))
}

/// The same measurements on a minimal hand-written SQL queue.
async fn baseline(db: &Database) -> anyhow::Result<(f64, f64, f64)> {
    macro_rules! on {
        ($p:ident => $body:expr) => {
            match db.pool() {
                Pool::Sqlite($p) => $body,
                Pool::Postgres($p) => $body,
            }
        };
    }
    let claim = match db.pool() {
        Pool::Sqlite(_) => {
            "UPDATE bench_q SET started_at = $1 WHERE id = (SELECT id FROM bench_q WHERE started_at IS NULL ORDER BY id LIMIT 1) RETURNING id"
        }
        Pool::Postgres(_) => {
            "UPDATE bench_q SET started_at = $1 WHERE id = (SELECT id FROM bench_q WHERE started_at IS NULL ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id"
        }
    };
    on!(p => {
        sqlx::query("CREATE TABLE bench_q (id BIGINT PRIMARY KEY, created_at BIGINT NOT NULL, started_at BIGINT)")
            .execute(p)
            .await?;
    });
    let stop = CancellationToken::new();
    let mut consumers = Vec::new();
    for _ in 0..CONCURRENCY {
        let (db, stop) = (db.clone(), stop.clone());
        consumers.push(tokio::spawn(async move {
            while !stop.is_cancelled() {
                let got: Option<i64> = match db.pool() {
                    Pool::Sqlite(p) => sqlx::query_scalar(claim)
                        .bind(now_ms())
                        .fetch_optional(p)
                        .await
                        .ok()
                        .flatten(),
                    Pool::Postgres(p) => sqlx::query_scalar(claim)
                        .bind(now_ms())
                        .fetch_optional(p)
                        .await
                        .ok()
                        .flatten(),
                };
                if got.is_none() {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }));
    }
    let push = |id: i64| {
        let db = db.clone();
        async move {
            match db.pool() {
                Pool::Sqlite(p) => {
                    sqlx::query("INSERT INTO bench_q (id, created_at) VALUES ($1, $2)")
                        .bind(id)
                        .bind(now_ms())
                        .execute(p)
                        .await
                        .map(drop)
                }
                Pool::Postgres(p) => {
                    sqlx::query("INSERT INTO bench_q (id, created_at) VALUES ($1, $2)")
                        .bind(id)
                        .bind(now_ms())
                        .execute(p)
                        .await
                        .map(drop)
                }
            }
        }
    };
    let started_of = |id: i64| {
        let db = db.clone();
        async move {
            loop {
                let row: Option<(i64, Option<i64>)> = match db.pool() {
                    Pool::Sqlite(p) => {
                        sqlx::query_as("SELECT created_at, started_at FROM bench_q WHERE id = $1")
                            .bind(id)
                            .fetch_optional(p)
                            .await
                            .ok()
                            .flatten()
                    }
                    Pool::Postgres(p) => {
                        sqlx::query_as("SELECT created_at, started_at FROM bench_q WHERE id = $1")
                            .bind(id)
                            .fetch_optional(p)
                            .await
                            .ok()
                            .flatten()
                    }
                };
                if let Some((created, Some(started))) = row {
                    return (started - created) as f64;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    };
    let mut latencies = Vec::new();
    for id in 0..LATENCY_RUNS as i64 {
        push(id).await?;
        latencies.push(started_of(id).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    latencies.sort_by(f64::total_cmp);
    let started = Instant::now();
    let first = LATENCY_RUNS as i64;
    for id in first..first + BURST_RUNS as i64 {
        push(id).await?;
    }
    for id in first..first + BURST_RUNS as i64 {
        started_of(id).await;
    }
    let rate = BURST_RUNS as f64 / started.elapsed().as_secs_f64();
    stop.cancel();
    for c in consumers {
        let _ = c.await;
    }
    Ok((
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        rate,
    ))
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        println!("queue benchmark: {LATENCY_RUNS} runs one at a time (latency), then a burst of {BURST_RUNS} (throughput); {CONCURRENCY} concurrent runs per worker");
        for (name, _t, db) in common::databases().await? {
            let (p50, p99, rate) = byoc_queue(&db).await?;
            let (b50, b99, brate) = baseline(&db).await?;
            println!("{name}:");
            println!("  byoc (apalis + run records + lease + plan): enqueue->start p50 {p50:.0} ms, p99 {p99:.0} ms; {rate:.0} no-op runs/s");
            println!("  raw SQL queue baseline:                     enqueue->start p50 {b50:.0} ms, p99 {b99:.0} ms; {brate:.0} jobs/s");
            println!("  ratio: p50 {:.1}x, throughput {:.2}x of the baseline", p50 / b50.max(1.0), rate / brate);
        }
        anyhow::Ok(())
    })
}
