//! A Python client generated from `/openapi.json` (openapi-python-client, pinned in
//! tools/emulator/requirements.txt) creates a tenant, saves a config and reads a plan, with
//! the schema's types only: no hand-written JSON.

mod common;

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use byoc_stacks::{Begin, Database, migrate_url};
use byoc_testkit::TestDb;
use serde_json::json;

const CREATE_AND_CONFIGURE: &str = r#"
import sys
from byoc_client import AuthenticatedClient
from byoc_client.api.tenants import create_tenant, verify_trust
from byoc_client.api.environments import set_config
from byoc_client.models import CreateTenant, EnvironmentConfig, EksMode, NodeGroupConfig, VerifyTrust

client = AuthenticatedClient(base_url=sys.argv[1], token=sys.argv[2])
created = create_tenant.sync(client=client, body=CreateTenant(name="Acme", slug="acme", aws_account_id="111111111111"))
assert created.tenant.slug == "acme" and len(created.external_id) >= 32, created
config = EnvironmentConfig(eks_mode=EksMode.MANAGED, node_group_config=NodeGroupConfig(desired_size=2))
saved = set_config.sync(client=client, slug="acme", env="dev", body=config)
assert saved.version == 1, saved
assert saved.config.region == "us-east-1", saved.config
assert saved.config.node_group_config.max_size >= 2, saved.config
verify = verify_trust.sync(client=client, slug="acme", body=VerifyTrust(region="eu-west-1"))
print(verify.run_id)
"#;

const PREVIEW: &str = r#"
import sys
from byoc_client import AuthenticatedClient
from byoc_client.api.runs import preview

client = AuthenticatedClient(base_url=sys.argv[1], token=sys.argv[2])
accepted = preview.sync(client=client, slug="acme", env="dev")
assert accepted.kind.value == "preview", accepted
print(accepted.run_id)
"#;

const READ_PLAN: &str = r#"
import sys
from byoc_client import AuthenticatedClient
from byoc_client.api.runs import show_run
from byoc_client.models import PlanAction

client = AuthenticatedClient(base_url=sys.argv[1], token=sys.argv[2])
detail = show_run.sync(client=client, id=sys.argv[3])
assert detail.run.status.value == "succeeded", detail.run
plan = detail.plan
assert plan.counts.create == 1 and plan.counts.unchanged == 0, plan.counts
step = plan.steps[0]
assert step.action == PlanAction.CREATE and step.resource == "vpc", step
print(f"{step.resource} {step.action.value} {step.diff[0].field}")
"#;

/// Runs one of the scripts with the generated package importable; returns its output.
fn python(scratch: &Path, script: &str, args: &[&str]) -> anyhow::Result<String> {
    let mut command = Command::new(common::venv_tool("python")?);
    command
        .arg("-c")
        .arg(script)
        .args(args)
        .env("PYTHONPATH", scratch);
    Ok(common::output_of(&mut command, "the generated client")?
        .trim()
        .to_string())
}

// Multi-threaded: the scripts block this thread while the server answers them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_generated_from_the_schema_works() -> anyhow::Result<()> {
    let generator = common::venv_tool("openapi-python-client")?;
    let t = TestDb::sqlite().await?;
    migrate_url(t.url()).await?;
    let db = Database::connect(t.url()).await?;
    let (_, admin) = db.create_token("generated client", None, "test").await?;
    let base = common::serve(db.clone(), Some("us-east-1")).await?;

    let scratch = tempfile::tempdir()?;
    let spec = reqwest::get(format!("{base}/openapi.json"))
        .await?
        .text()
        .await?;
    std::fs::write(scratch.path().join("openapi.json"), spec)?;
    common::output_of(
        Command::new(&generator)
            .args(["generate", "--path", "openapi.json", "--meta", "none"])
            .args(["--output-path", "byoc_client", "--overwrite"])
            .current_dir(scratch.path()),
        "generating the client",
    )?;
    let args = [base.as_str(), admin.as_str()];

    let verify_run = python(scratch.path(), CREATE_AND_CONFIGURE, &args)?;
    common::complete_verification(&db, "acme", &verify_run).await?;
    let preview_run = python(scratch.path(), PREVIEW, &args)?;

    // The worker's part: the preview plans one VPC.
    let Begin::Started(lease) = db
        .begin_run(
            &preview_run,
            "test-worker",
            std::time::Duration::from_secs(60),
        )
        .await?
    else {
        bail!("the preview did not start");
    };
    let plan = json!({"stack": "acme-dev", "run_id": preview_run, "destroy": false, "steps": [
        {"id": 0, "action": "create", "operation": "create", "resource": "vpc", "kind": "aws:ec2:Vpc",
         "reason": "not in state", "token": "t", "diff": [{"field": "cidr_block", "new": "10.0.0.0/16"}]}
    ]});
    db.record_plan(&preview_run, &lease, &plan, None).await?;
    db.finish_run(
        &preview_run,
        &lease,
        byoc_model::RunStatus::Succeeded,
        None,
        None,
    )
    .await?;

    let shown = python(scratch.path(), READ_PLAN, &[&base, &admin, &preview_run])
        .context("reading the plan")?;
    assert_eq!(shown, "vpc create cidr_block");
    Ok(())
}
