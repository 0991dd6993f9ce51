//! Runs under contention (issue 19), on both engines: a cancel racing a worker's start, event
//! numbering and fencing, leases judged by the database's clock, cancelling finished runs,
//! requests joining queued runs, and the caps on unfinished runs.

use std::sync::Arc;
use std::time::Duration;

use byoc_model::{Run, RunKind, RunStatus};
use byoc_stacks::{Begin, Database, DbError, Lease, Pool, RunLimits, Sealer, TrustLocation};
use byoc_testkit::{TestDb, databases, exec, tenant_with_stacks};
use serde_json::json;
use tokio::sync::Barrier;

fn sealer() -> Sealer {
    Sealer::from_hex(&"ab".repeat(32)).unwrap()
}

/// Tenant `slug` with `envs` environments (stacks `{slug}-e0`, `{slug}-e1`, ...).
async fn stacks(db: &Database, slug: &str, envs: usize) -> anyhow::Result<Vec<String>> {
    let names: Vec<String> = (0..envs).map(|i| format!("e{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    tenant_with_stacks(db, &sealer(), slug, &names).await
}

/// A run of `kind` on `stack` that worker `w1` started with a lease of `ttl`.
async fn started(
    db: &Database,
    stack: &str,
    kind: RunKind,
    ttl: Duration,
) -> anyhow::Result<(Run, Lease)> {
    let (run, _) = db.request_run(stack, kind, "alice").await?;
    match db.begin_run(&run.id, "w1", ttl).await? {
        Begin::Started(lease) => Ok((run, lease)),
        other => anyhow::bail!("{kind} {} did not start: {other:?}", run.id),
    }
}

/// 50 queued destroys, each cancelled while a worker starts it, all at once. Whichever comes
/// first, the cancel is never lost: a run is cancelled and never started, or started with the
/// cancel flagged (and the cancel's answer says it is running, not cancelled).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancel_racing_the_start_is_never_lost() -> anyhow::Result<()> {
    let ttl = Duration::from_secs(60);
    for (_t, db) in databases().await? {
        let mut pairs = Vec::new();
        // One stack per run: each is its stack's first, so only the cancel can stop it.
        for stack in stacks(&db, "acme", 50).await? {
            let (run, _) = db.request_run(&stack, RunKind::Destroy, "alice").await?;
            let barrier = Arc::new(Barrier::new(2));
            let begin = tokio::spawn({
                let (db, id, barrier) = (db.clone(), run.id.clone(), barrier.clone());
                async move {
                    barrier.wait().await;
                    db.begin_run(&id, "w1", ttl).await
                }
            });
            let cancel = tokio::spawn({
                let (db, id) = (db.clone(), run.id.clone());
                async move {
                    barrier.wait().await;
                    db.request_cancel(&id, "alice").await
                }
            });
            pairs.push((run.id, begin, cancel));
        }
        let (mut started, mut cancelled) = (0, 0);
        for (id, begin, cancel) in pairs {
            let (begun, answer) = (begin.await??, cancel.await??);
            let run = db.run(&id).await?;
            match begun {
                Begin::Started(_) => {
                    started += 1;
                    assert_eq!(
                        (run.status, run.cancel_requested, run.finished_at),
                        (RunStatus::Running, true, None),
                        "started: the cancel is flagged for the worker to see"
                    );
                    assert_eq!(
                        answer.status,
                        RunStatus::Running,
                        "a cancel that said cancelled lost to the start"
                    );
                }
                Begin::Cancelled => {
                    cancelled += 1;
                    assert_eq!(run.status, RunStatus::Cancelled);
                    assert_eq!(run.started_at, None, "a cancelled run never started");
                    assert_eq!(answer.status, RunStatus::Cancelled);
                }
                other => panic!("run {id}: {other:?}"),
            }
        }
        assert_eq!(started + cancelled, 50);
    }
    Ok(())
}

/// A run resumed after its cancel was requested (its worker died meanwhile) is handed over
/// only to be ended: the new worker applies nothing more.
#[tokio::test]
async fn a_run_resumed_after_a_cancel_request_only_ends() -> anyhow::Result<()> {
    for (_t, db) in databases().await? {
        let stack = stacks(&db, "acme", 1).await?.remove(0);
        let (run, old) = started(&db, &stack, RunKind::Destroy, Duration::from_millis(1)).await?;
        db.request_cancel(&run.id, "alice").await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let Begin::CancelRequested(lease) =
            db.begin_run(&run.id, "w2", Duration::from_secs(60)).await?
        else {
            panic!("the cancel is seen when the run resumes");
        };
        assert_eq!(
            lease.generation,
            old.generation + 1,
            "the old holder is fenced"
        );
        db.finish_run(&run.id, &lease, RunStatus::Cancelled, None, None)
            .await?;
        assert_eq!(db.run(&run.id).await?.status, RunStatus::Cancelled);
    }
    Ok(())
}

/// 100 events of one run written at once are numbered 1 to 100, none lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_events_of_a_run_get_distinct_numbers() -> anyhow::Result<()> {
    for (_t, db) in databases().await? {
        let stack = stacks(&db, "acme", 1).await?.remove(0);
        let (run, lease) = started(&db, &stack, RunKind::Deploy, Duration::from_secs(60)).await?;
        let barrier = Arc::new(Barrier::new(100));
        let writers: Vec<_> = (0..100)
            .map(|i| {
                let (db, id, lease, barrier) =
                    (db.clone(), run.id.clone(), lease.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    db.record_event(&lease, &id, "info", None, &format!("event {i}"), None)
                        .await
                })
            })
            .collect();
        let mut seqs = Vec::new();
        for w in writers {
            seqs.push(w.await??);
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=100).collect::<Vec<i64>>());
        let stored: Vec<i64> = db
            .run_events(&run.id, 0, 1000)
            .await?
            .into_iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(stored, seqs);
    }
    Ok(())
}

