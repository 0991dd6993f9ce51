//! Drift repaired against the emulator: a NAT gateway and a route deleted behind byoc's back
//! are found by a refresh, shown as "deleted outside byoc", and made again by a deploy that
//! plans against what the refresh saw; a node group scaled by hand is set back.

mod common;

use byoc_components::RateLimits;
use byoc_components::blueprint::environment;
use byoc_engine::{
    Action, CancellationToken, Graph, RetryPolicy, RunStatus, StateStore, drift, plan, refresh,
};
use byoc_testkit::Emulator;
use common::env::{Env, expected_managed, managed_config, platform};

#[tokio::test]
async fn what_is_deleted_outside_byoc_is_found_and_made_again() -> anyhow::Result<()> {
    let emulator = Emulator::shared();
    let platform = platform(emulator.endpoint(), RateLimits::default()).await;
    let env = Env::new(&platform, &emulator.fresh_account(), "drift-dev");
    let config = managed_config();
    let report = env.deploy(&config, "run-1").await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");

    // Someone deletes the NAT gateway and a private default route in the console.
    let (nat, table) = (env.id("nat-a"), env.id("rt-private-a"));
    let ec2 = &env.aws.ec2;
    ec2.delete_route()
        .route_table_id(&table)
        .destination_cidr_block("0.0.0.0/0")
        .send()
        .await?;
    ec2.delete_nat_gateway().nat_gateway_id(&nat).send().await?;

    let snapshot = env.store.load().await?;
    let cancel = CancellationToken::new();
    let retry = RetryPolicy::default();
    let observed = refresh(&env.stack, &snapshot, &env.providers, None, &retry, &cancel).await?;
    let mut drifted: Vec<String> = drift(&snapshot, &observed, &env.providers)
        .into_iter()
        .map(|d| d.resource)
        .collect();
    drifted.sort();
    assert_eq!(drifted, ["nat-a", "route-private-a-default"]);

    let graph = Graph::new(environment(&env.stack, &config)?)?;
    let repair = plan(
        &env.stack,
        "run-2",
        &graph,
        &snapshot,
        &env.providers,
        Some(&observed),
    )?;
    for name in ["nat-a", "route-private-a-default"] {
        let step = repair
            .steps
            .iter()
            .find(|s| s.resource == name && s.action == Action::Create)
            .unwrap_or_else(|| panic!("{name} is made again:\n{}", repair.render()));
        assert_eq!(step.reason, "deleted outside byoc");
    }
    let report = env.apply(&repair, env.providers.clone()).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    assert_eq!(env.census().await, expected_managed());
    let new_nat = env.id("nat-a");
    assert_ne!(new_nat, nat);
    let routes = ec2
        .describe_route_tables()
        .route_table_ids(&table)
        .send()
        .await?;
    let default = routes
        .route_tables()
        .iter()
        .flat_map(|t| t.routes())
        .find(|r| r.destination_cidr_block() == Some("0.0.0.0/0"))
        .and_then(|r| r.nat_gateway_id().map(str::to_string));
    assert_eq!(default, Some(new_nat), "the route leads to the new NAT");

    // Nothing more to repair.
    let snapshot = env.store.load().await?;
    let observed = refresh(&env.stack, &snapshot, &env.providers, None, &retry, &cancel).await?;
    assert!(drift(&snapshot, &observed, &env.providers).is_empty());

    // Someone scales the node group by hand: the repair sets it back, starting from what is
    // there (the recorded and desired sizes agree; only the observed one differs).
    let group = env.outputs("nodegroup-default")["name"]
        .as_str()
        .unwrap()
        .to_string();
    let scale = aws_sdk_eks::types::NodegroupScalingConfig::builder()
        .desired_size(4)
        .min_size(1)
        .max_size(4)
        .build();
    env.aws
        .eks
        .update_nodegroup_config()
        .cluster_name(&env.stack)
        .nodegroup_name(&group)
        .scaling_config(scale)
        .send()
        .await?;
    let desired_size = || async {
        let out = env
            .aws
            .eks
            .describe_nodegroup()
            .cluster_name(&env.stack)
            .nodegroup_name(&group)
            .send()
            .await?;
        let scaling = out.nodegroup().and_then(|g| g.scaling_config());
        anyhow::Ok(scaling.and_then(|s| s.desired_size()))
    };
    assert_eq!(desired_size().await?, Some(4));
    let snapshot = env.store.load().await?;
    let observed = refresh(&env.stack, &snapshot, &env.providers, None, &retry, &cancel).await?;
    let repair = plan(
        &env.stack,
        "run-3",
        &graph,
        &snapshot,
        &env.providers,
        Some(&observed),
    )?;
    let step = repair
        .steps
        .iter()
        .find(|s| s.resource == "nodegroup-default")
        .unwrap();
    assert_eq!(step.action, Action::Update, "{}", repair.render());
    assert_eq!(step.reason, "changed outside byoc: scaling");
    let report = env.apply(&repair, env.providers.clone()).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    assert_eq!(desired_size().await?, Some(2), "set back");
    env.destroy("run-4").await;
    Ok(())
}
