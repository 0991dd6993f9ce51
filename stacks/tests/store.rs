//! The store on both engines: migrations, sealed secrets, run queue order, leases, fencing,
//! and the engine's StateStore on SQL through a crash.

use std::sync::Arc;
use std::time::Duration;

use byoc_engine::testing::{FakeCloud, Fault, providers};
use byoc_engine::{
    ExecOptions, Executor, Graph, NoEvents, Resource, RunStatus as EngineStatus, StateStore,
    StoreError, plan, reference,
};
use byoc_model::{RunKind, RunStatus};
use byoc_stacks::{Begin, Database, DbError, NewTenant, RunStore, Sealer};
use byoc_testkit::{TestDb, databases, tenant_with_stacks};
use serde_json::json;

fn sealer() -> Sealer {
    Sealer::from_hex(&"ab".repeat(32)).unwrap()
}

async fn tenant_stack(db: &Database, slug: &str) -> anyhow::Result<String> {
    Ok(tenant_with_stacks(db, &sealer(), slug, &["dev"])
        .await?
        .remove(0))
}

#[tokio::test]
async fn migrations_go_up_down_and_up_again() -> anyhow::Result<()> {
    for t in [
        TestDb::sqlite().await?,
        TestDb::postgres("empty", |_| async { Ok(()) }).await?,
    ] {
        let db = Database::connect(t.url()).await?;
        db.migrate().await?;
        let status = db.migration_status().await?;
        assert!(
            status.len() >= 2 && status.iter().all(|m| m.applied),
            "{status:?}"
        );
        while db.migrate_down().await?.is_some() {}
        assert!(db.migration_status().await?.iter().all(|m| !m.applied));
        let err = db.tenant(&"acme".parse()?).await.unwrap_err();
        assert!(
            matches!(err, DbError::Query { .. }),
            "tables are gone: {err}"
        );
        db.migrate().await?;
        assert!(db.migration_status().await?.iter().all(|m| m.applied));
        tenant_stack(&db, "acme").await?;
    }
    Ok(())
}

#[tokio::test]
async fn external_ids_are_stored_sealed() -> anyhow::Result<()> {
    for (t, db) in databases().await? {
        let new = NewTenant {
            slug: "acme".into(),
            name: "Acme Corp".into(),
            aws_account_id: "111111111111".into(),
            labels: [("tier".to_string(), "gold".to_string())].into(),
        };
        let (tenant, external_id) = db.create_tenant(&sealer(), &new, "alice").await?;
        assert_eq!(tenant.labels["tier"], "gold");
        assert_eq!(external_id.len(), 64);
        let raw = sqlx_raw_external_id(t.url()).await?;
        assert!(
            !raw.windows(16)
                .any(|w| external_id.as_bytes().windows(16).any(|e| e == w)),
            "plaintext stored"
        );
        assert_eq!(
            db.tenant_external_id(&sealer(), &tenant.slug).await?,
            external_id
        );
        assert!(
            db.tenant_external_id(&Sealer::from_hex(&"cd".repeat(32))?, &tenant.slug)
                .await
                .is_err()
        );

        let again = db
            .create_tenant(&sealer(), &new, "alice")
            .await
            .unwrap_err();
        assert_eq!(
            again.to_string(),
            "conflict: a tenant with slug \"acme\" exists"
        );
        let bad = NewTenant {
            aws_account_id: "12".into(),
            ..new
        };
        assert!(
            db.create_tenant(&sealer(), &bad, "alice")
                .await
                .unwrap_err()
                .to_string()
                .contains("12 digits")
        );
    }
    Ok(())
}

/// Overwrites tenant `slug`'s sealed external id, as someone with write access to the
/// database could.
async fn set_raw_external_id(url: &str, slug: &str, sealed: &[u8]) -> anyhow::Result<()> {
    let sql = "UPDATE tenants SET external_id_sealed = $1 WHERE slug = $2";
    if url.starts_with("sqlite") {
        let pool = sqlx::SqlitePool::connect(url).await?;
        sqlx::query(sql)
            .bind(sealed)
            .bind(slug)
            .execute(&pool)
            .await?;
    } else {
        let pool = sqlx::PgPool::connect(url).await?;
        sqlx::query(sql)
            .bind(sealed)
            .bind(slug)
            .execute(&pool)
            .await?;
    }
    Ok(())
}