/// A worker whose lease was taken over writes no more events into the run's stream.
#[tokio::test]
async fn a_worker_that_lost_the_lease_records_no_events() -> anyhow::Result<()> {
    for (_t, db) in databases().await? {
        let stack = stacks(&db, "acme", 1).await?.remove(0);
        let (run, old) = started(&db, &stack, RunKind::Deploy, Duration::from_millis(1)).await?;
        db.record_event(&old, &run.id, "info", None, "w1 working", None)
            .await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let Begin::Started(new) = db.begin_run(&run.id, "w2", Duration::from_secs(60)).await?
        else {
            panic!("an expired lease is taken over");
        };
        let stale = db
            .record_event(&old, &run.id, "info", None, "w1 still working", None)
            .await;
        assert!(matches!(stale, Err(DbError::Fenced(_))), "{stale:?}");
        assert_eq!(
            db.record_event(&new, &run.id, "info", None, "w2 resumed", None)
                .await?,
            2
        );
        let messages: Vec<String> = db
            .run_events(&run.id, 0, 10)
            .await?
            .into_iter()
            .map(|e| e.message)
            .collect();
        assert_eq!(messages, ["w1 working", "w2 resumed"]);
    }
    Ok(())
}

/// The database's clock in Unix ms, as each engine spells it (what the store uses).
fn db_now(db: &Database) -> &'static str {
    match db.pool() {
        Pool::Sqlite(_) => "CAST(unixepoch('subsec') * 1000 AS INTEGER)",
        Pool::Postgres(_) => "floor(extract(epoch from clock_timestamp()) * 1000)::bigint",
    }
}

/// Runs `sql` (which may use `{now}`, the database's clock) on `db`'s own connections.
async fn on_db_clock(db: &Database, sql: &str) -> anyhow::Result<()> {
    let sql = sqlx::AssertSqlSafe(sql.replace("{now}", db_now(db)));
    match db.pool() {
        Pool::Sqlite(p) => sqlx::query(sql).execute(p).await.map(drop)?,
        Pool::Postgres(p) => sqlx::query(sql).execute(p).await.map(drop)?,
    }
    Ok(())
}

