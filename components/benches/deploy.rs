//! `cargo bench --workspace --bench deploy --profile dev`: a managed-mode environment (3
//! zones, one NAT gateway) deployed into fresh emulated accounts that answer every call
//! 100 ms late and make objects ready on AWS's schedule scaled down by one factor (NAT
//! gateway 100 s, EKS cluster 600 s, node group 180 s, divided by `SCALE_DOWN`). Side by side
//! in each round:
//! (a) byoc's deploy: the blueprint's graph through the engine and the providers;
//! (b) a naive sequential client: the same environment made call by call with the same SDK,
//!     each object waited for before the next call, polling on the same schedule as byoc;
//! (c) the AWS-imposed minimum: along the graph's longest chain, each object's readiness delay
//!     plus one call to create it and one to see it ready.
//! Goals: (a) <= 1.1x (c) and <= 0.7x (b). Then, on the deployed stack: a no-op redeploy, and
//! a refresh reading every resource at once against the slowest single read (goal <= 1.5).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use byoc_components::blueprint::environment;
use byoc_components::resources::cluster_leftovers;
use byoc_components::{Platform, PlatformOptions, RateLimits, WaitPolicy};
use byoc_engine::{Event, Graph, Resource, RetryPolicy, RunStatus, drift, refresh};
use byoc_model::EnvironmentConfig;
use byoc_testkit::{Emulator, EmulatorOptions};
use common::env::{Env, managed_config};

/// AWS's typical readiness times are divided by this (`BENCH_SCALE_DOWN`, default 100).
fn scale_down() -> f64 {
    std::env::var("BENCH_SCALE_DOWN")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100.0)
}
const LATENCY: Duration = Duration::from_millis(100);
/// (kind, the emulator's knob, AWS's typical seconds)
const READY: [(&str, &str, f64); 3] = [
    ("aws:ec2:NatGateway", "nat_gateway", 100.0),
    ("aws:eks:Cluster", "eks_cluster", 600.0),
    ("aws:eks:Nodegroup", "eks_nodegroup", 180.0),
];

/// How long `r` takes to be ready after its create, at `scale_down`.
fn delay(r: &Resource, scale_down: f64) -> Option<Duration> {
    READY
        .iter()
        .find(|(kind, ..)| *kind == r.kind)
        .map(|(.., secs)| Duration::from_secs_f64(secs / scale_down))
}