/// A sealed external id opens only for its own tenant: copied into another tenant's row it
/// does not. One sealed before ids were bound is sealed again, bound, at start-up.
#[tokio::test]
async fn sealed_external_ids_are_bound_to_their_tenant() -> anyhow::Result<()> {
    use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
    for (t, db) in databases().await? {
        let new = |slug: &str| NewTenant {
            slug: slug.into(),
            name: slug.into(),
            aws_account_id: "111111111111".into(),
            labels: Default::default(),
        };
        let (_, acme_id) = db.create_tenant(&sealer(), &new("acme"), "alice").await?;
        db.create_tenant(&sealer(), &new("globex"), "alice").await?;
        let acme = "acme".parse()?;
        let globex = "globex".parse()?;
        assert_eq!(db.tenant_external_id(&sealer(), &acme).await?, acme_id);
        let stolen = db.sealed_external_id(&acme).await?;
        set_raw_external_id(t.url(), "globex", &stolen).await?;
        let err = db.tenant_external_id(&sealer(), &globex).await.unwrap_err();
        assert!(err.to_string().contains("wrong tenant"), "{err}");

        // Sealed the old way (no owner): it still opens, and is bound at start-up.
        let cipher = aes_gcm::Aes256Gcm::new_from_slice(&[0xab; 32])?;
        let nonce = aes_gcm::Aes256Gcm::generate_nonce(&mut OsRng);
        let mut legacy = nonce.to_vec();
        legacy.extend(cipher.encrypt(&nonce, b"legacy-id".as_slice()).unwrap());
        set_raw_external_id(t.url(), "acme", &legacy).await?;
        assert_eq!(db.tenant_external_id(&sealer(), &acme).await?, "legacy-id");
        assert_eq!(db.bind_sealed_secrets(&sealer()).await?, 1);
        assert_eq!(db.bind_sealed_secrets(&sealer()).await?, 0, "once");
        assert_eq!(db.tenant_external_id(&sealer(), &acme).await?, "legacy-id");
        let bound = db.sealed_external_id(&acme).await?;
        set_raw_external_id(t.url(), "globex", &bound).await?;
        assert!(db.tenant_external_id(&sealer(), &globex).await.is_err());
    }
    Ok(())
}

async fn sqlx_raw_external_id(url: &str) -> anyhow::Result<Vec<u8>> {
    let sql = "SELECT external_id_sealed FROM tenants WHERE slug = 'acme'";
    Ok(if url.starts_with("sqlite") {
        let pool = sqlx::SqlitePool::connect(url).await?;
        sqlx::query_scalar(sql).fetch_one(&pool).await?
    } else {
        let pool = sqlx::PgPool::connect(url).await?;
        sqlx::query_scalar(sql).fetch_one(&pool).await?
    })
}

#[tokio::test]
async fn deploys_coalesce_and_runs_start_in_request_order() -> anyhow::Result<()> {
    let ttl = Duration::from_secs(60);
    for (_t, db) in databases().await? {
        let stack = tenant_stack(&db, "acme").await?;
        let (first, coalesced) = db.request_run(&stack, RunKind::Deploy, "alice").await?;
        assert!(!coalesced);
        for _ in 0..3 {
            let (again, coalesced) = db.request_run(&stack, RunKind::Deploy, "bob").await?;
            assert!(coalesced);
            assert_eq!(again.id, first.id);
        }
        let (destroy, coalesced) = db.request_run(&stack, RunKind::Destroy, "alice").await?;
        assert!(!coalesced);

        // The destroy waits for the deploy requested before it.
        assert_eq!(db.begin_run(&destroy.id, "w1", ttl).await?, Begin::Wait);
        let Begin::Started(lease) = db.begin_run(&first.id, "w1", ttl).await? else {
            panic!("the first deploy starts");
        };
        assert_eq!(db.run(&first.id).await?.status, RunStatus::Running);
        // A deploy requested now queues behind the destroy, not into the running deploy.
        let (later, coalesced) = db.request_run(&stack, RunKind::Deploy, "carol").await?;
        assert!(!coalesced && later.id != first.id);
        assert_eq!(
            db.begin_run(&destroy.id, "w2", ttl).await?,
            Begin::Wait,
            "one run per stack"
        );

        db.finish_run(
            &first.id,
            &lease,
            RunStatus::Succeeded,
            None,
            Some(&json!({"create": 3})),
        )
        .await?;
        assert_eq!(
            db.begin_run(&later.id, "w2", ttl).await?,
            Begin::Wait,
            "FIFO: the destroy is first"
        );
        let Begin::Started(lease) = db.begin_run(&destroy.id, "w2", ttl).await? else {
            panic!("the destroy starts after the deploy");
        };
        db.finish_run(&destroy.id, &lease, RunStatus::Succeeded, None, None)
            .await?;
        assert!(matches!(
            db.begin_run(&later.id, "w2", ttl).await?,
            Begin::Started(_)
        ));
        assert_eq!(
            db.begin_run(&first.id, "w3", ttl).await?,
            Begin::Finished,
            "duplicate delivery"
        );
        let order: Vec<_> = db
            .runs_of(&stack)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(
            order,
            [first.id.clone(), destroy.id.clone(), later.id.clone()]
        );
        assert_eq!(db.run(&first.id).await?.summary, Some(json!({"create": 3})));
    }
    Ok(())
}

