//! What the API reads and changes in the store, on both engines: tokens, tenant listing and
//! deletion, external id rotation, configs, stack status, resources and run events.

use std::time::Duration;

use byoc_model::{EnvName, StackName, Tenant, TenantSlug};
use byoc_model::{
    OnboardingStatus, RunKind, RunStatus, TRUST_TEMPLATE_VERSION, TrustStackReport, Verdict,
};
use byoc_stacks::{Begin, Database, DbError, NewTenant, Sealer, TrustLocation};
use byoc_testkit::{databases, exec};
use serde_json::json;
use sha2::{Digest, Sha256};

fn sealer() -> Sealer {
    Sealer::from_hex(&"ab".repeat(32)).unwrap()
}

fn slug(text: &str) -> TenantSlug {
    text.parse().unwrap()
}

fn env(text: &str) -> EnvName {
    text.parse().unwrap()
}

fn stack(text: &str) -> StackName {
    text.parse().unwrap()
}

async fn tenant(db: &Database, slug: &str) -> anyhow::Result<Tenant> {
    let new = NewTenant {
        slug: slug.into(),
        name: "Acme".into(),
        aws_account_id: "111111111111".into(),
        labels: Default::default(),
    };
    Ok(db.create_tenant(&sealer(), &new, "test").await?.0)
}

/// Rows of text columns, read behind the store's back.
async fn texts(url: &str, sql: &str) -> anyhow::Result<Vec<Vec<Option<String>>>> {
    use sqlx::Row;
    let sql = sqlx::AssertSqlSafe(sql.to_string());
    Ok(if url.starts_with("sqlite") {
        let pool = sqlx::SqlitePool::connect(url).await?;
        let rows = sqlx::query(sql).fetch_all(&pool).await?;
        rows.iter()
            .map(|r| (0..r.len()).map(|i| r.get(i)).collect())
            .collect()
    } else {
        let pool = sqlx::PgPool::connect(url).await?;
        let rows = sqlx::query(sql).fetch_all(&pool).await?;
        rows.iter()
            .map(|r| (0..r.len()).map(|i| r.get(i)).collect())
            .collect()
    })
}

async fn audited(url: &str, action: &str, target: &str) -> anyhow::Result<usize> {
    Ok(texts(
        url,
        &format!("SELECT actor FROM audit_log WHERE action = '{action}' AND target = '{target}'"),
    )
    .await?
    .len())
}

fn resource_row(stack: &str, key: &str, status: &str) -> String {
    format!(
        "INSERT INTO resources (stack, key, kind, physical_id, inputs, outputs, depends_on, lifecycle, status, updated_at)
         VALUES ('{stack}', '{key}', 'vpc', 'id-{key}', '{{\"cidr\": \"10.0.0.0/16\"}}', '{{}}', '[]', '{{}}', '{status}', 1)"
    )
}

/// A run of `stack` that ran and succeeded, with `events` events.
async fn finished_run(db: &Database, stack: &str, events: usize) -> anyhow::Result<String> {
    let (run, _) = db.request_run(stack, RunKind::Deploy, "alice").await?;
    let Begin::Started(lease) = db.begin_run(&run.id, "w1", Duration::from_secs(60)).await? else {
        panic!("the run starts");
    };
    for i in 0..events {
        db.record_event(&lease, &run.id, "info", None, &format!("event {i}"), None)
            .await?;
    }
    db.finish_run(&run.id, &lease, RunStatus::Succeeded, None, None)
        .await?;
    Ok(run.id.to_string())
}