/// The least time anyone could deploy `graph` in: along its longest chain, each object's
/// delay plus one call to create it and one to see it ready (a sweep makes no call).
fn minimum(graph: &Graph, scale_down: f64) -> Duration {
    graph.critical_path(|r| match delay(r, scale_down) {
        Some(ready) => LATENCY * 2 + ready,
        None if r.kind == cluster_leftovers::KIND => Duration::ZERO,
        None => LATENCY,
    })
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let emulator = Emulator::start(&EmulatorOptions::default())?;
    let scale_down = scale_down();
    let by_kind: BTreeMap<&str, f64> = READY
        .iter()
        .map(|(_, knob, secs)| (*knob, secs / scale_down))
        .collect();
    emulator.configure(
        &serde_json::json!({"create_seconds_by_kind": by_kind, "latency_ms": LATENCY.as_millis().to_string()})
            .to_string(),
    )?;
    let mut config = serde_json::to_value(managed_config())?;
    config["az_count"] = 3.into();
    let config = EnvironmentConfig::from_value(&config)?;
    println!(
        "byoc-components deploy benchmark ({} cores, {} build): managed mode, 3 zones, one NAT gateway; every call {} ms late; ready after {by_kind:?} s (AWS's / {scale_down})",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        LATENCY.as_millis(),
    );
    rt.block_on(async {
        let sdk = common::default_account(emulator.endpoint(), RetryConfig::standard()).await;
        let wait = WaitPolicy::scaled(1.0 / scale_down);
        let platform = Platform::with_config(
            sdk,
            PlatformOptions {
                limits: RateLimits::default(),
                wait: wait.clone(),
                ..PlatformOptions::default()
            },
        );
        let graph = Graph::new(environment("bench-dev", &config)?)?;
        let least = minimum(&graph, scale_down);
        for round in 1..=3 {
            let env = Env::new(&platform, &emulator.fresh_account(), &format!("bench{round}-dev"));
            let naive = Env::new(&platform, &emulator.fresh_account(), &format!("naive{round}-dev"));
            // moto builds an account's default VPC and the like on its first request there,
            // which takes about a second and has no counterpart in AWS: done before timing.
            env.census().await;
            naive.census().await;
            // (all calls, those that are not reads)
            let calls = |account: &str| -> anyhow::Result<(u64, u64)> {
                let v: serde_json::Value =
                    serde_json::from_str(&emulator.actions(account, "byoc-deployer")?)?;
                let count = |writes: bool| {
                    v["actions"].as_object().map_or(0, |a| {
                        a.iter()
                            .filter(|(action, _)| !writes || !action.contains(":Describe"))
                            .filter_map(|(_, n)| n.as_u64())
                            .sum()
                    })
                };
                Ok((count(false), count(true)))
            };
            let before = (calls(&env.aws.account_id)?, calls(&naive.aws.account_id)?);

            let report = env.deploy(&config, "deploy").await;
            anyhow::ensure!(report.status == RunStatus::Succeeded, "{report:?}");
            let byoc = report.duration;
            let started = Instant::now();
            sequential::deploy(&naive.aws, &config, &wait).await?;
            let sequential = started.elapsed();

            let measured: BTreeMap<String, Duration> = env
                .events
                .events()
                .into_iter()
                .filter_map(|e| match e {
                    Event::StepSucceeded { resource, duration_ms, .. } => {
                        Some((resource, Duration::from_millis(duration_ms)))
                    }
                    _ => None,
                })
                .collect();
            let graph = Graph::new(environment(&env.stack, &config)?)?;
            let steps = graph.critical_path(|r| measured[&r.name]);
            let s = |d: Duration| d.as_secs_f64();
            let byoc_calls = calls(&env.aws.account_id)?.0 - before.0.0;
            let (all, writes) = calls(&naive.aws.account_id)?;
            let (sequential_calls, sequential_writes) = (all - before.1.0, writes - before.1.1);
            println!(
                "round {round}: byoc {:.2} s, sequential client {:.2} s, AWS-imposed minimum {:.2} s: byoc = {:.3}x the minimum (goal <= 1.1), {:.2}x the sequential client (goal <= 0.7); AWS calls: byoc {}, sequential {}",
                s(byoc),
                s(sequential),
                s(least),
                s(byoc) / s(least),
                s(byoc) / s(sequential),
                byoc_calls,
                sequential_calls,
            );
            // At AWS's own times the waits dominate: what the same calls would give there.
            let full = minimum(&graph, 1.0);
            let waits: f64 = READY.iter().map(|(.., secs)| secs).sum();
            let naive_full = waits + sequential_writes as f64 * LATENCY.as_secs_f64();
            println!(
                "  at AWS's own times (computed, not run): minimum {:.0} s, the sequential client at least {naive_full:.0} s (the waits and its {sequential_writes} calls that are not reads): {:.2}x",
                s(full),
                s(full) / naive_full,
            );
            println!(
                "  byoc's wall / the critical path of its steps as they ran: {:.3} (the executor's loss); that path: {}",
                s(byoc) / s(steps),
                chain(&graph, &measured)
                    .iter()
                    .map(|(name, d)| format!("{name} {:.2} s", s(*d)))
                    .collect::<Vec<_>>()
                    .join(" -> "),
            );
            reads(&emulator, &env, &config).await?;
            let report = env.destroy("destroy").await;
            anyhow::ensure!(report.status == RunStatus::Succeeded, "{report:?}");
        }
        Ok(())
    })
}

/// The longest chain of steps, each with its measured duration.
fn chain(graph: &Graph, measured: &BTreeMap<String, Duration>) -> Vec<(String, Duration)> {
    let mut finish: BTreeMap<&str, Duration> = BTreeMap::new();
    for r in graph.topological() {
        let start = graph
            .dependencies(&r.name)
            .iter()
            .map(|d| finish[d])
            .max()
            .unwrap_or_default();
        finish.insert(&r.name, start + measured[&r.name]);
    }
    let mut at = finish.iter().max_by_key(|(_, f)| **f).map(|(n, _)| *n);
    let mut out = Vec::new();
    while let Some(name) = at {
        out.push((name.to_string(), measured[name]));
        at = graph
            .dependencies(name)
            .into_iter()
            .max_by_key(|d| finish[d]);
    }
    out.reverse();
    out
}

