//! Scheduled drift checks in the store, on both engines: one run per schedule slot however
//! many schedulers race for it, the due-listing query, and the count of drifted environments.

use std::time::Duration;

use byoc_model::{RunKind, RunStatus, StackName};
use byoc_stacks::{Begin, Database, NewTenant, Sealer};
use byoc_testkit::{databases, trust_tenant};
use serde_json::{Value, json};

/// Tenant `slug` (trusted or not) with environment `dev` saved with `config`.
async fn environment(
    db: &Database,
    slug: &str,
    trusted: bool,
    config: &Value,
) -> anyhow::Result<StackName> {
    let new = NewTenant {
        slug: slug.into(),
        name: "Acme".into(),
        aws_account_id: "111111111111".into(),
        labels: Default::default(),
    };
    let sealer = Sealer::from_hex(&"ab".repeat(32))?;
    let (tenant, _) = db.create_tenant(&sealer, &new, "test").await?;
    db.save_config(&tenant.id, slug, "dev", config, "test")
        .await?;
    if trusted {
        trust_tenant(db, slug).await?;
    }
    Ok(format!("{slug}-dev").parse()?)
}

/// Runs `kind` on the stack to the end with `status` and `summary`, as a worker would.
async fn run(
    db: &Database,
    stack: &StackName,
    kind: RunKind,
    status: RunStatus,
    summary: Option<Value>,
) -> anyhow::Result<String> {
    let (run, _) = db.request_run(stack.as_str(), kind, "alice").await?;
    finish(db, run.id.as_str(), status, summary).await?;
    Ok(run.id.to_string())
}

async fn finish(
    db: &Database,
    run_id: &str,
    status: RunStatus,
    summary: Option<Value>,
) -> anyhow::Result<()> {
    let Begin::Started(lease) = db.begin_run(run_id, "w", Duration::from_secs(60)).await? else {
        anyhow::bail!("run {run_id} did not start");
    };
    db.finish_run(run_id, &lease, status, None, summary.as_ref())
        .await?;
    Ok(())
}

const SLOT: i64 = 1_800_000_000_000;

#[tokio::test]
async fn schedulers_racing_for_a_slot_record_one_run() -> anyhow::Result<()> {
    for (_t, db) in databases().await? {
        let stack = environment(&db, "acme", true, &json!({})).await?;
        run(&db, &stack, RunKind::Deploy, RunStatus::Succeeded, None).await?;
        // Eight schedulers at once, for the same slot.
        let racers = (0..8).map(|_| {
            let (db, stack) = (db.clone(), stack.clone());
            tokio::spawn(async move {
                db.request_scheduled_run(&stack, RunKind::Refresh, SLOT, "schedule")
                    .await
            })
        });
        let mut made = Vec::new();
        for racer in racers {
            made.extend(racer.await??);
        }
        assert_eq!(made.len(), 1, "{made:?}");
        let refreshes: Vec<_> = db
            .runs_of(stack.as_str())
            .await?
            .into_iter()
            .filter(|r| r.kind == RunKind::Refresh)
            .collect();
        assert_eq!(refreshes.len(), 1);
        assert_eq!(refreshes[0].requested_by, "schedule");
        assert_eq!(db.last_schedule_slot(&stack).await?, Some(SLOT));

        // Not while a run is queued (the check itself is), and not twice for a slot.
        let next = SLOT + 3_600_000;
        assert!(
            db.request_scheduled_run(&stack, RunKind::Refresh, next, "schedule")
                .await?
                .is_none()
        );
        finish(&db, made[0].id.as_str(), RunStatus::Succeeded, None).await?;
        assert!(
            db.request_scheduled_run(&stack, RunKind::Refresh, SLOT, "schedule")
                .await?
                .is_none()
        );
        let second = db
            .request_scheduled_run(&stack, RunKind::Refresh, next, "schedule")
            .await?;
        let second = second.expect("the next slot's check");
        // A refresh asked for meanwhile joins the queued check.
        let (a, joined) = db
            .request_run(stack.as_str(), RunKind::Refresh, "bob")
            .await?;
        assert!(joined && a.id == second.id);
        // Ordinary runs have no slot and are not limited by the index.
        db.request_run(stack.as_str(), RunKind::Preview, "bob")
            .await?;
        let (b, joined) = db
            .request_run(stack.as_str(), RunKind::Refresh, "bob")
            .await?;
        assert!(!joined && b.id != a.id);
    }
    Ok(())
}

