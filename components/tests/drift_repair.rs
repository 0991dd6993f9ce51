//! Drift repaired against the emulator: a NAT gateway and a route deleted behind byoc's back
//! are found by a refresh, shown as "deleted outside byoc", and made again by a deploy that
//! plans against what the refresh saw.

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
    env.destroy("run-3").await;
    Ok(())
}
