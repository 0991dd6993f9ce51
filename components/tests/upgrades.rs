//! Day-2 changes of a managed environment in the emulator (issue 18, upgrades in place): a
//! Kubernetes version change upgrades the control plane one minor at a time, then the node
//! group, each update waited for; an instance-type change makes the new node group before
//! the old one goes, so the cluster never has none.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_sdk_eks::types::NodegroupStatus;
use byoc_components::RateLimits;
use byoc_components::blueprint::environment;
use byoc_engine::{Action, Graph, RunStatus, StateStore};
use byoc_model::EnvironmentConfig;
use byoc_testkit::{Emulator, EmulatorOptions};
use common::env::{Env, managed_config, platform};
use serde_json::Value;

fn config_at(version: &str) -> EnvironmentConfig {
    let mut config = managed_config();
    config.kubernetes_version = version.into();
    config
}

fn actions(plan: &byoc_engine::Plan) -> Vec<(String, Action)> {
    plan.steps
        .iter()
        .filter(|s| s.action != Action::NoOp)
        .map(|s| (s.resource.clone(), s.action))
        .collect()
}

/// The EKS update calls the emulator served for cluster `cluster`, in order: `("cluster",
/// version)` for UpdateClusterVersion, `("nodegroup", version)` for UpdateNodegroupVersion,
/// `("config", "")` for UpdateNodegroupConfig.
fn update_calls(emulator: &Emulator, cluster: &str) -> Vec<(String, String)> {
    let log: Value = serde_json::from_str(&emulator.requests("eks").unwrap()).unwrap();
    let prefix = format!("/clusters/{cluster}/");
    log["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["method"] == "POST")
        .filter_map(|r| {
            let path = r["path"].as_str()?.strip_prefix(&prefix)?;
            let body: Value = serde_json::from_str(r["body"].as_str().unwrap_or("{}")).ok()?;
            let version = body["version"].as_str().unwrap_or_default().to_string();
            if path == "updates" {
                Some(("cluster".to_string(), version))
            } else if path.ends_with("/update-version") {
                Some(("nodegroup".to_string(), version))
            } else if path.ends_with("/update-config") {
                Some(("config".to_string(), String::new()))
            } else {
                None
            }
        })
        .collect()
}

async fn versions(env: &Env) -> (String, String) {
    let eks = &env.aws.eks;
    let cluster = eks
        .describe_cluster()
        .name(&env.stack)
        .send()
        .await
        .unwrap();
    let ng_name = env.outputs("nodegroup-default")["name"]
        .as_str()
        .unwrap()
        .to_string();
    let ng = eks
        .describe_nodegroup()
        .cluster_name(&env.stack)
        .nodegroup_name(ng_name)
        .send()
        .await
        .unwrap();
    (
        cluster.cluster().unwrap().version().unwrap().to_string(),
        ng.nodegroup().unwrap().version().unwrap().to_string(),
    )
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_string(), b.to_string())
}

#[tokio::test]
async fn a_version_change_upgrades_the_cluster_one_minor_at_a_time_then_the_node_group()
-> anyhow::Result<()> {
    // Updates take a while, as on AWS: every wait is for a real UPDATING to end.
    let emulator = Emulator::start(&EmulatorOptions {
        update_seconds: Some(0.4),
        ..EmulatorOptions::default()
    })?;
    let platform = platform(emulator.endpoint(), RateLimits::default()).await;

    // One minor: one cluster update, then one node group update.
    let env = Env::new(&platform, &emulator.fresh_account(), "up-one");
    let report = env.deploy(&config_at("1.31"), "run-1").await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    assert_eq!(
        versions(&env).await,
        pair("1.31", "1.31"),
        "created at 1.31"
    );
    let plan = env.plan(&config_at("1.32"), "run-2").await;
    assert_eq!(
        actions(&plan),
        [
            ("cluster".to_string(), Action::Update),
            ("nodegroup-default".to_string(), Action::Update)
        ],
        "{}",
        plan.render()
    );
    let report = env.apply(&plan, env.providers.clone()).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    assert_eq!(
        update_calls(&emulator, "up-one"),
        [pair("cluster", "1.32"), pair("nodegroup", "1.32")]
    );
    assert_eq!(versions(&env).await, pair("1.32", "1.32"));
    // The updates EKS recorded ended Successful.
    let updates = env.aws.eks.list_updates().name("up-one").send().await?;
    assert_eq!(updates.update_ids().len(), 1);
    let update = env
        .aws
        .eks
        .describe_update()
        .name("up-one")
        .update_id(&updates.update_ids()[0])
        .send()
        .await?;
    assert_eq!(
        update.update().unwrap().status().map(|s| s.as_str()),
        Some("Successful")
    );
    assert_eq!(actions(&env.plan(&config_at("1.32"), "run-3").await), []);

    // A downgrade is refused when planned, before anything is asked of EKS.
    let snapshot = env.store.load().await?;
    let graph = Graph::new(environment(&env.stack, &config_at("1.31"))?)?;
    let error = byoc_engine::plan(&env.stack, "run-4", &graph, &snapshot, &env.providers, None)
        .expect_err("a downgrade is refused")
        .to_string();
    assert!(
        error.starts_with(
            "resource cluster (aws:eks:Cluster): version 1.32 -> 1.31: EKS cannot downgrade"
        ),
        "{error}"
    );
    assert_eq!(update_calls(&emulator, "up-one").len(), 2, "no new update");
    assert_eq!(versions(&env).await, pair("1.32", "1.32"));

    // Two minors: two cluster updates (one minor each), then the node group's.
    let env = Env::new(&platform, &emulator.fresh_account(), "up-two");
    let report = env.deploy(&config_at("1.31"), "run-1").await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    let plan = env.plan(&config_at("1.33"), "run-2").await;
    let cluster = plan.steps.iter().find(|s| s.resource == "cluster").unwrap();
    assert_eq!(cluster.action, Action::Update);
    assert!(
        plan.render().contains("1.33"),
        "the plan shows the version: {}",
        plan.render()
    );
    let report = env.apply(&plan, env.providers.clone()).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    assert_eq!(
        update_calls(&emulator, "up-two"),
        [
            pair("cluster", "1.32"),
            pair("cluster", "1.33"),
            pair("nodegroup", "1.33")
        ]
    );
    assert_eq!(versions(&env).await, pair("1.33", "1.33"));

    // Scaling is an in-place config update, waited for.
    let mut scaled = config_at("1.33");
    scaled.node_group_config.desired_size = 3;
    let report = env.deploy(&scaled, "run-3").await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    assert_eq!(
        update_calls(&emulator, "up-two").last(),
        Some(&pair("config", ""))
    );
    Ok(())
}

