//! A cluster replacement against the emulator, through a worker with the AWS blueprint: a
//! deploy that would replace the cluster (managed -> auto mode) is refused, naming it, and
//! changes nothing; the preview's plan, deployed by its id, replaces it.

mod common;

use byoc_model::{RunKind, RunStatus};
use common::AwsWorld;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_replacement_is_refused_then_applied_as_an_approved_plan() -> anyhow::Result<()> {
    let config = |mode: &str| json!({"region": common::REGION, "eks_mode": mode, "az_count": 2});
    let world = AwsWorld::new(config("managed")).await?;
    assert_eq!(world.run(RunKind::Deploy).await?.1, RunStatus::Succeeded);
    let created_at = || async {
        let out = world
            .console
            .eks
            .describe_cluster()
            .name("acme-dev")
            .send()
            .await?;
        let cluster = out.cluster().expect("the cluster");
        anyhow::Ok((
            cluster.created_at().map(|t| t.to_millis()).transpose()?,
            cluster.compute_config().and_then(|c| c.enabled()),
        ))
    };
    let before = created_at().await?;

    world.save(config("auto")).await?;
    let (refused, status) = world.run(RunKind::Deploy).await?;
    assert_eq!(status, RunStatus::Failed);
    let error = world.db.run(&refused).await?.error.unwrap_or_default();
    assert!(
        error.contains("cluster") && error.contains("--plan"),
        "{error}"
    );
    assert_eq!(created_at().await?, before, "the cluster is untouched");

    let (preview, status) = world.run(RunKind::Preview).await?;
    assert_eq!(status, RunStatus::Succeeded);
    let plan = world.db.run_plan(&preview).await?.expect("a plan");
    let needs: Vec<&str> = plan["needs_approval"]
        .as_array()
        .expect("needs_approval")
        .iter()
        .filter_map(|n| n.as_str())
        .collect();
    assert!(needs.contains(&"cluster"), "{needs:?}");
    let (approved, _) = world
        .db
        .request_approved_deploy(world.stack, &preview, "alice")
        .await?;
    assert_eq!(
        world.worker.execute(approved.id.as_str()).await?,
        RunStatus::Succeeded
    );
    let after = created_at().await?;
    assert_ne!(after.0, before.0, "a new cluster");
    assert_eq!(after.1, Some(true), "in auto mode");
    let (_, status) = world.run(RunKind::Destroy).await?;
    assert_eq!(status, RunStatus::Succeeded);
    Ok(())
}