/// How long the lease of `stack` lives on, by the database's clock (ms).
async fn lease_left(db: &Database, stack: &str) -> anyhow::Result<i64> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT lease_expires_at - {} FROM stacks WHERE name = $1",
        db_now(db)
    ));
    Ok(match db.pool() {
        Pool::Sqlite(p) => sqlx::query_scalar(sql).bind(stack).fetch_one(p).await?,
        Pool::Postgres(p) => sqlx::query_scalar(sql).bind(stack).fetch_one(p).await?,
    })
}

/// The store of `t`, on a database whose clock is `skew_minutes` ahead of this host's. On
/// Postgres a `clock_timestamp()` of the test's own shadows the server's (through the
/// connections' search_path), as a database host whose clock disagrees with the workers'
/// would. SQLite's clock is the process's own: no skew there.
async fn skewed(t: &TestDb, db: Database, skew_minutes: i64) -> anyhow::Result<Database> {
    if matches!(db.pool(), Pool::Sqlite(_)) {
        return Ok(db);
    }
    exec(t.url(), "CREATE SCHEMA skewed").await?;
    exec(
        t.url(),
        &format!(
            "CREATE FUNCTION skewed.clock_timestamp() RETURNS timestamptz LANGUAGE sql AS
             $$ SELECT pg_catalog.clock_timestamp() + interval '{skew_minutes} minutes' $$"
        ),
    )
    .await?;
    let sep = if t.url().contains('?') { '&' } else { '?' };
    let url = format!(
        "{}{sep}options[search_path]=skewed,pg_catalog,public",
        t.url()
    );
    Ok(Database::connect(&url).await?)
}

/// Leases are taken, renewed and judged by the database's clock, never a worker's: with the
/// database an hour ahead of the workers' host, a lease the database sees expired is taken
/// over and can be unlocked without force, and one it sees live is not.
#[tokio::test]
async fn leases_follow_the_database_clock() -> anyhow::Result<()> {
    let ttl = Duration::from_secs(600);
    for (t, db) in databases().await? {
        let db = skewed(&t, db, 60).await?;
        let stack = stacks(&db, "acme", 1).await?.remove(0);
        let (run, first) = started(&db, &stack, RunKind::Deploy, ttl).await?;
        let left = lease_left(&db, &stack).await?;
        assert!(
            (590_000..=600_000).contains(&left),
            "taken for 10 min by the database's clock: {left} ms left"
        );
        assert_eq!(db.begin_run(&run.id, "w2", ttl).await?, Begin::Wait);

        // Expired a second ago by the database's clock (on the workers' host it would have
        // most of an hour left): w2 takes over.
        on_db_clock(&db, "UPDATE stacks SET lease_expires_at = {now} - 1000").await?;
        let Begin::Started(second) = db.begin_run(&run.id, "w2", ttl).await? else {
            panic!("a lease the database sees expired is taken over");
        };
        assert_eq!(second.generation, first.generation + 1);

        db.renew_lease(&second, Duration::from_secs(60)).await?;
        let left = lease_left(&db, &stack).await?;
        assert!(
            (50_000..=60_000).contains(&left),
            "renewed for 60 s by the database's clock: {left} ms left"
        );
        let live = db.force_unlock(&stack, "admin", false).await;
        assert!(matches!(live, Err(DbError::Conflict(_))), "{live:?}");

        on_db_clock(&db, "UPDATE stacks SET lease_expires_at = {now} - 1000").await?;
        let broken = db.force_unlock(&stack, "admin", false).await?;
        assert!(!broken.was_live, "expired by the database's clock");
    }
    Ok(())
}