#[tokio::test]
async fn due_listing_keeps_deployed_trusted_idle_environments() -> anyhow::Result<()> {
    let scheduled = json!({"drift_check": {"every_minutes": 60}});
    for (_t, db) in databases().await? {
        // Deployed, trusted, idle, with its own schedule: listed.
        let ready = environment(&db, "ready", true, &scheduled).await?;
        run(&db, &ready, RunKind::Deploy, RunStatus::Succeeded, None).await?;
        // Deployed and trusted, no schedule of its own: listed only under a server default.
        let plain = environment(&db, "plain", true, &json!({})).await?;
        run(&db, &plain, RunKind::Deploy, RunStatus::Succeeded, None).await?;
        // Never listed: an untrusted tenant, a stack never deployed, one with a run queued,
        // one destroyed.
        let untrusted = environment(&db, "untrusted", false, &scheduled).await?;
        run(&db, &untrusted, RunKind::Deploy, RunStatus::Succeeded, None).await?;
        environment(&db, "empty", true, &scheduled).await?;
        let busy = environment(&db, "busy", true, &scheduled).await?;
        run(&db, &busy, RunKind::Deploy, RunStatus::Succeeded, None).await?;
        db.request_run(busy.as_str(), RunKind::Preview, "alice")
            .await?;
        let gone = environment(&db, "gone", true, &scheduled).await?;
        run(&db, &gone, RunKind::Deploy, RunStatus::Succeeded, None).await?;
        run(&db, &gone, RunKind::Destroy, RunStatus::Succeeded, None).await?;

        let now = byoc_stacks::now_ms();
        let names = |c: Vec<byoc_stacks::CheckCandidate>| -> Vec<String> {
            c.into_iter().map(|c| c.stack.to_string()).collect()
        };
        assert_eq!(names(db.check_candidates(now, false).await?), ["ready-dev"]);
        assert_eq!(
            names(db.check_candidates(now, true).await?),
            ["plain-dev", "ready-dev"]
        );
        let listed = db.check_candidates(now, false).await?;
        assert_eq!(listed[0].config, scheduled);
        assert_eq!(listed[0].last_slot, None);

        // A check this very slot: not listed again until the shortest period has passed.
        let check = db
            .request_scheduled_run(&ready, RunKind::Refresh, now - 1000, "schedule")
            .await?
            .unwrap();
        finish(&db, check.id.as_str(), RunStatus::Succeeded, None).await?;
        assert!(db.check_candidates(now, false).await?.is_empty());
        let later = now + 6 * 60_000;
        let listed = db.check_candidates(later, false).await?;
        assert_eq!(listed[0].last_slot, Some(now - 1000));
    }
    Ok(())
}

#[tokio::test]
async fn drifted_environments_are_counted_until_repaired() -> anyhow::Result<()> {
    let found = json!({"drift": [{"resource": "nat", "kind": "nat", "drift": "deleted"}]});
    let clean = json!({"drift": []});
    for (_t, db) in databases().await? {
        let a = environment(&db, "aaa", true, &json!({})).await?;
        let b = environment(&db, "bbb", true, &json!({})).await?;
        let c = environment(&db, "ccc", true, &json!({})).await?;
        for s in [&a, &b, &c] {
            run(&db, s, RunKind::Deploy, RunStatus::Succeeded, None).await?;
        }
        assert_eq!(db.drifted_environments().await?, 0);
        run(
            &db,
            &a,
            RunKind::Refresh,
            RunStatus::Succeeded,
            Some(found.clone()),
        )
        .await?;
        run(
            &db,
            &b,
            RunKind::Refresh,
            RunStatus::Succeeded,
            Some(found.clone()),
        )
        .await?;
        run(
            &db,
            &c,
            RunKind::Refresh,
            RunStatus::Succeeded,
            Some(clean.clone()),
        )
        .await?;
        assert_eq!(db.drifted_environments().await?, 2);
        // A later clean check, or a deploy, ends it; a failed deploy does not.
        run(
            &db,
            &a,
            RunKind::Refresh,
            RunStatus::Succeeded,
            Some(clean.clone()),
        )
        .await?;
        run(&db, &b, RunKind::Deploy, RunStatus::Failed, None).await?;
        assert_eq!(db.drifted_environments().await?, 1);
        run(&db, &b, RunKind::Deploy, RunStatus::Succeeded, None).await?;
        assert_eq!(db.drifted_environments().await?, 0);
    }
    Ok(())
}
