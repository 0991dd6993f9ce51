//! schemathesis (pinned in tools/emulator/requirements.txt) against `/openapi.json` of the
//! API on a real SQLite store: every check, the stateful phase following the schema's links
//! from tenants to configs to runs.

mod common;

use std::process::Command;

use byoc_model::RunKind;
use byoc_stacks::{Database, NewTenant, TrustLocation, migrate_url};
use byoc_testkit::TestDb;

/// Where the schema cannot state a rule (one field against another: `min_size` <= `max_size`,
/// as many zones as `az_count`, a CIDR's host bits), the API answers 422 to input the schema
/// allows; the one operation that takes such input may do so. Everything else must accept
/// every input its schema allows.
const CONFIG: &str = r#"
[[operations]]
include-operation-id = "set_config"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422"]

# A state version that exists (the fixture's deploy recorded version 1); the route's bad
# versions are api.rs's business.
[[operations]]
include-operation-id = "state_version"
parameters = { "path.version" = 1 }

# Tenant -> verify -> run takes three links.
[phases.stateful]
max-steps = 12

# A trusted tenant with a config (no worker runs here to verify one): runs can be requested
# and read.
[parameters]
"path.slug" = "acme"
"path.env" = "dev"
"#;

/// Tenant `acme`, trusted, with environment `dev` configured and deployed once (state
/// version 1, a VPC). Having resources, the environment stays whatever schemathesis asks:
/// its config cannot be deleted, whether or not runs it requested are still unfinished.
async fn trusted_tenant_with_config(db: &Database, url: &str) -> anyhow::Result<()> {
    let new = NewTenant {
        slug: "acme".into(),
        name: "Acme".into(),
        aws_account_id: "111111111111".into(),
        labels: Default::default(),
    };
    let (tenant, _) = db.create_tenant(&common::sealer(), &new, "test").await?;
    let location = TrustLocation {
        region: Some("eu-west-1".parse()?),
        stack_name: None,
    };
    let stack = db.prepare_verification(&tenant.slug, &location).await?;
    let (run, _) = db.request_run(&stack, RunKind::Verify, "test").await?;
    common::complete_verification(db, "acme", &run.id).await?;
    let config = serde_json::json!({"region": "us-east-1", "eks_mode": "managed"});
    db.save_config(&tenant.id, "acme", "dev", &config, "test")
        .await?;
    // A deploy that made a VPC and recorded state version 1.
    let (run, _) = db.request_run("acme-dev", RunKind::Deploy, "test").await?;
    let byoc_stacks::Begin::Started(lease) = db
        .begin_run(&run.id, "test-worker", std::time::Duration::from_secs(60))
        .await?
    else {
        anyhow::bail!("the deploy did not start");
    };
    byoc_testkit::exec(
        url,
        "INSERT INTO resources (stack, key, kind, physical_id, inputs, outputs, depends_on, lifecycle, status, updated_at)
         VALUES ('acme-dev', 'vpc', 'aws:ec2:Vpc', 'vpc-0123456789abcdef0', '{\"cidr\": \"10.0.0.0/16\"}', '{\"id\": \"vpc-0123456789abcdef0\"}', '[]', '{}', 'ready', 1)",
    )
    .await?;
    db.record_history(&run.id, &lease, &serde_json::json!([]))
        .await?;
    db.finish_run(
        &run.id,
        &lease,
        byoc_model::RunStatus::Succeeded,
        None,
        None,
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn every_check_passes_on_every_operation() -> anyhow::Result<()> {
    let st = common::venv_tool("schemathesis")?;
    let t = TestDb::sqlite().await?;
    migrate_url(t.url()).await?;
    let db = Database::connect(t.url()).await?;
    let (_, admin) = db.create_token("schemathesis", None, "test").await?;
    trusted_tenant_with_config(&db, t.url()).await?;
    let base = common::serve(db, Some("us-east-1")).await?;

    let scratch = tempfile::tempdir()?;
    std::fs::write(scratch.path().join("schemathesis.toml"), CONFIG)?;
    let run = tokio::task::spawn_blocking({
        let base = base.clone();
        let dir = scratch.path().to_path_buf();
        move || {
            let mut command = Command::new(&st);
            command
                .args(["--config-file", "schemathesis.toml"])
                .args(["run", &format!("{base}/openapi.json")])
                .args(["--checks", "all"])
                .args(["--header", &format!("Authorization: Bearer {admin}")])
                .args(["--max-examples", "20", "--seed", "1"])
                // Its example database and reports go to a scratch directory.
                .current_dir(dir);
            common::output_of(&mut command, "schemathesis")
        }
    });
    let stdout = run.await??;
    println!("{stdout}");
    // The stateful phase ran and reached past the tenant routes.
    assert!(stdout.contains("Stateful"), "{stdout}");
    assert!(!stdout.contains("Missing test data"), "{stdout}");
    Ok(())
}