/// What one poll of the node group list saw: each group's status (`None`: listed, but gone
/// by the time it was described).
type Sample = BTreeMap<String, Option<NodegroupStatus>>;

#[tokio::test]
async fn an_instance_type_change_never_leaves_the_cluster_without_a_node_group()
-> anyhow::Result<()> {
    let emulator = Emulator::start(&EmulatorOptions {
        create_seconds: 1.0,
        delete_seconds: 1.0,
        ..EmulatorOptions::default()
    })?;
    let platform = platform(emulator.endpoint(), RateLimits::default()).await;
    let env = Env::new(&platform, &emulator.fresh_account(), "swap-dev");
    let before = managed_config();
    let report = env.deploy(&before, "run-1").await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    let old = env.outputs("nodegroup-default")["name"]
        .as_str()
        .unwrap()
        .to_string();

    let mut after = before.clone();
    after.node_group_config.instance_types = vec!["m7i.large".into()];
    let plan = env.plan(&after, "run-2").await;
    let steps: Vec<_> = plan
        .steps
        .iter()
        .filter(|s| s.action != Action::NoOp)
        .map(|s| (s.resource.as_str(), s.action, s.depose))
        .collect();
    assert_eq!(
        steps,
        [
            ("nodegroup-default", Action::Replace, true),
            ("nodegroup-default~deposed", Action::Replace, false)
        ],
        "the new group first, then the old one deleted: {}",
        plan.render()
    );
    // The node group is guarded, but a replacement that makes the new one first keeps the
    // service up: no approval needed.
    assert_eq!(plan.needs_approval, Vec::<String>::new());

    // Watch the node group list through the SDK every 100 ms while the deploy runs.
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (eks, cluster, done) = (env.aws.eks.clone(), env.stack.clone(), done.clone());
        tokio::spawn(async move {
            let mut samples: Vec<Sample> = Vec::new();
            while !done.load(Ordering::SeqCst) {
                let listed = eks.list_nodegroups().cluster_name(&cluster).send().await;
                let mut sample = Sample::new();
                for name in listed.unwrap().nodegroups() {
                    let described = eks
                        .describe_nodegroup()
                        .cluster_name(&cluster)
                        .nodegroup_name(name)
                        .send()
                        .await;
                    let status = described
                        .ok()
                        .and_then(|d| d.nodegroup().and_then(|g| g.status().cloned()));
                    sample.insert(name.clone(), status);
                }
                samples.push(sample);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            samples
        })
    };
    let report = env.apply(&plan, env.providers.clone()).await;
    done.store(true, Ordering::SeqCst);
    let samples = watcher.await?;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");

    let new = env.outputs("nodegroup-default")["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new, old, "the new group has a name of its own");
    assert!(samples.len() >= 10, "{} samples", samples.len());
    let active = |s: &Sample, name: &str| s.get(name) == Some(&Some(NodegroupStatus::Active));
    for (i, s) in samples.iter().enumerate() {
        assert!(!s.is_empty(), "sample {i}: no node group at all");
        // The old group leaves (deleting, or gone) only with the new one ACTIVE.
        let old_leaving = !active(s, &old);
        assert!(
            !old_leaving || active(s, &new),
            "sample {i}: the old group is leaving and the new one is not ACTIVE: {s:?}"
        );
    }
    assert!(
        samples
            .iter()
            .any(|s| s.get(&new) == Some(&Some(NodegroupStatus::Creating))),
        "the watch saw the new group being created: {samples:?}"
    );
    assert!(
        samples
            .iter()
            .any(|s| s.get(&old) == Some(&Some(NodegroupStatus::Deleting))),
        "the watch saw the old group being deleted: {samples:?}"
    );
    let listed = env
        .aws
        .eks
        .list_nodegroups()
        .cluster_name("swap-dev")
        .send()
        .await?;
    assert_eq!(listed.nodegroups(), std::slice::from_ref(&new));
    let g = env
        .aws
        .eks
        .describe_nodegroup()
        .cluster_name("swap-dev")
        .nodegroup_name(&new)
        .send()
        .await?;
    assert_eq!(g.nodegroup().unwrap().instance_types(), ["m7i.large"]);
    assert!(
        env.store
            .snapshot()
            .resources
            .keys()
            .all(|k| !k.ends_with("~deposed"))
    );
    assert_eq!(actions(&env.plan(&after, "run-3").await), []);
    Ok(())
}

/// A run interrupted while the cluster is UPDATING (its first minor of two): the next run
/// finds the update in progress, waits for it, and goes on from the version the cluster then
/// runs; no update is asked for twice.
#[tokio::test]
async fn an_upgrade_interrupted_mid_update_is_continued_by_the_next_run() -> anyhow::Result<()> {
    let emulator = Emulator::start(&EmulatorOptions {
        update_seconds: Some(1.5),
        ..EmulatorOptions::default()
    })?;
    let platform = platform(emulator.endpoint(), RateLimits::default()).await;
    let mut env = Env::new(&platform, &emulator.fresh_account(), "up-cut");
    let report = env.deploy(&config_at("1.31"), "run-1").await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");

    let plan = env.plan(&config_at("1.33"), "run-2").await;
    let interrupt = async {
        loop {
            let c = env.aws.eks.describe_cluster().name("up-cut").send().await;
            let updating = c.ok().and_then(|c| c.cluster()?.status().cloned())
                == Some(aws_sdk_eks::types::ClusterStatus::Updating);
            if updating {
                env.cancel.cancel();
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let (report, ()) = tokio::join!(env.apply(&plan, env.providers.clone()), interrupt);
    assert_ne!(report.status, RunStatus::Succeeded, "{report:?}");
    assert_eq!(update_calls(&emulator, "up-cut"), [pair("cluster", "1.32")]);

    env.cancel = byoc_engine::CancellationToken::new();
    let report = env.deploy(&config_at("1.33"), "run-3").await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    assert_eq!(
        update_calls(&emulator, "up-cut"),
        [
            pair("cluster", "1.32"),
            pair("cluster", "1.33"),
            pair("nodegroup", "1.33")
        ]
    );
    assert_eq!(versions(&env).await, pair("1.33", "1.33"));
    assert!(env.store.snapshot().pending.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_new_vpc_replaces_the_managed_cluster_old_first_with_approval() -> anyhow::Result<()> {
    let emulator = Emulator::shared();
    let platform = platform(emulator.endpoint(), RateLimits::default()).await;
    let env = Env::new(&platform, &emulator.fresh_account(), "move-dev");
    let before = managed_config();
    let report = env.deploy(&before, "run-1").await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    let cluster_subnets = || async {
        let out = env
            .aws
            .eks
            .describe_cluster()
            .name(&env.stack)
            .send()
            .await?;
        let vpc = out.cluster().and_then(|c| c.resources_vpc_config());
        let mut ids = vpc.map(|v| v.subnet_ids().to_vec()).unwrap_or_default();
        ids.sort();
        anyhow::Ok(ids)
    };
    let private = |env: &Env| {
        let mut ids: Vec<String> = env
            .store
            .snapshot()
            .resources
            .values()
            .filter(|r| r.name.starts_with("subnet-private-"))
            .map(|r| r.physical_id.clone())
            .collect();
        ids.sort();
        ids
    };
    let old_subnets = cluster_subnets().await?;
    assert_eq!(old_subnets, private(&env));

    // A new VPC range replaces everything in it. The cluster's name is fixed, so a second
    // one cannot be made beside it: its old object goes first, and the node group's (which
    // would be made new-first on its own) before it. All of that needs approval.
    let mut after = before.clone();
    after.vpc_cidr = "10.20.0.0/16".into();
    let plan = env.plan(&after, "run-2").await;
    let text = plan.render();
    for line in ["-/+ cluster ", "-/+ nodegroup-default ", "+/- vpc "] {
        assert!(text.contains(line), "{line}:\n{text}");
    }
    let mut needs = plan.needs_approval.clone();
    needs.sort();
    assert_eq!(
        needs,
        ["cluster", "nodegroup-default", "oidc-provider", "vpc"],
        "{text}"
    );
    let report = env.apply(&plan, env.providers.clone()).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    assert_ne!(private(&env), old_subnets);
    assert_eq!(
        cluster_subnets().await?,
        private(&env),
        "a new cluster, in the new subnets"
    );
    assert_eq!(env.census().await, common::env::expected_managed());
    assert_eq!(actions(&env.plan(&after, "run-3").await), []);
    let report = env.destroy("run-4").await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    assert_eq!(env.census().await, common::env::empty_census());
    Ok(())
}
