//! Scheduled drift checks on both engines, with the in-memory cloud: a scheduler round makes
//! one refresh per slot however many schedulers run it, and a check that finds drift queues
//! one repair deploy when the environment asks for it.

use std::sync::Arc;
use std::time::Duration;

use byoc_engine::testing::{FakeCloud, providers};
use byoc_engine::{CancellationToken, Providers, Resource, RetryPolicy, reference};
use byoc_model::{RunKind, RunStatus};
use byoc_stacks::{
    Database, JobQueue, NewTenant, Pool, QueueConfig, Sealer, migrate_url, now_ms,
    schema_fingerprint,
};
use byoc_testkit::TestDb;
use byoc_workers::schedule::{ScheduleConfig, tick};
use byoc_workers::{Blueprint, RunTarget, Worker, WorkerConfig};
use serde_json::{Value, json};

const KINDS: &[&str] = &["vpc", "subnet", "nat"];

/// The config's `resources` are the resource list.
struct ListBlueprint(Arc<FakeCloud>);

impl Blueprint for ListBlueprint {
    fn build(&self, _: &RunTarget, config: &Value) -> Result<(Vec<Resource>, Providers), String> {
        let resources =
            serde_json::from_value(config["resources"].clone()).map_err(|e| e.to_string())?;
        Ok((resources, providers(&self.0, KINDS)))
    }
}

fn config(drift_check: Value) -> Value {
    json!({
        "resources": [
            Resource::new("vpc", "vpc", json!({"cidr": "10.0.0.0/16"})),
            Resource::new("subnet", "a", json!({"vpc": reference("vpc", "id")})),
            Resource::new("nat", "nat", json!({"subnet": reference("a", "id"), "size": 1})),
        ],
        "drift_check": drift_check,
    })
}

async fn databases() -> anyhow::Result<Vec<(TestDb, Database)>> {
    let mut out = Vec::new();
    for t in TestDb::both(&schema_fingerprint(), |url| async move {
        Ok(migrate_url(&url).await?)
    })
    .await?
    {
        let db = Database::connect(t.url()).await?;
        out.push((t, db));
    }
    Ok(out)
}

fn worker(db: &Database, cloud: &Arc<FakeCloud>, name: &str) -> anyhow::Result<Worker> {
    let mut wc = WorkerConfig::new(name);
    wc.lease_ttl = Duration::from_secs(5);
    wc.poll = Duration::from_millis(20);
    wc.retry = RetryPolicy {
        max_attempts: 3,
        initial_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        max_elapsed: Duration::from_secs(5),
    };
    Ok(Worker::new(
        db.clone(),
        Sealer::from_hex(&"ab".repeat(32))?,
        Arc::new(ListBlueprint(cloud.clone())),
        wc,
        CancellationToken::new(),
    ))
}

/// A trusted tenant's environment `acme-dev`, deployed by `worker`.
async fn deployed(db: &Database, worker: &Worker, drift_check: Value) -> anyhow::Result<String> {
    let new = NewTenant {
        slug: "acme".into(),
        name: "Acme".into(),
        aws_account_id: "111111111111".into(),
        labels: Default::default(),
    };
    let (tenant, _) = db
        .create_tenant(&Sealer::from_hex(&"ab".repeat(32))?, &new, "test")
        .await?;
    db.save_config(&tenant.id, "acme", "dev", &config(drift_check), "test")
        .await?;
    let sql = "UPDATE tenants SET onboarding_status = 'trusted' WHERE slug = 'acme'";
    match db.pool() {
        Pool::Sqlite(p) => sqlx::query(sql).execute(p).await.map(drop)?,
        Pool::Postgres(p) => sqlx::query(sql).execute(p).await.map(drop)?,
    }
    let (run, _) = db.request_run("acme-dev", RunKind::Deploy, "alice").await?;
    assert_eq!(worker.execute(run.id.as_str()).await?, RunStatus::Succeeded);
    Ok("acme-dev".into())
}

fn of_kind(runs: &[byoc_model::Run], kind: RunKind) -> Vec<byoc_model::Run> {
    runs.iter().filter(|r| r.kind == kind).cloned().collect()
}