/// Cancelling a run that has finished is refused, naming how it ended; nothing changes.
#[tokio::test]
async fn cancelling_a_finished_run_is_a_conflict_naming_its_status() -> anyhow::Result<()> {
    let ttl = Duration::from_secs(60);
    for (_t, db) in databases().await? {
        let stack = stacks(&db, "acme", 1).await?.remove(0);
        for status in [RunStatus::Succeeded, RunStatus::Failed] {
            let (run, lease) = started(&db, &stack, RunKind::Refresh, ttl).await?;
            db.finish_run(&run.id, &lease, status, None, None).await?;
            let refused = db.request_cancel(&run.id, "alice").await;
            let Err(DbError::Conflict(message)) = refused else {
                panic!("a finished run cannot be cancelled: {refused:?}");
            };
            assert!(
                message.contains(&format!("has already finished ({status})")),
                "{message}"
            );
            let after = db.run(&run.id).await?;
            assert_eq!((after.status, after.cancel_requested), (status, false));
        }
        let (run, _) = db.request_run(&stack, RunKind::Refresh, "alice").await?;
        db.request_cancel(&run.id, "alice").await?;
        let again = db.request_cancel(&run.id, "alice").await;
        assert!(
            matches!(&again, Err(DbError::Conflict(m)) if m.contains("(cancelled)")),
            "{again:?}"
        );
        assert!(matches!(
            db.request_cancel("00000000-0000-4000-8000-000000000000", "alice")
                .await,
            Err(DbError::NotFound(_))
        ));
    }
    Ok(())
}

/// Every kind of run joins the stack's latest run when that one is queued and of its kind,
/// and only then: a destroy asked for after a deploy queued behind an earlier destroy is a run
/// of its own, or "destroy, deploy, destroy" would leave the stack deployed.
#[tokio::test]
async fn requests_join_the_latest_queued_run_of_their_kind() -> anyhow::Result<()> {
    for (_t, db) in databases().await? {
        let stack = stacks(&db, "acme", 1).await?.remove(0);
        let trust = db
            .prepare_verification(&"acme".parse()?, &TrustLocation::default())
            .await?;
        for (stack, kind) in [
            (stack.as_str(), RunKind::Deploy),
            (stack.as_str(), RunKind::Destroy),
            (stack.as_str(), RunKind::Preview),
            (stack.as_str(), RunKind::Refresh),
            (trust.as_str(), RunKind::Verify),
        ] {
            let (first, joined) = db.request_run(stack, kind, "alice").await?;
            assert!(!joined, "{kind}");
            for _ in 0..3 {
                let (again, joined) = db.request_run(stack, kind, "bob").await?;
                assert!(
                    joined && again.id == first.id,
                    "{kind} joins the queued one"
                );
            }
        }
        // Latest on the stack now: the refresh. A destroy, a deploy, a destroy: three runs.
        let (d1, _) = db.request_run(&stack, RunKind::Destroy, "alice").await?;
        let (deploy, _) = db.request_run(&stack, RunKind::Deploy, "alice").await?;
        let (d2, joined) = db.request_run(&stack, RunKind::Destroy, "alice").await?;
        assert!(!joined && d2.id != d1.id && d2.id != deploy.id);
        let kinds: Vec<RunKind> = db.runs_of(&stack).await?.iter().map(|r| r.kind).collect();
        use RunKind::*;
        assert_eq!(
            kinds,
            [Deploy, Destroy, Preview, Refresh, Destroy, Deploy, Destroy]
        );
    }
    Ok(())
}

/// 20 verifications asked for at once make one run: the others join it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_of_a_kind_make_one_run() -> anyhow::Result<()> {
    for (_t, db) in databases().await? {
        stacks(&db, "acme", 0).await?;
        let trust = db
            .prepare_verification(&"acme".parse()?, &TrustLocation::default())
            .await?;
        let barrier = Arc::new(Barrier::new(20));
        let requests: Vec<_> = (0..20)
            .map(|_| {
                let (db, trust, barrier) = (db.clone(), trust.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    db.request_run(&trust, RunKind::Verify, "alice").await
                })
            })
            .collect();
        let mut ids = std::collections::BTreeSet::new();
        let mut joined = 0;
        for r in requests {
            let (run, j) = r.await??;
            ids.insert(run.id);
            joined += usize::from(j);
        }
        assert_eq!((ids.len(), joined), (1, 19));
        assert_eq!(db.runs_of(&trust).await?.len(), 1);
    }
    Ok(())
}