/// A worker reads what a run acts on in one call: the run's kind, its stack, the tenant's
/// account and sealed external id, and the config pinned when the run first started. A
/// config saved while the run runs, or before it resumes, does not change what it applies.
#[tokio::test]
async fn a_run_reads_its_context_in_one_call_with_its_config_pinned() -> anyhow::Result<()> {
    let ttl = Duration::from_millis(200);
    for (_t, db) in databases().await? {
        let stack = tenant_stack(&db, "acme").await?;
        let tenant = db.tenant(&"acme".parse()?).await?;
        let first = json!({"resources": [], "n": 1});
        db.save_config(&tenant.id, "acme", "dev", &first, "alice")
            .await?;
        let (run, _) = db.request_run(&stack, RunKind::Deploy, "alice").await?;
        let context = db.run_context(run.id.as_str()).await?;
        assert_eq!(context.kind, RunKind::Deploy);
        assert_eq!(context.stack, stack.as_str());
        assert_eq!(context.tenant_slug, "acme");
        assert_eq!(context.account_id, "111111111111");
        assert_eq!(
            sealer().open("acme", &context.sealed_external_id)?.len(),
            64
        );
        assert_eq!((context.config, context.config_version), (None, None));

        let Begin::Started(_) = db.begin_run(&run.id, "w1", ttl).await? else {
            panic!("the deploy starts");
        };
        let second = json!({"resources": [], "n": 2});
        db.save_config(&tenant.id, "acme", "dev", &second, "bob")
            .await?;
        let pinned = db.run_context(run.id.as_str()).await?;
        assert_eq!(
            (pinned.config, pinned.config_version),
            (Some(first.clone()), Some(1))
        );
        assert_eq!(db.run(&run.id).await?.config_version, Some(1));

        // Resumed by another worker once the lease expired: still the first config.
        tokio::time::sleep(ttl * 2).await;
        let Begin::Started(lease) = db.begin_run(&run.id, "w2", ttl).await? else {
            panic!("the deploy resumes");
        };
        assert_eq!(db.run_context(run.id.as_str()).await?.config, Some(first));
        db.finish_run(&run.id, &lease, RunStatus::Succeeded, None, None)
            .await?;
        // The next deploy applies the config saved meanwhile.
        let (next, _) = db.request_run(&stack, RunKind::Deploy, "alice").await?;
        db.begin_run(&next.id, "w1", ttl).await?;
        let context = db.run_context(next.id.as_str()).await?;
        assert_eq!(
            (context.config, context.config_version),
            (Some(second), Some(2))
        );

        assert!(matches!(
            db.run_context("00000000-0000-4000-8000-000000000000").await,
            Err(DbError::NotFound(_))
        ));
    }
    Ok(())
}