#[tokio::test]
async fn one_check_per_slot_and_a_repair_for_drift() -> anyhow::Result<()> {
    for (_t, db) in databases().await? {
        let queue = JobQueue::setup(&db, QueueConfig::default()).await?;
        let cloud = FakeCloud::new();
        let (a, b) = (worker(&db, &cloud, "w-a")?, worker(&db, &cloud, "w-b")?);
        let stack = deployed(&db, &a, json!({"every_minutes": 60, "repair": true})).await?;
        // The NAT gateway is deleted behind byoc's back.
        let nat = db
            .snapshot(&stack)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .resources["nat"]
            .physical_id
            .clone();
        cloud.remove(&nat);

        // Two schedulers (one per worker process) run their round at the same moment.
        let cfg = ScheduleConfig::default();
        let now = now_ms();
        let (q1, q2) = (queue.clone(), JobQueue::attach(&db));
        let (r1, r2) = tokio::join!(tick(&db, &q1, &cfg, now), tick(&db, &q2, &cfg, now));
        let (r1, r2) = (r1?, r2?);
        assert_eq!(r1.queued.len() + r2.queued.len(), 1, "{r1:?} {r2:?}");
        let check = r1.queued.iter().chain(&r2.queued).next().unwrap().clone();
        assert_eq!(
            (check.kind, check.requested_by.as_str()),
            (RunKind::Refresh, "schedule")
        );
        // Both workers are handed the check; it runs once.
        let (s1, s2) = tokio::join!(a.execute(check.id.as_str()), b.execute(check.id.as_str()));
        assert_eq!((s1?, s2?), (RunStatus::Succeeded, RunStatus::Succeeded));
        let summary = db.run(check.id.as_str()).await?.summary.unwrap();
        assert_eq!(summary["drift"][0]["resource"], "nat", "{summary}");

        // Drift and `repair`: one deploy, requested by the schedule.
        let runs = db.runs_of(&stack).await?;
        let deploys = of_kind(&runs, RunKind::Deploy);
        assert_eq!(deploys.len(), 2, "{runs:?}");
        let repair = deploys.last().unwrap();
        assert_eq!(
            (repair.status, repair.requested_by.as_str()),
            (RunStatus::Queued, "schedule")
        );
        assert_eq!(db.drifted_environments().await?, 1);

        // The same slot again, later in it: nothing (the repair is queued anyway; once it
        // has run, the slot has had its check).
        assert!(tick(&db, &q1, &cfg, now + 1000).await?.queued.is_empty());
        assert_eq!(a.execute(repair.id.as_str()).await?, RunStatus::Succeeded);
        assert!(tick(&db, &q1, &cfg, now + 1000).await?.queued.is_empty());
        assert_eq!(
            of_kind(&db.runs_of(&stack).await?, RunKind::Refresh).len(),
            1
        );

        // The next slot: one more check, which finds nothing to repair.
        let next = now + 3_600_000;
        let (r1, r2) = tokio::join!(tick(&db, &q1, &cfg, next), tick(&db, &q2, &cfg, next));
        let queued: Vec<_> = r1?.queued.into_iter().chain(r2?.queued).collect();
        assert_eq!(queued.len(), 1);
        assert_eq!(
            b.execute(queued[0].id.as_str()).await?,
            RunStatus::Succeeded
        );
        let runs = db.runs_of(&stack).await?;
        assert_eq!(of_kind(&runs, RunKind::Refresh).len(), 2);
        assert_eq!(of_kind(&runs, RunKind::Deploy).len(), 2, "no second repair");
    }
    Ok(())
}

#[tokio::test]
async fn without_repair_a_check_only_reports() -> anyhow::Result<()> {
    for (_t, db) in databases().await? {
        let queue = JobQueue::setup(&db, QueueConfig::default()).await?;
        let cloud = FakeCloud::new();
        let a = worker(&db, &cloud, "w-a")?;
        let stack = deployed(&db, &a, json!({"every_minutes": 5})).await?;
        let nat = db
            .snapshot(&stack)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .resources["nat"]
            .physical_id
            .clone();
        cloud.remove(&nat);
        let round = tick(&db, &queue, &ScheduleConfig::default(), now_ms()).await?;
        assert_eq!(round.queued.len(), 1);
        assert_eq!(
            a.execute(round.queued[0].id.as_str()).await?,
            RunStatus::Succeeded
        );
        let runs = db.runs_of(&stack).await?;
        assert_eq!(of_kind(&runs, RunKind::Deploy).len(), 1, "{runs:?}");
        assert_eq!(db.drifted_environments().await?, 1);
        // A manual refresh is no scheduled check: no repair either way.
        assert!(db.scheduled_check(runs[0].id.as_str()).await?.is_none());
    }
    Ok(())
}
