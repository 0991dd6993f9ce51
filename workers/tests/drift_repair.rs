//! The whole drift story against the emulator, through a worker with the AWS blueprint: a
//! NAT gateway and a route deleted behind byoc's back are found by a scheduled check, and the
//! repair deploy it queues (the environment asks for repairs) makes them again.

mod common;

use byoc_model::{RunKind, RunStatus};
use byoc_stacks::now_ms;
use byoc_workers::schedule::{ScheduleConfig, tick};
use common::AwsWorld;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn a_scheduled_check_finds_what_was_deleted_and_its_repair_makes_it_again()
-> anyhow::Result<()> {
    let world = AwsWorld::new(json!({
        "region": common::REGION, "eks_mode": "managed", "az_count": 2, "nat_mode": "per_az",
        "drift_check": {"every_minutes": 5, "repair": true},
    }))
    .await?;
    let (db, worker, stack, aws) = (&world.db, &world.worker, world.stack, &world.console);
    assert_eq!(world.run(RunKind::Deploy).await?.1, RunStatus::Succeeded);

    // Someone deletes the NAT gateway of zone a and zone b's default route in the console.
    let (nat, table) = (world.id("nat-a").await?, world.id("rt-private-b").await?);
    aws.ec2
        .delete_route()
        .route_table_id(&table)
        .destination_cidr_block("0.0.0.0/0")
        .send()
        .await?;
    aws.ec2
        .delete_nat_gateway()
        .nat_gateway_id(&nat)
        .send()
        .await?;

    // The scheduler's round queues one check; it finds both and queues the repair.
    let round = tick(
        db,
        &world.queue,
        &ScheduleConfig::default(),
        now_ms() + 6 * 60_000,
    )
    .await?;
    assert_eq!(round.queued.len(), 1, "{round:?}");
    let check = &round.queued[0];
    assert_eq!(check.kind, RunKind::Refresh);
    assert_eq!(
        worker.execute(check.id.as_str()).await?,
        RunStatus::Succeeded
    );
    let summary = db.run(check.id.as_str()).await?.summary.unwrap();
    let mut drifted: Vec<&str> = summary["drift"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["resource"].as_str())
        .collect();
    drifted.sort();
    assert_eq!(drifted, ["nat-a", "route-private-b-default"], "{summary}");

    let repair = db
        .runs_of(stack)
        .await?
        .into_iter()
        .find(|r| r.kind == RunKind::Deploy && r.requested_by == "schedule")
        .expect("the check queued a repair deploy");
    assert_eq!(
        worker.execute(repair.id.as_str()).await?,
        RunStatus::Succeeded
    );
    let state = db
        .snapshot(stack)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let new_nat = state.resources["nat-a"].physical_id.clone();
    assert_ne!(new_nat, nat);
    let live = aws
        .ec2
        .describe_nat_gateways()
        .nat_gateway_ids(&new_nat)
        .send()
        .await?;
    assert_eq!(
        live.nat_gateways()[0].state().map(|s| s.as_str()),
        Some("available")
    );
    let routes = aws
        .ec2
        .describe_route_tables()
        .route_table_ids(&table)
        .send()
        .await?;
    assert!(
        routes
            .route_tables()
            .iter()
            .flat_map(|t| t.routes())
            .any(|r| r.destination_cidr_block() == Some("0.0.0.0/0")),
        "the default route is back"
    );

    // Nothing left to repair; then clean up.
    let (again, _) = db.request_run(stack, RunKind::Refresh, "alice").await?;
    assert_eq!(
        worker.execute(again.id.as_str()).await?,
        RunStatus::Succeeded
    );
    assert_eq!(
        db.run(again.id.as_str()).await?.summary.unwrap()["drift"],
        json!([])
    );
    let (destroy, _) = db.request_run(stack, RunKind::Destroy, "alice").await?;
    assert_eq!(
        worker.execute(destroy.id.as_str()).await?,
        RunStatus::Succeeded
    );
    Ok(())
}