/// Location is identity: the first deploy records where the stack lives; moving it is refused
/// (naming the field) until a destroy has emptied it.
#[tokio::test]
async fn a_deployed_environment_cannot_change_region() -> anyhow::Result<()> {
    let ttl = Duration::from_secs(60);
    for (_t, db) in databases().await? {
        let stack = tenant_stack(&db, "acme").await?;
        let tenant = db.tenant(&"acme".parse()?).await?;
        let config = |region: &str| json!({"region": region});
        // Before any deploy the region may change freely.
        db.save_config(&tenant.id, "acme", "dev", &config("us-east-1"), "alice")
            .await?;
        db.save_config(&tenant.id, "acme", "dev", &config("eu-west-1"), "alice")
            .await?;
        let (deploy, _) = db.request_run(&stack, RunKind::Deploy, "alice").await?;
        let Begin::Started(lease) = db.begin_run(&deploy.id, "w1", ttl).await? else {
            panic!("the deploy starts");
        };
        assert_eq!(
            db.run_context(deploy.id.as_str()).await?.region.as_deref(),
            Some("eu-west-1")
        );
        db.finish_run(&deploy.id, &lease, RunStatus::Failed, Some("boom"), None)
            .await?;
        // Even a failed deploy may have made resources there.
        let refused = db
            .save_config(&tenant.id, "acme", "dev", &config("us-east-1"), "alice")
            .await;
        let Err(DbError::Refused { field, message }) = refused else {
            panic!("a region change is refused: {refused:?}");
        };
        assert_eq!(field, "region");
        assert!(message.contains("deployed in eu-west-1"), "{message}");
        assert_eq!(
            db.config(&tenant, &"dev".parse()?).await?.version,
            2,
            "nothing written"
        );
        // The same region, other fields changed: fine.
        db.save_config(
            &tenant.id,
            "acme",
            "dev",
            &json!({"region": "eu-west-1", "x": 1}),
            "alice",
        )
        .await?;

        let (destroy, _) = db.request_run(&stack, RunKind::Destroy, "alice").await?;
        let Begin::Started(lease) = db.begin_run(&destroy.id, "w1", ttl).await? else {
            panic!("the destroy starts");
        };
        db.finish_run(&destroy.id, &lease, RunStatus::Succeeded, None, None)
            .await?;
        db.save_config(&tenant.id, "acme", "dev", &config("us-east-1"), "alice")
            .await?;
    }
    Ok(())
}

