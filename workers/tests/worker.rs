//! Runs executed by a worker against the store on both engines, with the in-memory cloud.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use byoc_engine::testing::FakeCloud;
use byoc_engine::{CancellationToken, Lifecycle, Providers, Resource, reference};
use byoc_model::{OnboardingStatus, RunKind, RunStatus, TrustProblem, TrustStackReport};
use byoc_stacks::{Database, DbError, JobQueue, NewTenant, QueueConfig, Sealer, TrustLocation};
use byoc_testkit::databases;
use byoc_workers::{Blueprint, RunTarget, Worker, WorkerConfig, run_daemon};
use common::list_worker;
use serde_json::{Value, json};

/// Reads a trust stack the way the test says it is.
struct TrustBlueprint(Result<TrustStackReport, TrustProblem>);

#[async_trait::async_trait]
impl Blueprint for TrustBlueprint {
    fn build(&self, _: &RunTarget, _: &Value) -> Result<(Vec<Resource>, Providers), String> {
        Err("verification only".into())
    }

    async fn read_trust_stack(
        &self,
        target: &RunTarget,
        region: Option<&str>,
        stack_name: &str,
    ) -> Result<TrustStackReport, TrustProblem> {
        // The worker passes the tenant's recorded location and opened external id.
        assert_eq!(
            (region, stack_name, target.account_id.as_str()),
            (Some("eu-west-1"), "byoc-trust", "111111111111")
        );
        assert_eq!(target.external_id.len(), 64);
        self.0.clone()
    }
}

fn config(nat_size: u32) -> Value {
    json!({"resources": [
        Resource::new("vpc", "vpc", json!({"cidr": "10.0.0.0/16"})),
        Resource::new("subnet", "a", json!({"vpc": reference("vpc", "id")})),
        Resource::new("nat", "nat", json!({"subnet": reference("a", "id"), "size": nat_size})),
    ]})
}

async fn setup(db: &Database) -> anyhow::Result<(String, Arc<FakeCloud>, Worker)> {
    let new = NewTenant {
        slug: "acme".into(),
        name: "Acme".into(),
        aws_account_id: "111111111111".into(),
        labels: Default::default(),
    };
    let (tenant, _) = db
        .create_tenant(&Sealer::from_hex(&"ab".repeat(32))?, &new, "test")
        .await?;
    db.save_config(&tenant.id, "acme", "dev", &config(1), "test")
        .await?;
    let cloud = FakeCloud::new();
    let worker = list_worker(db, &cloud, "test-worker", Duration::from_millis(300))?;
    Ok(("acme-dev".into(), cloud, worker))
}

#[tokio::test]
async fn deploy_preview_update_and_destroy() -> anyhow::Result<()> {
    for (_t, db) in databases().await? {
        let (stack, cloud, worker) = setup(&db).await?;
        let (run, _) = db.request_run(&stack, RunKind::Deploy, "alice").await?;
        assert_eq!(worker.execute(&run.id).await?, RunStatus::Succeeded);
        assert_eq!(cloud.objects().len(), 3);
        let state = db
            .snapshot(&stack)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        assert_eq!(state.resources.len(), 3);
        let run = db.run(&run.id).await?;
        assert_eq!(run.summary.as_ref().unwrap()["create"], 3);
        assert_eq!(db.stack_status(&stack.parse()?).await?.status, "deployed");
        assert!(run.finished_at.is_some());

        // An unchanged config previews as empty.
        let (preview, _) = db.request_run(&stack, RunKind::Preview, "alice").await?;
        assert_eq!(worker.execute(&preview.id).await?, RunStatus::Succeeded);
        let summary = db.run(&preview.id).await?.summary.unwrap();
        assert_eq!(
            (
                summary["create"].as_u64(),
                summary["update"].as_u64(),
                summary["unchanged"].as_u64()
            ),
            (Some(0), Some(0), Some(3))
        );

        // A changed size is one in-place update.
        let tenant = db.tenant(&"acme".parse()?).await?;
        db.save_config(&tenant.id, "acme", "dev", &config(2), "test")
            .await?;
        let (update, _) = db.request_run(&stack, RunKind::Deploy, "alice").await?;
        assert_eq!(worker.execute(&update.id).await?, RunStatus::Succeeded);
        assert_eq!(db.run(&update.id).await?.summary.unwrap()["update"], 1);
        assert_eq!(cloud.calls().iter().filter(|c| c.op == "update").count(), 1);

        let (destroy, _) = db.request_run(&stack, RunKind::Destroy, "alice").await?;
        assert_eq!(worker.execute(&destroy.id).await?, RunStatus::Succeeded);
        assert!(cloud.objects().is_empty());
        assert_eq!(db.stack_status(&stack.parse()?).await?.status, "destroyed");
        assert!(
            db.snapshot(&stack)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .resources
                .is_empty()
        );
    }
    Ok(())
}

