//! Scheduled drift checks on both engines, with the in-memory cloud: a scheduler round makes
//! one refresh per slot however many schedulers run it, and a check that finds drift queues
//! one repair deploy when the environment asks for it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use byoc_engine::testing::FakeCloud;
use byoc_engine::{Resource, reference};
use byoc_model::{RunKind, RunStatus};
use byoc_stacks::{Database, JobQueue, NewTenant, QueueConfig, Sealer, now_ms};
use byoc_testkit::{databases, trust_tenant};
use byoc_workers::Worker;
use byoc_workers::schedule::{ScheduleConfig, tick};
use serde_json::{Value, json};

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

fn worker(db: &Database, cloud: &Arc<FakeCloud>, name: &str) -> anyhow::Result<Worker> {
    common::list_worker(db, cloud, name, Duration::from_secs(5))
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
    trust_tenant(db, "acme").await?;
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