/// A redeploy of the unchanged config, then the reads a refresh makes: each resource's
/// alone, one after another, and all of them as the refresh does.
async fn reads(emulator: &Emulator, env: &Env, config: &EnvironmentConfig) -> anyhow::Result<()> {
    let requests = || -> anyhow::Result<u64> {
        let v: serde_json::Value = serde_json::from_str(&emulator.stats()?)?;
        Ok(v["requests"].as_u64().unwrap_or(0))
    };
    let before = requests()?;
    let started = Instant::now();
    let report = env.deploy(config, "redeploy").await;
    let redeploy = started.elapsed();
    anyhow::ensure!(report.status == RunStatus::Succeeded, "{report:?}");
    let redeploy_calls = requests()? - before;
    let snapshot = env.store.snapshot();
    let retry = RetryPolicy::default();
    // A stack at rest: the account's request buckets (byoc's own limiter, 50 calls of
    // burst per service) have refilled since the deploy.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = requests()?;
    let started = Instant::now();
    let observed = refresh(
        &env.stack,
        &snapshot,
        &env.providers,
        None,
        &retry,
        &env.cancel,
    )
    .await?;
    let all = started.elapsed();
    let read_calls = requests()? - before;
    let mut slowest = (Duration::ZERO, String::new());
    for name in snapshot.resources.keys() {
        let mut one = snapshot.clone();
        one.resources.retain(|k, _| k == name);
        let started = Instant::now();
        refresh(&env.stack, &one, &env.providers, None, &retry, &env.cancel).await?;
        slowest = slowest.max((started.elapsed(), name.clone()));
    }
    anyhow::ensure!(drift(&snapshot, &observed, &env.providers).is_empty());
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "  no-op redeploy {:.1} ms, {redeploy_calls} AWS calls (planned against the recorded state); reading all {} resources ({read_calls} calls) {:.0} ms, slowest single read {:.0} ms ({}): ratio {:.2} (goal <= 1.5)",
        ms(redeploy),
        snapshot.resources.len(),
        ms(all),
        ms(slowest.0),
        slowest.1,
        all.as_secs_f64() / slowest.0.as_secs_f64(),
    );
    Ok(())
}

/// What a script would do: every call in turn, each object waited for before the next
/// call, with byoc's polling schedule so that only the order differs.
mod sequential {
    use std::time::{Duration, Instant};

    use aws_sdk_ec2::types::{AttributeBooleanValue, DomainType, NatGatewayState};
    use aws_sdk_eks::types::{
        ClusterStatus, NodegroupScalingConfig, NodegroupStatus, VpcConfigRequest,
    };
    use byoc_components::{Aws, WaitPolicy};
    use byoc_model::EnvironmentConfig;

    const MANAGED: &str = "arn:aws:iam::aws:policy/";

    async fn until(
        wait: &WaitPolicy,
        typical: u64,
        mut ready: impl AsyncFnMut() -> anyhow::Result<bool>,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        while !ready().await? {
            tokio::time::sleep(wait.delay(Duration::from_secs(typical), started.elapsed())).await;
        }
        Ok(())
    }

    fn on(value: bool) -> AttributeBooleanValue {
        AttributeBooleanValue::builder().value(value).build()
    }