/// Drift is repaired: a deploy plans against what a refresh sees, so an object deleted
/// outside byoc is created again and a field changed outside byoc is set back, and the
/// preview says so first.
#[tokio::test]
async fn a_deploy_repairs_what_was_changed_outside_byoc() -> anyhow::Result<()> {
    for (_t, db) in databases().await? {
        let (stack, cloud, worker) = setup(&db).await?;
        let (run, _) = db.request_run(&stack, RunKind::Deploy, "alice").await?;
        assert_eq!(worker.execute(&run.id).await?, RunStatus::Succeeded);
        let physical = |name: &str| {
            cloud
                .objects()
                .into_iter()
                .find(|(_, o)| o.resource == name)
                .map(|(id, _)| id)
        };
        let nat = physical("nat").expect("the NAT exists");
        cloud.remove(&nat);
        cloud.tamper(
            &physical("a").expect("the subnet exists"),
            "vpc",
            json!("elsewhere"),
        );

        let (preview, _) = db.request_run(&stack, RunKind::Preview, "alice").await?;
        assert_eq!(worker.execute(&preview.id).await?, RunStatus::Succeeded);
        let plan = db.run_plan(preview.id.as_str()).await?.expect("a plan");
        let reasons: Vec<(String, String)> = plan["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["resource"].as_str().unwrap().to_string(),
                    s["reason"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert!(
            reasons.contains(&("nat".into(), "deleted outside byoc".into())),
            "{reasons:?}"
        );
        assert!(
            reasons
                .iter()
                .any(|(r, why)| r == "a" && why.contains("outside byoc")),
            "{reasons:?}"
        );

        let (repair, _) = db.request_run(&stack, RunKind::Deploy, "alice").await?;
        assert_eq!(worker.execute(&repair.id).await?, RunStatus::Succeeded);
        let objects = cloud.objects();
        assert_eq!(objects.len(), 3, "{objects:?}");
        let nat = physical("nat").expect("the NAT is back");
        let subnet = &objects[&physical("a").unwrap()];
        let vpc = physical("vpc").unwrap();
        assert_eq!(
            subnet.inputs["vpc"],
            json!(vpc),
            "the subnet's field is set back"
        );
        // The state names the new NAT, and a refresh finds nothing more to repair.
        let state = db
            .snapshot(&stack)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        assert_eq!(state.resources["nat"].physical_id, nat);
        let (check, _) = db.request_run(&stack, RunKind::Refresh, "alice").await?;
        assert_eq!(worker.execute(&check.id).await?, RunStatus::Succeeded);
        assert_eq!(
            db.run(&check.id).await?.summary.unwrap()["drift"],
            json!([])
        );
    }
    Ok(())
}

/// A deploy that would replace a guarded resource fails, naming it, and changes nothing;
/// the preview's plan, deployed by its id, applies exactly that plan. A plan made before the
/// config or the state changed is refused.
#[tokio::test]
async fn guarded_replacements_need_an_approved_plan() -> anyhow::Result<()> {
    let guarded = |force: u32| {
        let vpc = Resource::new(
            "vpc",
            "vpc",
            json!({"cidr": "10.0.0.0/16", "force_x": force}),
        )
        .lifecycle(Lifecycle {
            guard: true,
            ..Lifecycle::default()
        });
        json!({"resources": [
            vpc,
            Resource::new("subnet", "a", json!({"vpc": reference("vpc", "id")})),
        ]})
    };
    for (_t, db) in databases().await? {
        let (stack, cloud, worker) = setup(&db).await?;
        let tenant = db.tenant(&"acme".parse()?).await?;
        let save = |config: Value| {
            let (db, id) = (db.clone(), tenant.id.clone());
            async move { db.save_config(&id, "acme", "dev", &config, "test").await }
        };
        save(guarded(1)).await?;
        let (run, _) = db.request_run(&stack, RunKind::Deploy, "alice").await?;
        assert_eq!(worker.execute(&run.id).await?, RunStatus::Succeeded);
        let before = cloud.objects();

        save(guarded(2)).await?;
        let (refused, _) = db.request_run(&stack, RunKind::Deploy, "alice").await?;
        assert_eq!(worker.execute(&refused.id).await?, RunStatus::Failed);
        let error = db.run(&refused.id).await?.error.unwrap();
        assert!(
            error.contains("replaces or deletes vpc") && error.contains("--plan"),
            "{error}"
        );
        assert_eq!(cloud.objects(), before, "nothing changed");

        let (preview, _) = db.request_run(&stack, RunKind::Preview, "alice").await?;
        assert_eq!(worker.execute(&preview.id).await?, RunStatus::Succeeded);
        let (approved, _) = db
            .request_approved_deploy(&stack, preview.id.as_str(), "alice")
            .await?;
        assert_eq!(approved.kind, RunKind::Deploy);
        assert_eq!(worker.execute(&approved.id).await?, RunStatus::Succeeded);
        let vpc: Vec<_> = cloud
            .objects()
            .into_values()
            .filter(|o| o.resource == "vpc")
            .collect();
        assert_eq!(vpc.len(), 1);
        assert_eq!(
            vpc[0].inputs["force_x"], 2,
            "the approved plan replaced the VPC"
        );
        // The same plan cannot be applied twice: the state moved on.
        let again = db
            .request_approved_deploy(&stack, preview.id.as_str(), "alice")
            .await;
        assert!(
            matches!(&again, Err(DbError::Conflict(m)) if m.contains("the state changed")),
            "{again:?}"
        );
        // Nor a plan made before the config changed.
        let (preview, _) = db.request_run(&stack, RunKind::Preview, "alice").await?;
        assert_eq!(worker.execute(&preview.id).await?, RunStatus::Succeeded);
        save(guarded(3)).await?;
        let stale = db
            .request_approved_deploy(&stack, preview.id.as_str(), "alice")
            .await;
        assert!(
            matches!(&stale, Err(DbError::Conflict(m)) if m.contains("the config changed")),
            "{stale:?}"
        );
        // A run that is not a preview is no plan to deploy.
        let not_a_plan = db
            .request_approved_deploy(&stack, run.id.as_str(), "alice")
            .await;
        assert!(
            matches!(not_a_plan, Err(DbError::Conflict(_))),
            "{not_a_plan:?}"
        );
    }
    Ok(())
}

/// A deploy of `stack` executing on `worker`, once its first create is under way (its intent
/// is journaled): the run and its execution.
async fn deploy_under_way(
    db: &Database,
    stack: &str,
    worker: &Worker,
) -> anyhow::Result<(
    byoc_model::Run,
    tokio::task::JoinHandle<Result<RunStatus, byoc_workers::WorkerError>>,
)> {
    let (run, _) = db.request_run(stack, RunKind::Deploy, "alice").await?;
    let started = Instant::now();
    let execution = tokio::spawn({
        let (worker, id) = (worker.clone(), run.id.clone());
        async move { worker.execute(&id).await }
    });
    while db
        .snapshot(stack)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .pending
        .is_empty()
    {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(5),
            "the run never started"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok((run, execution))
}

/// A deploy of `stack` whose worker died (its execution dropped) once its first create was
/// under way.
async fn deploy_whose_worker_died(
    db: &Database,
    stack: &str,
    worker: &Worker,
) -> anyhow::Result<byoc_model::Run> {
    let (run, execution) = deploy_under_way(db, stack, worker).await?;
    execution.abort();
    assert!(execution.await.is_err_and(|e| e.is_cancelled()));
    Ok(run)
}

/// The size of the NAT gateway in `cloud`, if there is one.
fn nat_size(cloud: &FakeCloud) -> Option<Value> {
    cloud
        .objects()
        .into_values()
        .find(|o| o.resource == "nat")
        .map(|o| o.inputs["size"].clone())
}

/// A config saved while a deploy runs does not change what it applies: the run applies the
/// config version it started with, and the next deploy applies the new one.
#[tokio::test]
async fn a_config_saved_mid_run_does_not_change_the_running_deploy() -> anyhow::Result<()> {
    for (_t, db) in databases().await? {
        let (stack, cloud, worker) = setup(&db).await?;
        cloud.set_latency("vpc", Duration::from_millis(300));
        let (run, execution) = deploy_under_way(&db, &stack, &worker).await?;
        // The VPC create is under way: save a new config.
        let tenant = db.tenant(&"acme".parse()?).await?;
        db.save_config(&tenant.id, "acme", "dev", &config(7), "bob")
            .await?;
        assert_eq!(execution.await??, RunStatus::Succeeded);
        assert_eq!(
            nat_size(&cloud),
            Some(json!(1)),
            "the deploy applied what it started with"
        );
        assert_eq!(db.run(&run.id).await?.config_version, Some(1));

        let (next, _) = db.request_run(&stack, RunKind::Deploy, "alice").await?;
        assert_eq!(worker.execute(&next.id).await?, RunStatus::Succeeded);
        assert_eq!(nat_size(&cloud), Some(json!(7)));
        assert_eq!(db.run(&next.id).await?.config_version, Some(2));
    }
    Ok(())
}

/// A later byoc version's blueprint: the NAT gateway it builds is larger.
struct Newer(Arc<FakeCloud>);

impl Blueprint for Newer {
    fn build(&self, t: &RunTarget, config: &Value) -> Result<(Vec<Resource>, Providers), String> {
        let (mut resources, providers) = common::ListBlueprint(self.0.clone()).build(t, config)?;
        for r in resources.iter_mut().filter(|r| r.name == "nat") {
            r.inputs["size"] = json!(9);
        }
        Ok((resources, providers))
    }
}

/// A run resumed by a worker of another byoc version (another blueprint) applies the
/// resources its first plan was made from; the next run applies what the new version builds.
#[tokio::test]
async fn a_resumed_run_applies_the_resources_it_first_planned() -> anyhow::Result<()> {
    for (_t, db) in databases().await? {
        let (stack, cloud, worker) = setup(&db).await?;
        cloud.set_latency("vpc", Duration::from_millis(300));
        // The first worker dies mid-create; the upgraded one takes the run over once its
        // lease has expired.
        let run = deploy_whose_worker_died(&db, &stack, &worker).await?;
        tokio::time::sleep(Duration::from_millis(400)).await;
        let newer = common::worker_of(
            &db,
            Arc::new(Newer(cloud.clone())),
            "newer",
            Duration::from_millis(300),
        )?;
        assert_eq!(newer.execute(&run.id).await?, RunStatus::Succeeded);
        assert_eq!(
            nat_size(&cloud),
            Some(json!(1)),
            "what the run first planned"
        );

        let (next, _) = db.request_run(&stack, RunKind::Deploy, "alice").await?;
        assert_eq!(newer.execute(&next.id).await?, RunStatus::Succeeded);
        assert_eq!(nat_size(&cloud), Some(json!(9)));
    }
    Ok(())
}

#[tokio::test]
async fn a_running_run_is_cancelled_within_a_lease_renewal() -> anyhow::Result<()> {
    for (_t, db) in databases().await? {
        let (stack, cloud, worker) = setup(&db).await?;
        cloud.set_latency("vpc", Duration::from_millis(400));
        let started = Instant::now();
        let (run, execution) = deploy_under_way(&db, &stack, &worker).await?;
        // Cancel now that the VPC create is under way.
        db.request_cancel(&run.id, "alice").await?;
        let status = execution.await??;
        assert_eq!(status, RunStatus::Cancelled);
        assert!(started.elapsed() < Duration::from_secs(2));
        // The in-flight VPC create finished and was recorded; nothing after it started.
        assert_eq!(cloud.objects().len(), 1);
        assert_eq!(
            db.snapshot(&stack)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .resources
                .len(),
            1
        );
        assert_eq!(db.run(&run.id).await?.status, RunStatus::Cancelled);
    }
    Ok(())
}

/// A cancel requested while a run's worker is dead is seen when another worker resumes the
/// run: it ends cancelled without another provider call.
#[tokio::test]
async fn a_run_cancelled_while_its_worker_was_dead_is_not_resumed() -> anyhow::Result<()> {
    for (_t, db) in databases().await? {
        let (stack, cloud, worker) = setup(&db).await?;
        cloud.set_latency("vpc", Duration::from_millis(300));
        let run = deploy_whose_worker_died(&db, &stack, &worker).await?;
        let flagged = db.request_cancel(&run.id, "alice").await?;
        assert_eq!(
            (flagged.status, flagged.cancel_requested),
            (RunStatus::Running, true)
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
        let calls = cloud.calls().len();
        let other = list_worker(&db, &cloud, "other-worker", Duration::from_millis(300))?;
        assert_eq!(other.execute(&run.id).await?, RunStatus::Cancelled);
        assert_eq!(
            cloud.calls().len(),
            calls,
            "nothing applied after the cancel"
        );
        assert_eq!(db.run(&run.id).await?.status, RunStatus::Cancelled);
        let events = db.run_events(&run.id, 0, 100).await?;
        assert!(
            events.iter().any(|e| e
                .message
                .starts_with("cancel requested before the run resumed")),
            "{events:?}"
        );
    }
    Ok(())
}

async fn until_finished(db: &Database, run_id: &str) -> anyhow::Result<RunStatus> {
    let started = Instant::now();
    loop {
        let run = db.run(run_id).await?;
        if run.status.is_finished() {
            return Ok(run.status);
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(20),
            "run {run_id} still {}",
            run.status
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A daemon of `worker` with `slots` runs at a time on `db`'s queue: the queue, the token
/// that shuts it down and its task.
async fn start_daemon(
    db: &Database,
    worker: Worker,
    slots: usize,
) -> anyhow::Result<(
    JobQueue,
    CancellationToken,
    tokio::task::JoinHandle<Result<(), byoc_workers::WorkerError>>,
)> {
    let config = QueueConfig {
        batch: slots,
        heartbeat: Duration::from_secs(5),
        ..QueueConfig::default()
    };
    let queue = JobQueue::setup(db, config).await?;
    let shutdown = CancellationToken::new();
    let daemon = tokio::spawn(run_daemon(
        db.clone(),
        queue.clone(),
        worker,
        slots,
        shutdown.clone(),
    ));
    Ok((queue, shutdown, daemon))
}

/// Runs waiting for their stack's turn hold no worker slot: with two slots, one tenant's
/// long deploy and three more runs queued on its stack, another tenant's deploy starts at
/// once.
#[tokio::test]
async fn runs_waiting_for_their_stack_hold_no_worker_slot() -> anyhow::Result<()> {
    for (_t, db) in databases().await? {
        let (stack, cloud, worker) = setup(&db).await?;
        let new = NewTenant {
            slug: "globex".into(),
            name: "Globex".into(),
            aws_account_id: "222222222222".into(),
            labels: Default::default(),
        };
        let (globex, _) = db
            .create_tenant(&Sealer::from_hex(&"ab".repeat(32))?, &new, "test")
            .await?;
        db.save_config(&globex.id, "globex", "dev", &config(1), "test")
            .await?;
        cloud.set_latency("vpc", Duration::from_secs(3));
        let (queue, shutdown, daemon) = start_daemon(&db, worker, 2).await?;
        let (first, _) = queue.request(&db, &stack, RunKind::Deploy, "alice").await?;
        for kind in [RunKind::Preview, RunKind::Refresh, RunKind::Destroy] {
            queue.request(&db, &stack, kind, "alice").await?;
        }
        let started = Instant::now();
        while db.run(&first.id).await?.status == RunStatus::Queued {
            anyhow::ensure!(started.elapsed() < Duration::from_secs(5), "never started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Everything acme queued has had time to reach a worker.
        tokio::time::sleep(Duration::from_millis(500)).await;

        let started = Instant::now();
        let (other, _) = queue
            .request(&db, "globex-dev", RunKind::Deploy, "bob")
            .await?;
        while db.run(&other.id).await?.status == RunStatus::Queued {
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(2),
                "globex's deploy waited behind acme's runs"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        shutdown.cancel();
        daemon.await??;
    }
    Ok(())
}

/// A job pushed by this process wakes its workers at once, not at their next poll: with
/// the polling tick an hour long (and the heartbeat, which fetches too, 30 s), runs
/// requested through this process's queue start within seconds. On SQLite nothing else
/// would wake the worker; on Postgres LISTEN would too.
#[tokio::test]
async fn a_run_pushed_in_process_wakes_the_worker_without_waiting_for_the_tick()
-> anyhow::Result<()> {
    for (_t, db) in databases().await? {
        let (stack, _cloud, worker) = setup(&db).await?;
        let config = QueueConfig {
            batch: 2,
            tick: Duration::from_secs(3600),
            ..QueueConfig::default()
        };
        let queue = JobQueue::setup(&db, config).await?;
        let shutdown = CancellationToken::new();
        let daemon = tokio::spawn(run_daemon(
            db.clone(),
            queue.clone(),
            worker,
            2,
            shutdown.clone(),
        ));
        // The first fetch (at start-up, possibly before the request) is not the point:
        // each later request finds the worker idle, parked until something wakes it.
        for round in 0..3 {
            let (run, _) = queue.request(&db, &stack, RunKind::Deploy, "alice").await?;
            let asked = Instant::now();
            while db.run(&run.id).await?.status == RunStatus::Queued {
                anyhow::ensure!(
                    asked.elapsed() < Duration::from_secs(3),
                    "run {round} waited for the tick: nothing woke the worker"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert_eq!(until_finished(&db, &run.id).await?, RunStatus::Succeeded);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), daemon).await???;
    }
    Ok(())
}

#[tokio::test]
async fn the_daemon_runs_queued_jobs_in_order_and_stops_on_shutdown() -> anyhow::Result<()> {
    for (_t, db) in databases().await? {
        let (stack, cloud, worker) = setup(&db).await?;
        let (queue, shutdown, daemon) = start_daemon(&db, worker, 4).await?;

        // Concurrent deploy requests, then a destroy that must run after them.
        let mut requests = Vec::new();
        for _ in 0..10 {
            let (db, queue, stack) = (db.clone(), queue.clone(), stack.clone());
            requests.push(tokio::spawn(async move {
                queue.request(&db, &stack, RunKind::Deploy, "alice").await
            }));
        }
        let mut ids = std::collections::BTreeSet::new();
        for r in requests {
            ids.insert(r.await??.0.id);
        }
        let (destroy, _) = queue
            .request(&db, &stack, RunKind::Destroy, "alice")
            .await?;
        for id in &ids {
            assert_eq!(until_finished(&db, id).await?, RunStatus::Succeeded);
        }
        assert_eq!(
            until_finished(&db, &destroy.id).await?,
            RunStatus::Succeeded
        );
        assert!(cloud.objects().is_empty());
        let runs = db.runs_of(&stack).await?;
        // A request coalesces only into a deploy still queued, so how many runs the 10
        // requests made depends on timing; what may not vary: one run at a time, in order.
        assert_eq!(runs.len(), ids.len() + 1);
        for pair in runs.windows(2) {
            assert!(
                pair[0].finished_at <= pair[1].started_at,
                "runs of a stack overlapped"
            );
        }
        // A second deploy (requested after the first started) found nothing to do.
        assert_eq!(cloud.calls().iter().filter(|c| c.op == "create").count(), 3);
        let deploy_end = runs
            .iter()
            .filter(|r| r.kind == RunKind::Deploy)
            .filter_map(|r| r.finished_at)
            .max();
        assert!(
            deploy_end <= db.run(&destroy.id).await?.started_at,
            "the destroy waited for the deploys"
        );

        // A sweep re-pushes nothing harmful: every run is finished.
        assert_eq!(queue.sweep(&db).await?, 0);
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), daemon).await???;
    }
    Ok(())
}

#[tokio::test]
async fn a_verify_run_records_the_verdict_unless_nothing_was_learnt() -> anyhow::Result<()> {
    let role = "arn:aws:iam::111111111111:role/byoc-deployer".to_string();
    let current = TrustStackReport {
        region: "eu-west-1".into(),
        stack_name: "byoc-trust".into(),
        assumed_role_arn: role.clone(),
        status: "CREATE_COMPLETE".into(),
        role_arn: Some(role),
        template_version: Some(byoc_model::TRUST_TEMPLATE_VERSION.into()),
    };
    let cases = [
        (Ok(current), RunStatus::Succeeded, OnboardingStatus::Trusted),
        // Nothing learnt about the trust: the status stays as the last verdict left it.
        (
            Err(TrustProblem::Unreachable("DescribeStacks timed out".into())),
            RunStatus::Failed,
            OnboardingStatus::Trusted,
        ),
        (
            Err(TrustProblem::NoStack(
                "there is no trust stack byoc-trust".into(),
            )),
            RunStatus::Failed,
            OnboardingStatus::TrustFailed,
        ),
    ];
    for (_t, db) in databases().await? {
        let (_, _, _) = setup(&db).await?;
        let location = TrustLocation {
            region: Some("eu-west-1".parse()?),
            stack_name: None,
        };
        for (read, run_status, onboarding) in cases.clone() {
            let worker = Worker::new(
                db.clone(),
                Sealer::from_hex(&"ab".repeat(32))?,
                Arc::new(TrustBlueprint(read.clone())),
                WorkerConfig::new("test-worker"),
                CancellationToken::new(),
            );
            let stack = db.prepare_verification(&"acme".parse()?, &location).await?;
            let (run, _) = db.request_run(&stack, RunKind::Verify, "alice").await?;
            assert_eq!(worker.execute(&run.id).await?, run_status, "{read:?}");
            let tenant = db.tenant(&"acme".parse()?).await?;
            assert_eq!(tenant.onboarding_status, onboarding, "{read:?}");
            let run = db.run(&run.id).await?;
            let events = db.run_events(&run.id, 0, 100).await?;
            assert!(
                events[0]
                    .message
                    .starts_with("taken by worker test-worker (lease generation ")
                    && events[1]
                        .message
                        .contains("reading the trust stack byoc-trust"),
                "{events:?}"
            );
            match read {
                Ok(_) => assert!(run.error.is_none()),
                Err(problem) => {
                    assert_eq!(run.error.as_deref(), Some(problem.to_string().as_str()));
                }
            }
        }
    }
    Ok(())
}