#[tokio::test]
async fn tokens_authenticate_until_revoked() -> anyhow::Result<()> {
    for (t, db) in databases().await? {
        let acme = tenant(&db, "acme").await?;
        assert!(!db.has_admin_token().await?);
        let (admin, admin_text) = db.create_token("bootstrap", None, "system").await?;
        tokio::time::sleep(Duration::from_millis(3)).await;
        let (user, text) = db.create_token("ci", Some(&acme.id), "alice").await?;
        assert!(db.has_admin_token().await?);
        assert_eq!(admin.tenant_id, None);
        assert_eq!(user.tenant_id.as_deref(), Some(acme.id.as_str()));
        assert_eq!((user.last_used_at, user.revoked_at), (None, None));
        assert_eq!(text.len(), "byoc_".len() + 16 + 1 + 64);
        assert!(text.starts_with(&format!("byoc_{}_", user.id)));
        assert_eq!(audited(t.url(), "token.create", &user.id).await?, 1);

        // Only the hash of the secret is stored.
        let secret = text.rsplit('_').next().unwrap();
        let row = texts(
            t.url(),
            &format!(
                "SELECT id, name, tenant_id, secret_hash, created_by FROM api_tokens WHERE id = '{}'",
                user.id
            ),
        )
        .await?;
        let hash = row[0][3].clone().unwrap();
        assert_eq!(hash, hex::encode(Sha256::digest(secret.as_bytes())));
        assert!(
            row[0].iter().flatten().all(|v| !v.contains(secret)),
            "{row:?}"
        );

        // The right text authenticates and marks the token used, at most once a minute.
        let found = db.authenticate(&text).await?.expect("authenticates");
        let used = found.last_used_at.expect("last_used_at is set");
        assert_eq!(found.id, user.id);
        assert_eq!(db.token(&user.id).await?.last_used_at, Some(used));
        tokio::time::sleep(Duration::from_millis(3)).await;
        let again = db.authenticate(&text).await?.unwrap();
        assert_eq!(again.last_used_at, Some(used), "not rewritten within 60 s");

        let wrong = format!("byoc_{}_{}", user.id, "0".repeat(64));
        assert_eq!(db.authenticate(&wrong).await?, None, "wrong secret");
        let unknown = format!("byoc_{}_{secret}", "0".repeat(16));
        assert_eq!(db.authenticate(&unknown).await?, None, "unknown id");
        for malformed in [
            "",
            "byoc_",
            "Bearer x",
            &text[..text.len() - 1],
            &text.to_uppercase(),
        ] {
            assert_eq!(db.authenticate(malformed).await?, None, "{malformed:?}");
        }

        let listed: Vec<_> = db.tokens(None).await?.into_iter().map(|t| t.id).collect();
        assert_eq!(listed, [user.id.clone(), admin.id.clone()], "newest first");
        let listed: Vec<_> = db.tokens(Some(&acme.id)).await?;
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, user.id);
        assert!(db.tokens(Some("nobody")).await?.is_empty());

        // Revoking is idempotent and ends authentication.
        let revoked = db.revoke_token(&user.id, "alice").await?;
        let at = revoked.revoked_at.expect("revoked");
        tokio::time::sleep(Duration::from_millis(3)).await;
        assert_eq!(db.revoke_token(&user.id, "bob").await?.revoked_at, Some(at));
        assert_eq!(db.authenticate(&text).await?, None, "revoked");
        assert_eq!(db.tokens(None).await?.len(), 2, "revoked tokens are listed");
        assert!(audited(t.url(), "token.revoke", &user.id).await? >= 1);
        // The last admin token stays; with another one, it can go.
        assert!(matches!(
            db.revoke_token(&admin.id, "alice").await,
            Err(DbError::Conflict(_))
        ));
        db.create_token("second admin", None, "alice").await?;
        db.revoke_token(&admin.id, "alice").await?;
        assert!(db.has_admin_token().await?);
        assert!(db.authenticate(&admin_text).await?.is_none());

        assert!(matches!(
            db.revoke_token("0000000000000000", "alice").await,
            Err(DbError::NotFound(_))
        ));
        assert!(matches!(
            db.token("0000000000000000").await,
            Err(DbError::NotFound(_))
        ));
        for bad in ["", "   ", &"x".repeat(65)] {
            let err = db.create_token(bad, None, "alice").await.unwrap_err();
            assert!(matches!(err, DbError::Invalid(_)), "{err}");
            assert!(err.to_string().contains("token name"), "{err}");
        }
        assert!(
            db.create_token(&"é".repeat(64), None, "alice")
                .await
                .is_ok(),
            "64 characters, not bytes"
        );
        let err = db
            .create_token("x", Some("no-such-tenant"), "alice")
            .await
            .unwrap_err();
        assert!(
            matches!(&err, DbError::NotFound(m) if m.contains("no-such-tenant")),
            "{err}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn an_imported_token_is_registered_once() -> anyhow::Result<()> {
    for (t, db) in databases().await? {
        let text = format!("byoc_{}_{}", "1a".repeat(8), "2b".repeat(32));
        let first = db.import_token("env", None, &text, "system").await?;
        assert_eq!(first.id, "1a".repeat(8));
        let again = db.import_token("env", None, &text, "system").await?;
        assert_eq!(again, first, "idempotent");
        assert_eq!(db.tokens(None).await?.len(), 1);
        assert_eq!(audited(t.url(), "token.import", &first.id).await?, 1);
        assert!(db.has_admin_token().await?);
        assert_eq!(db.authenticate(&text).await?.unwrap().id, first.id);

        let other_secret = format!("byoc_{}_{}", "1a".repeat(8), "3c".repeat(32));
        assert!(matches!(
            db.import_token("env", None, &other_secret, "system").await,
            Err(DbError::Conflict(_))
        ));
        let acme = tenant(&db, "acme").await?;
        assert!(matches!(
            db.import_token("env", Some(&acme.id), &text, "system")
                .await,
            Err(DbError::Conflict(_))
        ));
        for bad in ["byoc_1a_2b", "token", &text.replace("byoc_", "byok_")] {
            let err = db
                .import_token("env", None, bad, "system")
                .await
                .unwrap_err();
            assert!(matches!(err, DbError::Invalid(_)), "{err}");
            assert!(err.to_string().contains("byoc_{16"), "{err}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn tenants_page_by_slug() -> anyhow::Result<()> {
    for (_t, db) in databases().await? {
        for slug in ["gamma", "acme", "a-b", "beta", "delta"] {
            tenant(&db, slug).await?;
        }
        let page = |after: Option<&'static str>, limit| {
            let db = db.clone();
            async move {
                let tenants = db.tenants(after, limit).await?;
                Ok::<_, DbError>(tenants.into_iter().map(|t| t.slug).collect::<Vec<_>>())
            }
        };
        // Byte order on both engines: '-' sorts before letters.
        assert_eq!(page(None, 2).await?, ["a-b", "acme"]);
        assert_eq!(page(Some("acme"), 2).await?, ["beta", "delta"]);
        assert_eq!(page(Some("delta"), 2).await?, ["gamma"]);
        assert!(page(Some("gamma"), 2).await?.is_empty());
        assert_eq!(page(Some("b"), 500).await?, ["beta", "delta", "gamma"]);
        for bad in [0, 501] {
            let err = db.tenants(None, bad).await.unwrap_err();
            assert!(
                matches!(&err, DbError::Invalid(m) if m.contains("limit")),
                "{err}"
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn a_tenant_is_deleted_only_when_nothing_of_it_is_deployed() -> anyhow::Result<()> {
    for (t, db) in databases().await? {
        let acme = tenant(&db, "acme").await?;
        let other = tenant(&db, "other").await?;
        db.save_config(&acme.id, "acme", "dev", &json!({"a": 1}), "test")
            .await?;
        db.save_config(&acme.id, "acme", "prod", &json!({"a": 2}), "test")
            .await?;
        db.save_config(&other.id, "other", "dev", &json!({"b": 1}), "test")
            .await?;
        let run = finished_run(&db, "acme-dev", 2).await?;
        let other_run = finished_run(&db, "other-dev", 1).await?;
        let (_, text) = db.create_token("ci", Some(&acme.id), "alice").await?;
        let (_, other_text) = db.create_token("ci", Some(&other.id), "alice").await?;
        exec(t.url(), &resource_row("acme-prod", "vpc", "ready")).await?;

        let err = db.delete_tenant(&slug("acme"), "alice").await.unwrap_err();
        assert!(
            matches!(&err, DbError::Conflict(m) if m.contains("environment \"prod\"") && m.contains("1 resources")),
            "{err}"
        );
        assert!(db.authenticate(&text).await?.is_some(), "nothing deleted");
        exec(t.url(), "DELETE FROM resources").await?;

        // An unfinished run blocks it too.
        let (queued, _) = db.request_run("acme-dev", RunKind::Deploy, "alice").await?;
        let err = db.delete_tenant(&slug("acme"), "alice").await.unwrap_err();
        assert!(
            matches!(&err, DbError::Conflict(m) if m.contains("environment \"dev\"") && m.contains("unfinished")),
            "{err}"
        );
        db.request_cancel(&queued.id, "alice").await?;

        db.delete_tenant(&slug("acme"), "alice").await?;
        assert!(matches!(
            db.tenant(&slug("acme")).await,
            Err(DbError::NotFound(_))
        ));
        assert!(matches!(db.run(&run).await, Err(DbError::NotFound(_))));
        assert!(matches!(
            db.stack_status(&stack("acme-dev")).await,
            Err(DbError::NotFound(_))
        ));
        assert!(db.configs(&acme.id).await?.is_empty());
        assert_eq!(db.authenticate(&text).await?, None, "its tokens are gone");
        assert_eq!(
            texts(t.url(), "SELECT run_id FROM run_events WHERE seq > 0")
                .await?
                .len(),
            1,
            "only the other tenant's events are left"
        );
        assert_eq!(audited(t.url(), "tenant.delete", "acme").await?, 1);
        assert!(matches!(
            db.delete_tenant(&slug("acme"), "alice").await,
            Err(DbError::NotFound(_))
        ));

        // The other tenant is untouched.
        assert_eq!(db.run(&other_run).await?.status, RunStatus::Succeeded);
        assert_eq!(db.configs(&other.id).await?.len(), 1);
        assert!(db.authenticate(&other_text).await?.is_some());
        // A slug can be taken again.
        tenant(&db, "acme").await?;
    }
    Ok(())
}

#[tokio::test]
async fn rotating_the_external_id_requires_trust_again() -> anyhow::Result<()> {
    for (t, db) in databases().await? {
        let new = NewTenant {
            slug: "acme".into(),
            name: "Acme".into(),
            aws_account_id: "111111111111".into(),
            labels: Default::default(),
        };
        let (_, first) = db.create_tenant(&sealer(), &new, "alice").await?;
        exec(
            t.url(),
            "UPDATE tenants SET onboarding_status = 'trusted' WHERE slug = 'acme'",
        )
        .await?;
        let sealed = |url: String| async move {
            let pool_sql = "SELECT external_id_sealed FROM tenants WHERE slug = 'acme'";
            anyhow::Ok(if url.starts_with("sqlite") {
                let pool = sqlx::SqlitePool::connect(&url).await?;
                sqlx::query_scalar::<_, Vec<u8>>(pool_sql)
                    .fetch_one(&pool)
                    .await?
            } else {
                let pool = sqlx::PgPool::connect(&url).await?;
                sqlx::query_scalar::<_, Vec<u8>>(pool_sql)
                    .fetch_one(&pool)
                    .await?
            })
        };
        let before = sealed(t.url().to_string()).await?;

        let second = db
            .rotate_external_id(&sealer(), &slug("acme"), "alice")
            .await?;
        assert_ne!(second, first);
        assert_eq!(second.len(), 64);
        assert_ne!(sealed(t.url().to_string()).await?, before);
        assert_eq!(
            db.tenant_external_id(&sealer(), &slug("acme")).await?,
            second
        );
        let acme = db.tenant(&slug("acme")).await?;
        assert_eq!(acme.onboarding_status, OnboardingStatus::PendingTrust);
        assert_eq!(
            audited(t.url(), "tenant.rotate_external_id", "acme").await?,
            1
        );
        assert!(matches!(
            db.rotate_external_id(&sealer(), &slug("nobody"), "alice")
                .await,
            Err(DbError::NotFound(_))
        ));
    }
    Ok(())
}

/// A trust stack report as a verification of tenant `acme`'s account 111111111111 reads it.
fn report(version: &str) -> TrustStackReport {
    let role = "arn:aws:iam::111111111111:role/byoc-deployer".to_string();
    TrustStackReport {
        region: "eu-west-1".into(),
        stack_name: "customer-trust".into(),
        assumed_role_arn: role.clone(),
        status: "CREATE_COMPLETE".into(),
        role_arn: Some(role),
        template_version: Some(version.into()),
    }
}

#[tokio::test]
async fn verdicts_are_recorded_under_the_lease_for_the_external_id_they_used() -> anyhow::Result<()>
{
    let ttl = Duration::from_secs(60);
    for (t, db) in databases().await? {
        tenant(&db, "acme").await?;
        for bad in [TrustLocation {
            region: None,
            stack_name: Some("1-trust".into()),
        }] {
            let err = db
                .prepare_verification(&slug("acme"), &bad)
                .await
                .unwrap_err();
            assert!(matches!(err, DbError::Invalid(_)), "{err}");
        }
        assert!(matches!(
            db.prepare_verification(&slug("nobody"), &TrustLocation::default())
                .await,
            Err(DbError::NotFound(_))
        ));
        let location = TrustLocation {
            region: Some("eu-west-1".parse()?),
            stack_name: Some("customer-trust".into()),
        };
        let stack = db.prepare_verification(&slug("acme"), &location).await?;
        assert_eq!(stack, "acme.trust");
        let acme = db.tenant(&slug("acme")).await?;
        assert_eq!(
            (acme.trust_region.as_deref(), acme.trust_stack_name.as_str()),
            (Some("eu-west-1"), "customer-trust")
        );

        // A queued verification keeps the tenant from being deleted.
        let (run, _) = db.request_run(&stack, RunKind::Verify, "alice").await?;
        let err = db.delete_tenant(&slug("acme"), "alice").await.unwrap_err();
        assert!(
            err.to_string().contains("the trust verification of tenant"),
            "{err}"
        );

        let Begin::Started(lease) = db.begin_run(&run.id, "worker-1", ttl).await? else {
            panic!("the verification should start");
        };
        let sealed = db.sealed_external_id(&slug("acme")).await?;
        let trusted = Verdict::of_report(&report(TRUST_TEMPLATE_VERSION), "acme");
        assert!(db.record_verdict(&lease, &sealed, &trusted).await?);
        db.finish_run(&run.id, &lease, RunStatus::Succeeded, None, None)
            .await?;
        let acme = db.tenant(&slug("acme")).await?;
        assert_eq!(acme.onboarding_status, OnboardingStatus::Trusted);
        assert_eq!(
            acme.trust_template_version.as_deref(),
            Some(TRUST_TEMPLATE_VERSION)
        );
        assert!(acme.verified_at.is_some());
        assert_eq!(
            acme.onboarding_message.as_deref(),
            Some(trusted.message.as_str())
        );
        assert_eq!(audited(t.url(), "tenant.verify.trusted", "acme").await?, 1);

        // The external id rotated while a verification ran: its verdict is moot.
        let (run, _) = db.request_run(&stack, RunKind::Verify, "alice").await?;
        let Begin::Started(lease) = db.begin_run(&run.id, "worker-1", ttl).await? else {
            panic!("the verification should start");
        };
        let sealed = db.sealed_external_id(&slug("acme")).await?;
        db.rotate_external_id(&sealer(), &slug("acme"), "alice")
            .await?;
        assert!(!db.record_verdict(&lease, &sealed, &trusted).await?);
        assert_eq!(
            db.tenant(&slug("acme")).await?.onboarding_status,
            OnboardingStatus::PendingTrust
        );
        // A worker that lost the lease records nothing.
        db.force_unlock(&stack, "operator", true).await?;
        let sealed = db.sealed_external_id(&slug("acme")).await?;
        assert!(matches!(
            db.record_verdict(&lease, &sealed, &trusted).await,
            Err(DbError::Fenced(_))
        ));
        let Begin::Started(lease) = db.begin_run(&run.id, "worker-2", ttl).await? else {
            panic!("the verification should resume");
        };
        let outdated = Verdict::of_report(&report("0.9.0"), "acme");
        assert!(db.record_verdict(&lease, &sealed, &outdated).await?);
        db.finish_run(
            &run.id,
            &lease,
            RunStatus::Failed,
            Some(&outdated.message),
            None,
        )
        .await?;
        let acme = db.tenant(&slug("acme")).await?;
        assert_eq!(acme.onboarding_status, OnboardingStatus::TrustFailed);
        assert!(
            acme.onboarding_message
                .unwrap()
                .contains("upgrade is needed"),
        );

        // Deleting the tenant removes its verification records too.
        db.delete_tenant(&slug("acme"), "alice").await?;
        let left = texts(t.url(), "SELECT id FROM runs WHERE stack = 'acme.trust'").await?;
        assert!(left.is_empty(), "{left:?}");
    }
    Ok(())
}

#[tokio::test]
async fn configs_are_read_and_deleted_while_nothing_is_deployed() -> anyhow::Result<()> {
    for (t, db) in databases().await? {
        let acme = tenant(&db, "acme").await?;
        db.save_config(&acme.id, "acme", "prod", &json!({"v": 1}), "test")
            .await?;
        db.save_config(&acme.id, "acme", "dev", &json!({"v": 1}), "test")
            .await?;
        db.save_config(&acme.id, "acme", "dev", &json!({"v": 2}), "test")
            .await?;
        let dev = db.config(&acme, &env("dev")).await?;
        assert_eq!((dev.env.as_str(), dev.version), ("dev", 2));
        assert_eq!(dev.config, json!({"v": 2}));
        let envs: Vec<_> = db
            .configs(&acme.id)
            .await?
            .into_iter()
            .map(|c| (c.env.to_string(), c.version))
            .collect();
        assert_eq!(envs, [("dev".to_string(), 2), ("prod".to_string(), 1)]);
        let err = db.config(&acme, &env("qa")).await.unwrap_err();
        assert!(
            matches!(&err, DbError::NotFound(m) if m.contains("\"qa\"") && m.contains("\"acme\"") && !m.contains(&acme.id)),
            "{err}"
        );

        exec(t.url(), &resource_row("acme-dev", "vpc", "ready")).await?;
        let err = db
            .delete_config(&acme.id, &slug("acme"), &env("dev"), "alice")
            .await
            .unwrap_err();
        assert!(
            matches!(&err, DbError::Conflict(m) if m.contains("environment \"dev\"")),
            "{err}"
        );
        assert!(matches!(
            db.delete_config(&acme.id, &slug("acme"), &env("qa"), "alice")
                .await,
            Err(DbError::NotFound(_))
        ));

        // prod has only finished runs: its stack records go with its config.
        let run = finished_run(&db, "acme-prod", 3).await?;
        db.delete_config(&acme.id, &slug("acme"), &env("prod"), "alice")
            .await?;
        assert!(matches!(
            db.config(&acme, &env("prod")).await,
            Err(DbError::NotFound(_))
        ));
        assert!(matches!(
            db.stack_status(&stack("acme-prod")).await,
            Err(DbError::NotFound(_))
        ));
        assert!(matches!(db.run(&run).await, Err(DbError::NotFound(_))));
        assert_eq!(audited(t.url(), "config.delete", "acme-prod").await?, 1);
        assert!(
            db.config(&acme, &env("dev")).await.is_ok(),
            "dev is untouched"
        );

        exec(t.url(), "DELETE FROM resources").await?;
        // An operation of unknown outcome may have left a cloud object: still refused.
        exec(
            t.url(),
            "INSERT INTO journal (stack, run_id, resource, kind, operation, attempt, token, inputs, phase, started_at)
             VALUES ('acme-dev', 'r', 'nat', 'nat', 'create', 1, 't', '{}', 'intent', 1)",
        )
        .await?;
        let err = db
            .delete_config(&acme.id, &slug("acme"), &env("dev"), "alice")
            .await
            .unwrap_err();
        assert!(
            matches!(&err, DbError::Conflict(m) if m.contains("unknown outcome")),
            "{err}"
        );
        exec(t.url(), "UPDATE journal SET phase = 'failed'").await?;
        db.delete_config(&acme.id, &slug("acme"), &env("dev"), "alice")
            .await?;
        assert!(db.configs(&acme.id).await?.is_empty());
        // The environment can be configured again from scratch.
        assert_eq!(
            db.save_config(&acme.id, "acme", "dev", &json!({}), "test")
                .await?,
            1
        );
    }
    Ok(())
}

#[tokio::test]
async fn stack_status_counts_resources_and_shows_the_last_run() -> anyhow::Result<()> {
    for (t, db) in databases().await? {
        let acme = tenant(&db, "acme").await?;
        db.save_config(&acme.id, "acme", "dev", &json!({}), "test")
            .await?;
        let empty = db.stack_status(&stack("acme-dev")).await?;
        assert_eq!(
            (empty.status.as_str(), empty.generation, empty.last_run),
            ("empty", 0, None)
        );
        assert!(empty.resources.is_empty());
        assert!(db.resources(&stack("acme-dev")).await?.is_empty());

        for (key, status) in [("vpc", "ready"), ("b", "ready"), ("a", "failed")] {
            exec(t.url(), &resource_row("acme-dev", key, status)).await?;
        }
        finished_run(&db, "acme-dev", 0).await?;
        let (running, _) = db.request_run("acme-dev", RunKind::Destroy, "bob").await?;
        assert!(matches!(
            db.begin_run(&running.id, "w2", Duration::from_secs(60))
                .await?,
            Begin::Started(_)
        ));

        let status = db.stack_status(&stack("acme-dev")).await?;
        assert_eq!(status.stack, "acme-dev");
        assert_eq!(
            status.resources,
            [("failed".to_string(), 1), ("ready".to_string(), 2)].into()
        );
        assert_eq!(status.generation, 2);
        assert_eq!(status.lease_holder.as_deref(), Some("w2"));
        let last = status.last_run.expect("a last run");
        assert_eq!((last.id, last.status), (running.id, RunStatus::Running));

        let keys: Vec<_> = db
            .resources(&stack("acme-dev"))
            .await?
            .into_iter()
            .map(|r| r.key)
            .collect();
        assert_eq!(keys, ["a", "b", "vpc"]);
        let vpc = db.resources(&stack("acme-dev")).await?.pop().unwrap();
        assert_eq!(
            (
                vpc.kind.as_str(),
                vpc.physical_id.as_str(),
                vpc.status.as_str()
            ),
            ("vpc", "id-vpc", "ready")
        );
        assert_eq!(vpc.inputs, json!({"cidr": "10.0.0.0/16"}));
        assert_eq!(vpc.outputs, json!({}));

        for missing in [
            db.stack_status(&stack("nope-dev")).await.map(drop),
            db.resources(&stack("nope-dev")).await.map(drop),
        ] {
            assert!(matches!(missing, Err(DbError::NotFound(_))), "{missing:?}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn run_events_are_read_in_order_after_a_cursor() -> anyhow::Result<()> {
    for (_t, db) in databases().await? {
        let acme = tenant(&db, "acme").await?;
        db.save_config(&acme.id, "acme", "dev", &json!({}), "test")
            .await?;
        let (run, _) = db.request_run("acme-dev", RunKind::Deploy, "alice").await?;
        let Begin::Started(lease) = db.begin_run(&run.id, "w1", Duration::from_secs(60)).await?
        else {
            panic!()
        };
        assert!(db.run_events(&run.id, 0, 10).await?.is_empty());
        assert_eq!(db.run_plan(&run.id).await?, None);
        for i in 1..=5 {
            let data = json!({"i": i});
            let resource = (i % 2 == 0).then_some("vpc");
            let level = if i == 5 { "error" } else { "info" };
            db.record_event(
                &lease,
                &run.id,
                level,
                resource,
                &format!("step {i}"),
                Some(&data),
            )
            .await?;
        }

        let all = db.run_events(&run.id, 0, 1000).await?;
        assert_eq!(
            all.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        assert_eq!(all[1].resource.as_deref(), Some("vpc"));
        assert_eq!(all[1].message, "step 2");
        assert_eq!(all[4].level, "error");
        assert_eq!(all[2].data, Some(json!({"i": 3})));
        assert!(all.windows(2).all(|w| w[0].at <= w[1].at));

        let page: Vec<_> = db
            .run_events(&run.id, 2, 2)
            .await?
            .into_iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(page, [3, 4]);
        assert!(db.run_events(&run.id, 5, 10).await?.is_empty());
        for bad in [0, 1001] {
            assert!(matches!(
                db.run_events(&run.id, 0, bad).await,
                Err(DbError::Invalid(_))
            ));
        }
        assert!(matches!(
            db.run_events("no-such-run", 0, 10).await,
            Err(DbError::NotFound(_))
        ));

        let plan = json!({"steps": [{"resource": "vpc", "action": "create"}]});
        db.record_plan(&run.id, &lease, &plan, None).await?;
        assert_eq!(db.run_plan(&run.id).await?, Some(plan));
        assert!(matches!(
            db.run_plan("no-such-run").await,
            Err(DbError::NotFound(_))
        ));
    }
    Ok(())
}

/// `co1` + `prod-eu` and `co1-prod` + `eu` are both stack `co1-prod-eu`: whichever comes
/// second is refused, writes nothing, and each tenant's lookup finds only its own stack.
#[tokio::test]
async fn a_stack_name_belongs_to_one_environment() -> anyhow::Result<()> {
    for (t, db) in databases().await? {
        let co1 = tenant(&db, "co1").await?;
        let co1_prod = tenant(&db, "co1-prod").await?;
        db.save_config(&co1.id, "co1", "prod-eu", &json!({"v": 1}), "test")
            .await?;
        let err = db
            .save_config(&co1_prod.id, "co1-prod", "eu", &json!({"v": 2}), "test")
            .await
            .unwrap_err();
        assert!(
            matches!(&err, DbError::StackNameTaken(name) if name == "co1-prod-eu"),
            "{err}"
        );
        assert!(matches!(
            db.config(&co1_prod, &env("eu")).await,
            Err(DbError::NotFound(_))
        ));
        assert!(matches!(
            db.stack_of(&co1_prod, &env("eu")).await,
            Err(DbError::NotFound(_))
        ));
        assert_eq!(db.stack_of(&co1, &env("prod-eu")).await?, "co1-prod-eu");
        let owners = texts(
            t.url(),
            "SELECT tenant_id, env FROM stacks WHERE name = 'co1-prod-eu'",
        )
        .await?;
        assert_eq!(owners, [[Some(co1.id.clone()), Some("prod-eu".into())]]);
        assert_eq!(audited(t.url(), "config.save", "co1-prod-eu").await?, 1);
        // Saving its own again is fine; the other order is refused the same way.
        db.save_config(&co1.id, "co1", "prod-eu", &json!({"v": 3}), "test")
            .await?;
        db.save_config(&co1_prod.id, "co1-prod", "us", &json!({"v": 1}), "test")
            .await?;
        let err = db
            .save_config(&co1.id, "co1", "prod-us", &json!({"v": 1}), "test")
            .await
            .unwrap_err();
        assert!(matches!(&err, DbError::StackNameTaken(_)), "{err}");
        assert!(matches!(
            db.ensure_stack("co1-prod-us", &co1.id, "prod-us").await,
            Err(DbError::StackNameTaken(_))
        ));
        // Once the first tenant's environment is gone, the name is free again.
        db.delete_config(&co1.id, &slug("co1"), &env("prod-eu"), "test")
            .await?;
        db.save_config(&co1_prod.id, "co1-prod", "eu", &json!({"v": 2}), "test")
            .await?;
        assert_eq!(db.stack_of(&co1_prod, &env("eu")).await?, "co1-prod-eu");
    }
    Ok(())
}

/// Revoking the last admin token would leave nobody able to call the API.
#[tokio::test]
async fn the_last_admin_token_is_not_revoked() -> anyhow::Result<()> {
    for (_t, db) in databases().await? {
        let (first, _) = db.create_token("first", None, "test").await?;
        let err = db.revoke_token(&first.id, "test").await.unwrap_err();
        assert!(
            matches!(&err, DbError::Conflict(m) if m.contains("last admin token")),
            "{err}"
        );
        assert!(db.token(&first.id).await?.revoked_at.is_none());
        let (second, _) = db.create_token("second", None, "test").await?;
        db.revoke_token(&first.id, "test").await?;
        assert!(matches!(
            db.revoke_token(&second.id, "test").await,
            Err(DbError::Conflict(_))
        ));
    }
    Ok(())
}

/// A run of `stack` of `kind` requested by `by`, run to `status` with `summary`.
async fn ended_run(
    db: &Database,
    stack: &str,
    kind: RunKind,
    by: &str,
    summary: Option<serde_json::Value>,
) -> anyhow::Result<String> {
    let (run, _) = db.request_run(stack, kind, by).await?;
    let Begin::Started(lease) = db.begin_run(&run.id, "w1", Duration::from_secs(60)).await? else {
        panic!("the run starts");
    };
    db.finish_run(
        &run.id,
        &lease,
        RunStatus::Succeeded,
        None,
        summary.as_ref(),
    )
    .await?;
    Ok(run.id.to_string())
}

/// The status's one query reads what the separate reads it replaces read: the stack's status
/// with its resource counts and last run, its resources, its last succeeded refresh, its
/// config, its last schedule slot and the server's drift-check default; another tenant's
/// environment is NotFound as a missing tenant is.
#[tokio::test]
async fn the_status_is_read_in_one_query_as_the_separate_reads_read_it() -> anyhow::Result<()> {
    for (t, db) in databases().await? {
        let acme = tenant(&db, "acme").await?;
        let other = tenant(&db, "other").await?;
        let config = json!({"region": "us-east-1", "drift_check": {"every_minutes": 60}});
        db.save_config(&acme.id, "acme", "dev", &config, "test")
            .await?;
        let (dev, none) = (env("dev"), Option::<&str>::None);
        let read = db
            .environment_status(&slug("acme"), &env("dev"), none)
            .await?;
        assert_eq!(read.status, db.stack_status(&stack("acme-dev")).await?);
        assert_eq!(
            (
                read.resources.len(),
                read.last_refresh,
                read.last_schedule_slot
            ),
            (0, None, None)
        );
        assert_eq!(read.drift_check_every, None);
        assert!(!read.last_run_by_viewer);

        for (key, status) in [("vpc", "ready"), ("b", "ready"), ("a", "failed")] {
            exec(t.url(), &resource_row("acme-dev", key, status)).await?;
        }
        exec(
            t.url(),
            "UPDATE resources SET outputs = '{\"id\": \"vpc-1\", \"note\": \"it''s \\\"quoted\\\"\"}' WHERE key = 'vpc'",
        )
        .await?;
        db.set_fact(byoc_model::DRIFT_CHECK_EVERY_FACT, "90")
            .await?;
        let drift = json!({"drift": [{"resource": "vpc"}]});
        let refresh = ended_run(&db, "acme-dev", RunKind::Refresh, "alice", Some(drift)).await?;
        ended_run(&db, "acme-dev", RunKind::Deploy, "alice", None).await?;
        let scheduled = db
            .request_scheduled_run(&stack("acme-dev"), RunKind::Refresh, 3_600_000, "scheduler")
            .await?
            .expect("the slot's run");
        let Begin::Started(lease) = db
            .begin_run(scheduled.id.as_str(), "w1", Duration::from_secs(60))
            .await?
        else {
            panic!("the run starts");
        };
        db.finish_run(
            scheduled.id.as_str(),
            &lease,
            RunStatus::Failed,
            Some("no"),
            None,
        )
        .await?;
        let (own, _) = db.create_token("acme ci", Some(&acme.id), "test").await?;
        let (theirs, _) = db.create_token("other ci", Some(&other.id), "test").await?;
        let (queued, _) = db
            .request_run(
                "acme-dev",
                RunKind::Destroy,
                &format!("token:{} ({})", own.id, own.name),
            )
            .await?;

        let read = db
            .environment_status(&slug("acme"), &dev, Some(&acme.id))
            .await?;
        let status = db.stack_status(&stack("acme-dev")).await?;
        assert_eq!(read.status, status);
        assert_eq!(
            status.last_run.as_ref().map(|r| r.id.clone()),
            Some(queued.id.clone())
        );
        assert_eq!(read.resources, db.resources(&stack("acme-dev")).await?);
        assert_eq!(read.resources[2].outputs["note"], "it's \"quoted\"");
        let last_refresh = db
            .latest_run("acme-dev", RunKind::Refresh, RunStatus::Succeeded)
            .await?;
        assert_eq!(read.last_refresh, last_refresh);
        assert_eq!(
            read.last_refresh.map(|r| r.id.to_string()),
            Some(refresh.clone())
        );
        assert_eq!(read.config, db.config(&acme, &dev).await?.config);
        assert_eq!(
            read.last_schedule_slot,
            db.last_schedule_slot(&stack("acme-dev")).await?
        );
        assert_eq!(read.last_schedule_slot, Some(3_600_000));
        assert_eq!(read.drift_check_every.as_deref(), Some("90"));
        assert!(read.last_run_by_viewer, "acme's own token asked");

        // Whose the last run is, as `Caller::present` would judge it: only a token of the
        // viewer's tenant, named exactly.
        for (by, viewer, own_token) in [
            (
                format!("token:{} ({})", own.id, own.name),
                Some(&other.id),
                false,
            ),
            (format!("token:{}", own.id), Some(&acme.id), true),
            (
                format!("token:{}x ({})", own.id, own.name),
                Some(&acme.id),
                false,
            ),
            (
                format!("token:{} ({})", theirs.id, theirs.name),
                Some(&acme.id),
                false,
            ),
            ("alice".to_string(), Some(&acme.id), false),
        ] {
            exec(
                t.url(),
                &format!(
                    "UPDATE runs SET requested_by = '{by}' WHERE id = '{}'",
                    queued.id
                ),
            )
            .await?;
            let viewer_slug = if viewer == Some(&acme.id) {
                "acme"
            } else {
                "other"
            };
            let read = db
                .environment_status(&slug("acme"), &dev, viewer.map(String::as_str))
                .await;
            if viewer_slug == "other" {
                // Another tenant's environment is a missing one.
                let Err(DbError::NotFound(what)) = read else {
                    panic!("{read:?}")
                };
                assert_eq!(what, "tenant \"acme\"");
                continue;
            }
            assert_eq!(read?.last_run_by_viewer, own_token, "{by}");
        }

        for (tenant_slug, env_name, missing) in [
            ("nope", "dev", "tenant \"nope\""),
            ("acme", "prod", "environment \"prod\" of tenant \"acme\""),
        ] {
            let read = db
                .environment_status(&slug(tenant_slug), &env(env_name), none)
                .await;
            let Err(DbError::NotFound(what)) = read else {
                panic!("{read:?}")
            };
            assert_eq!(what, missing);
        }
    }
    Ok(())
}