#[tokio::test]
async fn cancelling_queued_and_running_runs() -> anyhow::Result<()> {
    let ttl = Duration::from_secs(60);
    for (_t, db) in databases().await? {
        let stack = tenant_stack(&db, "acme").await?;
        let (queued, _) = db.request_run(&stack, RunKind::Deploy, "alice").await?;
        let cancelled = db.request_cancel(&queued.id, "alice").await?;
        assert_eq!(cancelled.status, RunStatus::Cancelled);
        assert_eq!(db.begin_run(&queued.id, "w1", ttl).await?, Begin::Cancelled);

        let (running, coalesced) = db.request_run(&stack, RunKind::Deploy, "alice").await?;
        assert!(!coalesced, "a cancelled run takes no more requests");
        assert!(matches!(
            db.begin_run(&running.id, "w1", ttl).await?,
            Begin::Started(_)
        ));
        let flagged = db.request_cancel(&running.id, "alice").await?;
        assert_eq!(
            (flagged.status, flagged.cancel_requested),
            (RunStatus::Running, true)
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_worker_whose_lease_was_taken_over_cannot_write() -> anyhow::Result<()> {
    let short = Duration::from_millis(1);
    for (_t, db) in databases().await? {
        let stack = tenant_stack(&db, "acme").await?;
        let (run, _) = db.request_run(&stack, RunKind::Deploy, "alice").await?;
        let Begin::Started(old) = db.begin_run(&run.id, "w1", short).await? else {
            panic!()
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        // w1 looks dead (lease expired): w2 resumes the same run.
        let Begin::Started(new) = db.begin_run(&run.id, "w2", Duration::from_secs(60)).await?
        else {
            panic!("an expired lease is taken over");
        };
        assert_eq!(new.generation, old.generation + 1);

        let stale = RunStore::new(db.clone(), &run.id, old.clone());
        let intent = byoc_engine::Intent {
            run_id: run.id.to_string(),
            resource: "vpc".into(),
            kind: "vpc".into(),
            operation: byoc_engine::Operation::Create,
            attempt: 1,
            token: "t".into(),
            inputs: json!({}),
        };
        assert!(matches!(
            stale.record_intent(&intent).await,
            Err(StoreError::Fenced(_))
        ));
        let current = RunStore::new(db.clone(), &run.id, new.clone());
        current.record_intent(&intent).await?;
        let outcome = byoc_engine::Outcome::Failed { error: "x".into() };
        assert!(matches!(
            stale.record_outcome(&intent, &outcome).await,
            Err(StoreError::Fenced(_))
        ));
        assert!(matches!(
            db.renew_lease(&old, short).await,
            Err(DbError::Fenced(_))
        ));
        assert!(matches!(
            db.finish_run(&run.id, &old, RunStatus::Failed, None, None)
                .await,
            Err(DbError::Fenced(_))
        ));
        assert_eq!(
            db.snapshot(&stack).await.unwrap().pending.len(),
            1,
            "only the current holder wrote"
        );

        // An operator's force-unlock fences the current holder too.
        db.force_unlock(&stack, "admin", true).await?;
        assert!(matches!(
            current.record_outcome(&intent, &outcome).await,
            Err(StoreError::Fenced(_))
        ));
    }
    Ok(())
}

fn environment() -> Vec<Resource> {
    vec![
        Resource::new("vpc", "vpc", json!({"cidr": "10.0.0.0/16"})),
        Resource::new("subnet", "a", json!({"vpc": reference("vpc", "id")})),
        Resource::new("subnet", "b", json!({"vpc": reference("vpc", "id")})),
        Resource::new("nat", "nat", json!({"subnet": reference("a", "id")})),
    ]
}

#[tokio::test]
async fn the_engine_resumes_from_the_sql_journal_after_a_crash() -> anyhow::Result<()> {
    let ttl = Duration::from_secs(60);
    for (_t, db) in databases().await? {
        let stack = tenant_stack(&db, "acme").await?;
        let cloud = FakeCloud::new();
        let providers = providers(&cloud, &["vpc", "subnet", "nat"]);
        let graph = Graph::new(environment())?;
        let (run, _) = db.request_run(&stack, RunKind::Deploy, "alice").await?;

        // Worker 1 dies right after the NAT gateway's create call.
        let Begin::Started(lease) = db
            .begin_run(&run.id, "w1", Duration::from_millis(1))
            .await?
        else {
            panic!()
        };
        let store = Arc::new(RunStore::new(db.clone(), &run.id, lease));
        let snapshot = store.load().await?;
        let p = plan(&stack, &run.id, &graph, &snapshot, &providers, None)?;
        cloud.inject(Fault::Crash {
            op: "create",
            resource: "nat".into(),
        });
        let executor = Executor::new(
            providers.clone(),
            store,
            Arc::new(NoEvents),
            ExecOptions::default(),
        );
        tokio::select! {
            r = executor.apply(&p, &snapshot) => panic!("did not crash: {r:?}"),
            () = cloud.crashed.notified() => {}
        }
        tokio::time::sleep(Duration::from_millis(20)).await;

        // Worker 2 takes the expired lease over and resumes the run.
        let Begin::Started(lease) = db.begin_run(&run.id, "w2", ttl).await? else {
            panic!()
        };
        let store = Arc::new(RunStore::new(db.clone(), &run.id, lease.clone()));
        let snapshot = store.load().await?;
        // The NAT create is pending (and maybe a subnet's, in flight when the worker died).
        assert!(
            snapshot.pending.iter().any(|i| i.resource == "nat"),
            "{:?}",
            snapshot.pending
        );
        let p = plan(&stack, &run.id, &graph, &snapshot, &providers, None)?;
        let executor = Executor::new(
            providers.clone(),
            store.clone(),
            Arc::new(NoEvents),
            ExecOptions::default(),
        );
        let report = executor.apply(&p, &snapshot).await?;
        assert_eq!(report.status, EngineStatus::Succeeded);
        db.finish_run(&run.id, &lease, RunStatus::Succeeded, None, None)
            .await?;

        let objects = cloud.objects();
        assert_eq!(objects.len(), 4, "no duplicate: {objects:?}");
        let state = db.snapshot(&stack).await?;
        assert!(state.pending.is_empty());
        let mut recorded: Vec<_> = state
            .resources
            .values()
            .map(|r| r.physical_id.clone())
            .collect();
        recorded.sort();
        assert_eq!(recorded, objects.keys().cloned().collect::<Vec<_>>());
        assert_eq!(
            state.resources["nat"].inputs["subnet"],
            json!(state.resources["a"].physical_id)
        );
    }
    Ok(())
}