/// A preview of `stack` that succeeded with a plan: its run id.
async fn succeeded_preview(db: &Database, stack: &str) -> anyhow::Result<String> {
    let (preview, lease) = started(db, stack, RunKind::Preview, Duration::from_secs(60)).await?;
    db.record_plan(&preview.id, &lease, &json!({"steps": []}), None)
        .await?;
    db.finish_run(&preview.id, &lease, RunStatus::Succeeded, None, None)
        .await?;
    Ok(preview.id.to_string())
}

/// A deploy of an approved plan joins the queued deploy of the same plan; a plain deploy is a
/// run of its own behind it, and another approved deploy is refused while a deploy is queued.
#[tokio::test]
async fn approved_deploys_join_only_the_deploy_of_their_plan() -> anyhow::Result<()> {
    for (_t, db) in databases().await? {
        let stack = stacks(&db, "acme", 1).await?.remove(0);
        let plan = succeeded_preview(&db, &stack).await?;
        let (approved, joined) = db.request_approved_deploy(&stack, &plan, "alice").await?;
        assert!(!joined);
        let (again, joined) = db.request_approved_deploy(&stack, &plan, "bob").await?;
        assert!(joined && again.id == approved.id);
        let (plain, joined) = db.request_run(&stack, RunKind::Deploy, "bob").await?;
        assert!(!joined && plain.id != approved.id, "not the approved plan");
        let refused = db.request_approved_deploy(&stack, &plan, "bob").await;
        assert!(
            matches!(&refused, Err(DbError::Conflict(m)) if m.contains("is queued already")),
            "{refused:?}"
        );
    }
    Ok(())
}

fn too_many(result: Result<(Run, bool), DbError>) -> String {
    match result {
        Err(e @ DbError::TooManyRuns { .. }) => e.to_string(),
        other => panic!("refused past the cap: {other:?}"),
    }
}

/// Past the cap of unfinished runs of a stack, or of its tenant, a request is refused naming
/// the cap; one that joins a queued run still answers, and a cancelled run makes room.
#[tokio::test]
async fn unfinished_runs_are_capped_per_stack_and_per_tenant() -> anyhow::Result<()> {
    let limits = RunLimits {
        per_stack: 3,
        per_tenant: 5,
    };
    for (_t, db) in databases().await? {
        let db = db.with_run_limits(limits);
        let names = stacks(&db, "acme", 3).await?;
        let (a, b, c) = (&names[0], &names[1], &names[2]);
        // Alternating kinds, so that none joins another.
        let (first, _) = db.request_run(a, RunKind::Deploy, "alice").await?;
        db.request_run(a, RunKind::Destroy, "alice").await?;
        db.request_run(a, RunKind::Deploy, "alice").await?;
        let message = too_many(db.request_run(a, RunKind::Destroy, "alice").await);
        assert!(
            message.contains("stack acme-e0 has 3 unfinished runs")
                && message.contains("the cap is 3 per stack"),
            "{message}"
        );
        let (_, joined) = db.request_run(a, RunKind::Deploy, "alice").await?;
        assert!(joined, "a request that joins adds nothing");

        db.request_run(b, RunKind::Deploy, "alice").await?;
        db.request_run(b, RunKind::Destroy, "alice").await?;
        let message = too_many(db.request_run(b, RunKind::Deploy, "alice").await);
        assert!(
            message.contains("tenant acme has 5 unfinished runs")
                && message.contains("the cap is 5 per tenant"),
            "{message}"
        );
        // A scheduled check waits for room, without failing its round.
        let c = c.parse()?;
        assert!(
            db.request_scheduled_run(&c, RunKind::Refresh, 0, "schedule")
                .await?
                .is_none()
        );

        db.request_cancel(&first.id, "alice").await?;
        db.request_run(b, RunKind::Deploy, "alice").await?;
        let unfinished = db.unfinished_runs().await?.len();
        assert_eq!(unfinished, 5);
    }
    Ok(())
}

