//! State history on both engines: the full state kept at every state version, read back and
//! compared; and force-unlock, which breaks a lease only when asked to and fences its holder.

use std::time::Duration;

use byoc_engine::{Intent, Operation, Outcome, ResourceState, StateStore, StoreError};
use byoc_model::api::ResourceChange;
use byoc_model::{RunKind, RunStatus, StackName};
use byoc_stacks::{Begin, Database, DbError, Lease, NewTenant, RunStore, Sealer};
use byoc_testkit::{databases, exec};
use serde_json::{Value, json};

async fn tenant_stack(db: &Database, slug: &str) -> anyhow::Result<StackName> {
    let new = NewTenant {
        slug: slug.into(),
        name: "Acme".into(),
        aws_account_id: "111111111111".into(),
        labels: Default::default(),
    };
    let sealer = Sealer::from_hex(&"ab".repeat(32))?;
    let (tenant, _) = db.create_tenant(&sealer, &new, "test").await?;
    let stack = format!("{slug}-dev");
    db.ensure_stack(&stack, &tenant.id, "dev").await?;
    Ok(stack.parse()?)
}

/// A run of `stack` started under a lease of `holder`.
async fn started(
    db: &Database,
    stack: &str,
    holder: &str,
    ttl: Duration,
) -> anyhow::Result<(String, Lease)> {
    let (run, _) = db.request_run(stack, RunKind::Deploy, "alice").await?;
    let Begin::Started(lease) = db.begin_run(&run.id, holder, ttl).await? else {
        panic!("the run should start");
    };
    Ok((run.id.to_string(), lease))
}

fn intent(run: &str, name: &str, kind: &str, operation: Operation) -> Intent {
    Intent {
        run_id: run.into(),
        resource: name.into(),
        kind: kind.into(),
        operation,
        attempt: 1,
        token: format!("{run}-{name}"),
        inputs: json!({}),
    }
}

/// Records `name` as created or updated with these ids, inputs and outputs.
async fn put(
    store: &RunStore,
    run: &str,
    (name, kind, id): (&str, &str, &str),
    inputs: Value,
    outputs: Value,
) -> anyhow::Result<()> {
    let i = intent(run, name, kind, Operation::Create);
    store.record_intent(&i).await?;
    let state = ResourceState {
        kind: kind.into(),
        name: name.into(),
        physical_id: id.into(),
        inputs,
        outputs,
        depends_on: vec![],
        lifecycle: Default::default(),
    };
    store
        .record_outcome(
            &i,
            &Outcome::Created {
                state,
                depose: false,
            },
        )
        .await?;
    Ok(())
}

async fn delete(store: &RunStore, run: &str, name: &str, kind: &str) -> anyhow::Result<()> {
    let i = intent(run, name, kind, Operation::Delete);
    store.record_intent(&i).await?;
    store.record_outcome(&i, &Outcome::Deleted).await?;
    Ok(())
}