    pub async fn deploy(
        aws: &Aws,
        config: &EnvironmentConfig,
        wait: &WaitPolicy,
    ) -> anyhow::Result<()> {
        let (ec2, iam, eks) = (&aws.ec2, &aws.iam, &aws.eks);
        let name = format!("naive-{}", aws.account_id);
        let vpc = ec2.create_vpc().cidr_block(&config.vpc_cidr).send().await?;
        let vpc = vpc
            .vpc()
            .and_then(|v| v.vpc_id())
            .unwrap_or_default()
            .to_string();
        ec2.modify_vpc_attribute()
            .vpc_id(&vpc)
            .enable_dns_support(on(true))
            .send()
            .await?;
        ec2.modify_vpc_attribute()
            .vpc_id(&vpc)
            .enable_dns_hostnames(on(true))
            .send()
            .await?;
        let igw = ec2.create_internet_gateway().send().await?;
        let igw = igw
            .internet_gateway()
            .and_then(|g| g.internet_gateway_id())
            .unwrap_or_default()
            .to_string();
        ec2.attach_internet_gateway()
            .internet_gateway_id(&igw)
            .vpc_id(&vpc)
            .send()
            .await?;
        let table = |vpc: String| async move {
            let t = ec2.create_route_table().vpc_id(vpc).send().await?;
            anyhow::Ok(
                t.route_table()
                    .and_then(|t| t.route_table_id())
                    .unwrap_or_default()
                    .to_string(),
            )
        };
        let public_table = table(vpc.clone()).await?;
        ec2.create_route()
            .route_table_id(&public_table)
            .destination_cidr_block("0.0.0.0/0")
            .gateway_id(&igw)
            .send()
            .await?;
        let mut public = Vec::new();
        let mut private = Vec::new();
        for s in config.subnets()? {
            let subnet = |cidr: String| {
                let (vpc, zone) = (vpc.clone(), s.zone.clone());
                async move {
                    let out = ec2
                        .create_subnet()
                        .vpc_id(vpc)
                        .cidr_block(cidr)
                        .availability_zone(zone)
                        .send()
                        .await?;
                    anyhow::Ok(
                        out.subnet()
                            .and_then(|s| s.subnet_id())
                            .unwrap_or_default()
                            .to_string(),
                    )
                }
            };
            let p = subnet(s.public.to_string()).await?;
            ec2.modify_subnet_attribute()
                .subnet_id(&p)
                .map_public_ip_on_launch(on(true))
                .send()
                .await?;
            ec2.associate_route_table()
                .route_table_id(&public_table)
                .subnet_id(&p)
                .send()
                .await?;
            public.push(p);
            private.push(subnet(s.private.to_string()).await?);
        }
        let eip = ec2
            .allocate_address()
            .domain(DomainType::Vpc)
            .send()
            .await?;
        let nat = ec2
            .create_nat_gateway()
            .subnet_id(&public[0])
            .allocation_id(eip.allocation_id().unwrap_or_default())
            .send()
            .await?;
        let nat = nat
            .nat_gateway()
            .and_then(|n| n.nat_gateway_id())
            .unwrap_or_default()
            .to_string();
        until(wait, 100, async || {
            let out = ec2
                .describe_nat_gateways()
                .nat_gateway_ids(&nat)
                .send()
                .await?;
            Ok(out.nat_gateways().first().and_then(|n| n.state())
                == Some(&NatGatewayState::Available))
        })
        .await?;
        for subnet in &private {
            let t = table(vpc.clone()).await?;
            ec2.create_route()
                .route_table_id(&t)
                .destination_cidr_block("0.0.0.0/0")
                .nat_gateway_id(&nat)
                .send()
                .await?;
            ec2.associate_route_table()
                .route_table_id(&t)
                .subnet_id(subnet)
                .send()
                .await?;
        }
        let role = |suffix: &'static str,
                    service: &'static str,
                    policies: &'static [&'static str]| {
            let name = format!("{name}-{suffix}");
            async move {
                let trust = serde_json::json!({"Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]});
                let out = iam
                    .create_role()
                    .role_name(&name)
                    .assume_role_policy_document(trust.to_string())
                    .send()
                    .await?;
                for p in policies {
                    iam.attach_role_policy()
                        .role_name(&name)
                        .policy_arn(format!("{MANAGED}{p}"))
                        .send()
                        .await?;
                }
                anyhow::Ok(out.role().map(|r| r.arn().to_string()).unwrap_or_default())
            }
        };
        let cluster_role =
            role("cluster", "eks.amazonaws.com", &["AmazonEKSClusterPolicy"]).await?;
        let node_role = role(
            "node",
            "ec2.amazonaws.com",
            &[
                "AmazonEKSWorkerNodePolicy",
                "AmazonEKS_CNI_Policy",
                "AmazonEC2ContainerRegistryReadOnly",
                "AmazonSSMManagedInstanceCore",
            ],
        )
        .await?;
        iam.create_instance_profile()
            .instance_profile_name(&name)
            .send()
            .await?;
        iam.add_role_to_instance_profile()
            .instance_profile_name(&name)
            .role_name(format!("{name}-node"))
            .send()
            .await?;
        eks.create_cluster()
            .name(&name)
            .version(&config.kubernetes_version)
            .role_arn(&cluster_role)
            .resources_vpc_config(
                VpcConfigRequest::builder()
                    .set_subnet_ids(Some(private.clone()))
                    .build(),
            )
            .send()
            .await?;
        let mut issuer = String::new();
        until(wait, 600, async || {
            let out = eks.describe_cluster().name(&name).send().await?;
            let cluster = out.cluster();
            issuer = cluster
                .and_then(|c| c.identity())
                .and_then(|i| i.oidc())
                .and_then(|o| o.issuer())
                .unwrap_or_default()
                .to_string();
            Ok(cluster.and_then(|c| c.status()) == Some(&ClusterStatus::Active))
        })
        .await?;
        iam.create_open_id_connect_provider()
            .url(issuer)
            .client_id_list("sts.amazonaws.com")
            .thumbprint_list("9e99a48a9960b14926bb7f3b02e22da2b0ab7280")
            .send()
            .await?;
        let ng = &config.node_group_config;
        eks.create_nodegroup()
            .cluster_name(&name)
            .nodegroup_name(&name)
            .node_role(&node_role)
            .set_subnets(Some(private))
            .set_instance_types(Some(ng.instance_types.clone()))
            .disk_size(ng.disk_size as i32)
            .scaling_config(
                NodegroupScalingConfig::builder()
                    .min_size(ng.min_size as i32)
                    .max_size(ng.max_size as i32)
                    .desired_size(ng.desired_size as i32)
                    .build(),
            )
            .send()
            .await?;
        until(wait, 180, async || {
            let out = eks
                .describe_nodegroup()
                .cluster_name(&name)
                .nodegroup_name(&name)
                .send()
                .await?;
            Ok(out.nodegroup().and_then(|g| g.status()) == Some(&NodegroupStatus::Active))
        })
        .await
    }
}