/// 100 requests at once on one stack, of kinds taking turns: the cap holds (five rounds, on
/// five stacks, for a race to show).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cap_holds_under_concurrent_requests() -> anyhow::Result<()> {
    let kinds = [
        RunKind::Deploy,
        RunKind::Destroy,
        RunKind::Preview,
        RunKind::Refresh,
    ];
    for (_t, db) in databases().await? {
        let db = db.with_run_limits(RunLimits {
            per_stack: 5,
            per_tenant: 100,
        });
        for stack in stacks(&db, "acme", 5).await? {
            let barrier = Arc::new(Barrier::new(100));
            let requests: Vec<_> = (0..100)
                .map(|i| {
                    let (db, stack, barrier) = (db.clone(), stack.clone(), barrier.clone());
                    tokio::spawn(async move {
                        barrier.wait().await;
                        db.request_run(&stack, kinds[i % kinds.len()], "alice")
                            .await
                    })
                })
                .collect();
            for r in requests {
                match r.await? {
                    Ok(_) | Err(DbError::TooManyRuns { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            assert_eq!(db.runs_of(&stack).await?.len(), 5, "{stack}");
        }
    }
    Ok(())
}

/// What finished long ago is deleted (runs, their events, settled journal entries, then
/// the audit log after longer); what is unfinished, recent, or a preview a queued deploy is
/// to apply stays. Pruning twice deletes nothing more.
#[tokio::test]
async fn retention_deletes_what_finished_long_ago() -> anyhow::Result<()> {
    use byoc_stacks::{Pruned, Retention};
    let ttl = Duration::from_secs(60);
    for (t, db) in databases().await? {
        let stacks = tenant_with_stacks(&db, &sealer(), "acme", &["dev", "prod"]).await?;
        let (dev, prod) = (&stacks[0], &stacks[1]);
        // dev: an old finished deploy with an event, and an old preview whose plan a queued
        // deploy is to apply; prod: a recent finished deploy and a queued one.
        let finish = |stack: String| {
            let db = db.clone();
            async move {
                let (run, _) = db.request_run(&stack, RunKind::Deploy, "alice").await?;
                let Begin::Started(lease) = db.begin_run(&run.id, "w", ttl).await? else {
                    anyhow::bail!("not started");
                };
                db.record_event(&lease, &run.id, "info", None, "hello", None)
                    .await?;
                db.finish_run(&run.id, &lease, RunStatus::Succeeded, None, None)
                    .await?;
                anyhow::Ok(run.id)
            }
        };
        let old = finish(dev.clone()).await?;
        let (preview, _) = db.request_run(dev, RunKind::Preview, "alice").await?;
        let Begin::Started(lease) = db.begin_run(&preview.id, "w", ttl).await? else {
            anyhow::bail!("preview not started");
        };
        db.record_plan(&preview.id, &lease, &json!({"steps": []}), None)
            .await?;
        db.finish_run(&preview.id, &lease, RunStatus::Succeeded, None, None)
            .await?;
        let approved = db
            .request_approved_deploy(dev, &preview.id, "alice")
            .await?
            .0;
        let recent = finish(prod.clone()).await?;
        let (queued, _) = db.request_run(prod, RunKind::Deploy, "alice").await?;

        let day = 86_400_000i64;
        let now = byoc_stacks::now_ms();
        let long_ago = now - 100 * day;
        for id in [&old, &preview.id] {
            exec(
                t.url(),
                &format!("UPDATE runs SET finished_at = {long_ago} WHERE id = '{id}'"),
            )
            .await?;
        }
        exec(
            t.url(),
            &format!("UPDATE audit_log SET at = {}", now - 800 * day),
        )
        .await?;
        exec(
            t.url(),
            &format!("UPDATE journal SET finished_at = {long_ago}"),
        )
        .await?;

        let pruned = db.prune(Retention::default(), now).await?;
        assert_eq!((pruned.runs, pruned.events), (1, 1), "{pruned:?}");
        assert!(pruned.audit > 0, "{pruned:?}");
        assert!(db.run(&old).await.is_err(), "the old deploy is gone");
        for kept in [&preview.id, &approved.id, &recent, &queued.id] {
            db.run(kept).await?;
        }
        assert_eq!(db.audit_log(None, 100).await?.len(), 0);
        assert_eq!(
            db.prune(Retention::default(), now).await?,
            Pruned::default()
        );
    }
    Ok(())
}