#[tokio::test]
async fn every_state_version_keeps_the_full_state_and_two_compare() -> anyhow::Result<()> {
    let ttl = Duration::from_secs(60);
    for (t, db) in databases().await? {
        let stack = tenant_stack(&db, "acme").await?;

        // Version 1: a VPC and a subnet.
        let (run1, lease) = started(&db, &stack, "w1", ttl).await?;
        let store = RunStore::new(db.clone(), &run1, lease.clone());
        let vpc_in = json!({"cidr": "10.0.0.0/16", "tags": {"team": "a"}});
        put(
            &store,
            &run1,
            ("vpc", "aws:ec2:Vpc", "vpc-1"),
            vpc_in,
            json!({"id": "vpc-1"}),
        )
        .await?;
        let subnet_in = json!({"cidr": "10.0.1.0/24", "zones": ["a"]});
        let subnet = ("subnet", "aws:ec2:Subnet", "subnet-1");
        put(&store, &run1, subnet, subnet_in, json!({"id": "subnet-1"})).await?;
        let v1 = db.record_history(&run1, &lease, &json!([])).await?;
        db.finish_run(&run1, &lease, RunStatus::Succeeded, None, None)
            .await?;
        assert_eq!(v1, 1);

        // Version 2: the VPC's tags change in place, the subnet is replaced (new id), a NAT
        // is added; then the VPC's tags change again without a new version yet.
        let (run2, lease) = started(&db, &stack, "w1", ttl).await?;
        let store = RunStore::new(db.clone(), &run2, lease.clone());
        let vpc_in = json!({"cidr": "10.0.0.0/16", "tags": {"team": "b"}});
        put(
            &store,
            &run2,
            ("vpc", "aws:ec2:Vpc", "vpc-1"),
            vpc_in,
            json!({"id": "vpc-1"}),
        )
        .await?;
        delete(&store, &run2, "subnet", "aws:ec2:Subnet").await?;
        let subnet_in = json!({"cidr": "10.0.1.0/24", "zones": ["a", "b"]});
        let subnet = ("subnet", "aws:ec2:Subnet", "subnet-2");
        put(&store, &run2, subnet, subnet_in, json!({"id": "subnet-2"})).await?;
        put(
            &store,
            &run2,
            ("nat", "aws:ec2:NatGateway", "nat-1"),
            json!({}),
            json!({}),
        )
        .await?;
        let v2 = db.record_history(&run2, &lease, &json!([])).await?;
        assert_eq!(v2, 2);
        let later = json!({"cidr": "10.0.0.0/16", "tags": {"team": "c"}});
        put(
            &store,
            &run2,
            ("vpc", "aws:ec2:Vpc", "vpc-1"),
            later,
            json!({"id": "vpc-1"}),
        )
        .await?;
        db.finish_run(&run2, &lease, RunStatus::Succeeded, None, None)
            .await?;

        // Each version reads back as it was recorded, whatever happened since.
        let at1 = db.state_at(&stack, 1).await?;
        assert_eq!(
            at1.run_id.as_ref().map(|r| r.to_string()),
            Some(run1.clone())
        );
        let keys = |v: &byoc_model::api::StateVersionView| -> Vec<String> {
            v.resources.iter().map(|r| r.key.clone()).collect()
        };
        assert_eq!(keys(&at1), ["subnet", "vpc"]);
        assert_eq!(at1.resources[0].physical_id, "subnet-1");
        assert_eq!(at1.resources[1].inputs["tags"]["team"], "a");
        let at2 = db.state_at(&stack, 2).await?;
        assert_eq!(keys(&at2), ["nat", "subnet", "vpc"]);
        assert_eq!(at2.resources[1].physical_id, "subnet-2");
        assert_eq!(
            at2.resources[2].inputs["tags"]["team"], "b",
            "as of version 2"
        );
        assert_eq!(at2.resources[2].outputs["id"], "vpc-1");
        assert_eq!(at2.resources[2].kind, "aws:ec2:Vpc");
        assert_eq!(at2.resources[2].status, "ready");
        assert!(db.state_at(&stack, 0).await?.resources.is_empty());

        // A version that does not exist is NotFound naming it.
        let err = db.state_at(&stack, 3).await.unwrap_err();
        assert!(
            matches!(&err, DbError::NotFound(m) if m.contains("state version 3") && m.contains("0 to 2")),
            "{err}"
        );
        assert!(matches!(
            db.state_at(&stack, -1).await,
            Err(DbError::Invalid(_))
        ));

        // The diff: the VPC's changed input field, the subnet's new physical id and input,
        // the NAT added.
        let diff = db.state_diff(&stack, 1, 2).await?;
        assert_eq!((diff.from, diff.to), (1, 2));
        assert_eq!(
            (
                diff.counts.added,
                diff.counts.removed,
                diff.counts.changed,
                diff.counts.unchanged
            ),
            (1, 0, 2, 0)
        );
        let by_key = |d: &byoc_model::api::StateDiff, k: &str| {
            d.resources.iter().find(|r| r.key == k).cloned().unwrap()
        };
        let nat = by_key(&diff, "nat");
        assert_eq!(nat.change, ResourceChange::Added);
        assert_eq!(nat.new_physical_id.as_deref(), Some("nat-1"));
        let vpc = by_key(&diff, "vpc");
        assert_eq!(vpc.change, ResourceChange::Changed);
        assert!(!vpc.physical_id_changed);
        assert_eq!(vpc.inputs.len(), 1, "{:?}", vpc.inputs);
        assert_eq!(vpc.inputs[0].field, "tags.team");
        assert_eq!(
            (vpc.inputs[0].old.clone(), vpc.inputs[0].new.clone()),
            (Some(json!("a")), Some(json!("b")))
        );
        assert!(vpc.outputs.is_empty());
        let subnet = by_key(&diff, "subnet");
        assert!(subnet.physical_id_changed);
        assert_eq!(
            (
                subnet.old_physical_id.as_deref(),
                subnet.new_physical_id.as_deref()
            ),
            (Some("subnet-1"), Some("subnet-2"))
        );
        assert_eq!(subnet.inputs[0].field, "zones");
        assert_eq!(subnet.outputs[0].field, "id");

        // Backwards, and from the empty state.
        let back = db.state_diff(&stack, 2, 1).await?;
        assert_eq!(by_key(&back, "nat").change, ResourceChange::Removed);
        assert_eq!(back.counts.removed, 1);
        let all = db.state_diff(&stack, 0, 2).await?;
        assert_eq!(all.counts.added, 3);
        let none = db.state_diff(&stack, 2, 2).await?;
        assert!(none.resources.is_empty() && none.counts.unchanged == 3);
        let err = db.state_diff(&stack, 1, 9).await.unwrap_err();
        assert!(
            matches!(&err, DbError::NotFound(m) if m.contains("state version 9")),
            "{err}"
        );

        // A fenced worker adds no version and no state.
        let (run3, lease) = started(&db, &stack, "w1", ttl).await?;
        db.force_unlock(&stack, "admin", true).await?;
        assert!(matches!(
            db.record_history(&run3, &lease, &json!([])).await,
            Err(DbError::Fenced(_))
        ));
        assert!(matches!(
            db.state_at(&stack, 3).await,
            Err(DbError::NotFound(_))
        ));

        // A version recorded before full states were kept says so.
        exec(t.url(), "DELETE FROM state_versions WHERE version = 1").await?;
        let err = db.state_at(&stack, 1).await.unwrap_err();
        assert!(
            matches!(&err, DbError::NotFound(m) if m.contains("version 1") && m.contains("before byoc kept full states")),
            "{err}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn force_unlock_breaks_only_what_it_is_asked_to_and_fences_the_holder() -> anyhow::Result<()>
{
    for (t, db) in databases().await? {
        let stack = tenant_stack(&db, "acme").await?;
        // Nothing holds the lease: nothing to unlock, nothing changed.
        let err = db.force_unlock(&stack, "admin", true).await.unwrap_err();
        assert!(
            matches!(&err, DbError::Conflict(m) if m.contains("not locked")),
            "{err}"
        );
        assert_eq!(db.stack_status(&stack).await?.generation, 0);

        // A live lease is refused without force, naming its holder; broken with it.
        let (run, lease) = started(&db, &stack, "w1", Duration::from_secs(60)).await?;
        let err = db.force_unlock(&stack, "admin", false).await.unwrap_err();
        assert!(
            matches!(&err, DbError::Conflict(m) if m.contains("w1") && m.contains("live")),
            "{err}"
        );
        let store = RunStore::new(db.clone(), &run, lease.clone());
        store
            .record_intent(&intent(&run, "vpc", "vpc", Operation::Create))
            .await?;
        let broken = db.force_unlock(&stack, "admin", true).await?;
        assert_eq!(broken.holder, "w1");
        assert_eq!(broken.generation, lease.generation);
        assert_eq!(broken.new_generation, lease.generation + 1);
        assert!(broken.was_live);
        assert_eq!(
            broken.run_id.as_ref().map(|r| r.to_string()),
            Some(run.clone())
        );
        let status = db.stack_status(&stack).await?;
        assert_eq!(
            (status.generation, status.lease_holder),
            (lease.generation + 1, None)
        );
        // The old holder can write nothing.
        assert!(matches!(
            store
                .record_intent(&intent(&run, "subnet", "subnet", Operation::Create))
                .await,
            Err(StoreError::Fenced(_))
        ));
        assert!(matches!(
            db.renew_lease(&lease, Duration::from_secs(60)).await,
            Err(DbError::Fenced(_))
        ));
        assert!(matches!(
            db.finish_run(&run, &lease, RunStatus::Succeeded, None, None)
                .await,
            Err(DbError::Fenced(_))
        ));

        // The run resumes under a new lease; once that expires, no force is needed.
        let Begin::Started(resumed) = db.begin_run(&run, "w2", Duration::from_millis(1)).await?
        else {
            panic!("the run resumes once the lease is broken");
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let broken = db.force_unlock(&stack, "admin", false).await?;
        assert!(!broken.was_live);
        assert_eq!(
            (broken.holder.as_str(), broken.generation),
            ("w2", resumed.generation)
        );

        // Both breaks are audited with what was broken.
        let details = raw_texts(
            t.url(),
            "SELECT details FROM audit_log WHERE action = 'stack.force_unlock' AND target = 'acme-dev' ORDER BY id",
        )
        .await?;
        assert_eq!(details.len(), 2, "{details:?}");
        let first: Value = serde_json::from_str(&details[0])?;
        assert_eq!(first["holder"], "w1");
        assert_eq!(first["generation"], lease.generation);
        assert_eq!(first["was_live"], true);
        assert_eq!(first["run_id"], run.as_str());
        let second: Value = serde_json::from_str(&details[1])?;
        assert_eq!(
            (second["holder"].as_str(), second["was_live"].as_bool()),
            (Some("w2"), Some(false))
        );

        let missing: StackName = "acme-nope".parse()?;
        assert!(matches!(
            db.force_unlock(&missing, "admin", true).await,
            Err(DbError::NotFound(_))
        ));
    }
    Ok(())
}

async fn raw_texts(url: &str, sql: &'static str) -> anyhow::Result<Vec<String>> {
    Ok(if url.starts_with("sqlite") {
        let pool = sqlx::SqlitePool::connect(url).await?;
        sqlx::query_scalar(sql).fetch_all(&pool).await?
    } else {
        let pool = sqlx::PgPool::connect(url).await?;
        sqlx::query_scalar(sql).fetch_all(&pool).await?
    })
}
