//! The environment blueprint deployed into an emulated tenant account (111111111111-style
//! fresh accounts) through the assumed role.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_ec2::types::Filter;
use byoc_components::RateLimits;
use byoc_components::blueprint::environment;
use byoc_engine::{Action, RunStatus, base_name};
use byoc_testkit::{Emulator, EmulatorOptions};
use common::env::{
    CrashAfterCreate, CrashPoint, Env, LeftoverTags, empty_census, expected_managed,
    leave_leftovers, managed_config, platform,
};
use serde_json::Value;

fn actions(plan: &byoc_engine::Plan) -> Vec<(String, Action)> {
    plan.steps
        .iter()
        .filter(|s| s.action != Action::NoOp)
        .map(|s| (s.resource.clone(), s.action))
        .collect()
}

#[tokio::test]
async fn managed_environment_deploys_redeploys_scales_and_destroys() -> anyhow::Result<()> {
    let emulator = Emulator::shared();
    let platform = platform(emulator.endpoint(), RateLimits::default()).await;
    let env = Env::new(&platform, &emulator.fresh_account(), "acme-dev");
    let mut config = managed_config();

    let report = env.deploy(&config, "run-1").await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    assert_eq!(env.census().await, expected_managed());

    // Wiring: DNS on the VPC, subnets in distinct zones, default routes to IGW and NAT.
    let ec2 = &env.aws.ec2;
    let vpc = env.id("vpc");
    let dns = ec2
        .describe_vpc_attribute()
        .vpc_id(&vpc)
        .attribute(aws_sdk_ec2::types::VpcAttributeName::EnableDnsHostnames)
        .send()
        .await?;
    assert_eq!(
        dns.enable_dns_hostnames().and_then(|v| v.value()),
        Some(true)
    );
    let private: Vec<String> = ["subnet-private-a", "subnet-private-b"]
        .iter()
        .map(|n| env.id(n))
        .collect();
    let subnets = ec2
        .describe_subnets()
        .set_subnet_ids(Some(private.clone()))
        .send()
        .await?;
    let zones: BTreeSet<&str> = subnets
        .subnets()
        .iter()
        .filter_map(|s| s.availability_zone())
        .collect();
    assert_eq!(zones.len(), 2, "private subnets in distinct zones");
    for s in subnets.subnets() {
        assert_eq!(s.vpc_id(), Some(vpc.as_str()));
        let tags: Vec<(&str, &str)> = s
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?, t.value()?)))
            .collect();
        assert!(
            tags.contains(&("kubernetes.io/role/internal-elb", "1")),
            "{tags:?}"
        );
        assert!(
            tags.contains(&("karpenter.sh/discovery", "acme-dev")),
            "{tags:?}"
        );
        assert!(tags.contains(&("byoc:managed-by", "byoc")), "{tags:?}");
        assert!(tags.contains(&("team", "platform")), "{tags:?}");
    }
    let default_route = |table: String| async move {
        let out = env_route_tables(ec2, &table).await;
        out.into_iter()
            .find(|(dest, _)| dest == "0.0.0.0/0")
            .map(|(_, target)| target)
    };
    assert_eq!(
        default_route(env.id("rt-public")).await,
        Some(env.id("igw"))
    );
    assert_eq!(
        default_route(env.id("rt-private-b")).await,
        Some(env.id("nat-a"))
    );

    // The node group runs in the private subnets, with the node role; the roles carry the
    // AWS managed policies.
    let ng = env
        .aws
        .eks
        .describe_nodegroup()
        .cluster_name("acme-dev")
        .nodegroup_name(env.outputs("nodegroup-default")["name"].as_str().unwrap())
        .send()
        .await?;
    let ng = ng.nodegroup().unwrap();
    let ng_subnets: BTreeSet<&String> = ng.subnets().iter().collect();
    assert_eq!(ng_subnets, private.iter().collect());
    assert_eq!(ng.node_role(), env.outputs("node-role")["arn"].as_str());
    let attached = env
        .aws
        .iam
        .list_attached_role_policies()
        .role_name("byoc-acme-dev-node")
        .send()
        .await?;
    let names: BTreeSet<&str> = attached
        .attached_policies()
        .iter()
        .filter_map(|p| p.policy_name())
        .collect();
    assert!(
        names.contains("AmazonEKSWorkerNodePolicy") && names.contains("AmazonEKS_CNI_Policy"),
        "{names:?}"
    );
    let oidc = env.outputs("oidc-provider");
    assert!(
        oidc["arn"]
            .as_str()
            .unwrap()
            .contains(":oidc-provider/oidc.eks."),
        "{oidc}"
    );

    // Redeploying the same config changes nothing.
    let again = env.plan(&config, "run-2").await;
    assert_eq!(actions(&again), [], "{}", again.render());

    // Scaling the node group is one in-place update.
    config.node_group_config.desired_size = 3;
    let scale = env.plan(&config, "run-3").await;
    assert_eq!(
        actions(&scale),
        [("nodegroup-default".to_string(), Action::Update)]
    );
    let report = env.apply(&scale, env.providers.clone()).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    let ng = env
        .aws
        .eks
        .describe_nodegroup()
        .cluster_name("acme-dev")
        .nodegroup_name(env.outputs("nodegroup-default")["name"].as_str().unwrap())
        .send()
        .await?;
    assert_eq!(
        ng.nodegroup()
            .unwrap()
            .scaling_config()
            .unwrap()
            .desired_size(),
        Some(3)
    );

    // A new VPC CIDR replaces the network, and the plan says so.
    let mut moved = config.clone();
    moved.vpc_cidr = "10.1.0.0/16".into();
    let replan = env.plan(&moved, "run-4").await;
    let vpc_step = replan.steps.iter().find(|s| s.resource == "vpc").unwrap();
    assert_eq!(vpc_step.action, Action::Replace);
    assert!(
        replan.render().contains("cidr_block"),
        "{}",
        replan.render()
    );

    let report = env.destroy("run-5").await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    assert_eq!(env.census().await, empty_census());
    assert!(env.store.snapshot().resources.is_empty());
    Ok(())
}

/// `(destination, target)` of each route of a table.
async fn env_route_tables(ec2: &aws_sdk_ec2::Client, table: &str) -> Vec<(String, String)> {
    let out = ec2
        .describe_route_tables()
        .route_table_ids(table)
        .send()
        .await
        .unwrap();
    out.route_tables()[0]
        .routes()
        .iter()
        .map(|r| {
            let target = r.gateway_id().or(r.nat_gateway_id()).unwrap_or_default();
            (
                r.destination_cidr_block().unwrap_or_default().to_string(),
                target.to_string(),
            )
        })
        .collect()
}

/// Kill the run just after each create call (one resource at a time), resume with a new
/// executor from the journal: every object is adopted, none is made twice.
#[tokio::test]
async fn crash_after_each_create_resumes_without_duplicates() -> anyhow::Result<()> {
    let emulator = Emulator::shared();
    let platform = platform(emulator.endpoint(), RateLimits::default()).await;
    let mut env = Env::new(&platform, &emulator.fresh_account(), "crash-dev");
    env.parallelism = Some(1);
    let config = managed_config();
    let resources = environment("crash-dev", &config)?;

    let kinds: BTreeSet<&str> = resources.iter().map(|r| r.kind.as_str()).collect();
    let mut crashed_at = Vec::new();
    for round in 0..resources.len() {
        let plan = env.plan(&config, &format!("run-{round}")).await;
        let crash = Arc::new(CrashPoint::default());
        let mut providers = env.providers.clone();
        for kind in &kinds {
            let inner = env.providers.get(kind).unwrap().clone();
            providers = providers.with(
                *kind,
                Arc::new(CrashAfterCreate {
                    inner,
                    crash: crash.clone(),
                }),
            );
        }
        tokio::select! {
            report = env.apply(&plan, providers) => panic!("round {round} ended without a create: {report:?}"),
            _ = crash.crashed.notified() => crashed_at.push(crash.resource()),
        }
    }
    crashed_at.sort();
    crashed_at.dedup();
    assert_eq!(
        crashed_at.len(),
        resources.len(),
        "every create was interrupted once"
    );
    let report = env.deploy(&config, "run-final").await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    assert_eq!(
        env.census().await,
        expected_managed(),
        "no duplicates, nothing missing"
    );
    let snapshot = env.store.snapshot();
    let names: BTreeSet<&str> = snapshot.resources.keys().map(|k| base_name(k)).collect();
    assert_eq!(names.len(), resources.len());
    assert!(snapshot.pending.is_empty(), "{:?}", snapshot.pending);
    assert_eq!(actions(&env.plan(&config, "run-check").await), []);

    let report = env.destroy("run-destroy").await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    assert_eq!(env.census().await, empty_census());
    Ok(())
}

#[tokio::test]
async fn deploy_converges_under_20_percent_throttling() -> anyhow::Result<()> {
    let emulator = Emulator::start(&EmulatorOptions {
        throttle_rate: 0.2,
        seed: Some(3),
        ..EmulatorOptions::default()
    })?;
    let platform = platform(emulator.endpoint(), RateLimits::default()).await;
    let env = Env::new(&platform, &emulator.fresh_account(), "busy-dev");
    let report = env.deploy(&managed_config(), "run-1").await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    emulator.configure(r#"{"throttle_rate": 0}"#)?;
    assert_eq!(env.census().await, expected_managed());
    let stats: Value = serde_json::from_str(&emulator.stats()?)?;
    assert!(stats["throttled"].as_u64().unwrap() >= 3, "{stats}");
    // The shared limiter slowed down for the throttled services.
    let key = byoc_components::limiter::BucketKey {
        account: env.aws.account_id.clone(),
        region: env.aws.region.clone(),
        service: byoc_components::Service::Ec2,
    };
    assert!(platform.limiter().rate(&key) <= RateLimits::default().ec2);
    Ok(())
}

#[tokio::test]
async fn access_denied_names_what_to_check() -> anyhow::Result<()> {
    let emulator = Emulator::shared();
    let account = emulator.fresh_account();
    let role = format!("arn:aws:iam::{account}:role/byoc-deployer");
    emulator.configure(&format!(r#"{{"deny_assume_role": ["{role}"]}}"#))?;
    let platform = platform(emulator.endpoint(), RateLimits::default()).await;
    let env = Env::new(&platform, &account, "denied-dev");
    let report = env.deploy(&managed_config(), "run-1").await;
    emulator.configure(r#"{"deny_assume_role": []}"#)?;
    assert_eq!(report.status, RunStatus::Failed);
    let (_, error) = &report.failed[0];
    for needle in [
        role.as_str(),
        "AccessDenied",
        "trust stack",
        "ExternalId",
        account.as_str(),
    ] {
        assert!(error.contains(needle), "{needle:?} missing from: {error}");
    }
    // It failed at once (a permanent error), and nothing was recorded as created.
    assert!(env.store.snapshot().resources.is_empty());
    Ok(())
}

/// Auto Mode: the cluster request carries compute, block storage and load balancing. moto
/// accepts and ignores these fields, so the test reads what was sent.
#[tokio::test]
async fn auto_mode_builds_the_auto_mode_cluster_request() -> anyhow::Result<()> {
    let emulator = Emulator::shared();
    let platform = platform(emulator.endpoint(), RateLimits::default()).await;
    let env = Env::new(&platform, &emulator.fresh_account(), "auto-dev");
    let config =
        byoc_model::EnvironmentConfig::from_value(&serde_json::json!({"region": "us-east-1"}))?;
    let report = env.deploy(&config, "run-1").await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");

    let log: Value = serde_json::from_str(&emulator.requests("eks")?)?;
    let create = log["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["method"] == "POST" && r["path"] == "/clusters")
        .map(|r| serde_json::from_str::<Value>(r["body"].as_str().unwrap()).unwrap())
        .find(|body| body["name"] == "auto-dev")
        .expect("a CreateCluster request for auto-dev");
    assert_eq!(create["computeConfig"]["enabled"], true);
    assert_eq!(
        create["computeConfig"]["nodePools"],
        serde_json::json!(["general-purpose", "system"])
    );
    assert_eq!(
        create["computeConfig"]["nodeRoleArn"],
        env.outputs("node-role")["arn"]
    );
    assert_eq!(create["storageConfig"]["blockStorage"]["enabled"], true);
    assert_eq!(
        create["kubernetesNetworkConfig"]["elasticLoadBalancing"]["enabled"],
        true
    );
    assert_eq!(create["bootstrapSelfManagedAddons"], false);
    assert_eq!(
        create["accessConfig"]["authenticationMode"],
        "API_AND_CONFIG_MAP"
    );
    assert_eq!(create["tags"]["byoc:stack"], "auto-dev");
    // No node group in auto mode.
    assert_eq!(env.census().await["eks_nodegroup"], 0);

    let report = env.destroy("run-2").await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    let census = env.census().await;
    assert!(census.values().all(|n| *n == 0), "{census:?}");
    Ok(())
}

/// With creation delays the waiters see CREATING / pending first, and still finish.
#[tokio::test]
async fn waiters_wait_for_nat_cluster_and_node_group() -> anyhow::Result<()> {
    let emulator = Emulator::start(&EmulatorOptions {
        create_seconds: 1.0,
        delete_seconds: 1.0,
        ..EmulatorOptions::default()
    })?;
    let platform = platform(emulator.endpoint(), RateLimits::default()).await;
    let env = Env::new(&platform, &emulator.fresh_account(), "slow-dev");
    let started = std::time::Instant::now();
    let report = env.deploy(&managed_config(), "run-1").await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    // NAT, then cluster, then node group: at least three waits on the critical path.
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let cluster = env
        .aws
        .eks
        .describe_cluster()
        .name("slow-dev")
        .send()
        .await?;
    assert_eq!(
        cluster.cluster().unwrap().status().map(|s| s.as_str()),
        Some("ACTIVE")
    );
    let report = env.destroy("run-2").await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    assert_eq!(env.census().await, empty_census());
    let nats = env
        .aws
        .ec2
        .describe_nat_gateways()
        .filter(
            Filter::builder()
                .name("tag:byoc:stack")
                .values("slow-dev")
                .build(),
        )
        .send()
        .await?;
    assert!(
        nats.nat_gateways()
            .iter()
            .all(|n| n.state().map(|s| s.as_str()) == Some("deleted"))
    );
    Ok(())
}

/// Cancelling a run stops a waiter at once; the NAT gateway it was waiting for is neither
/// orphaned nor made twice: the next run adopts it.
#[tokio::test]
async fn a_cancelled_wait_leaves_its_object_to_the_next_run() -> anyhow::Result<()> {
    let emulator = Emulator::start(&EmulatorOptions::default())?;
    emulator.configure(r#"{"create_seconds_by_kind": {"nat_gateway": 8}}"#)?;
    let platform = platform(emulator.endpoint(), RateLimits::default()).await;
    let mut env = Env::new(&platform, &emulator.fresh_account(), "cancel-dev");
    let config = managed_config();
    let started = std::time::Instant::now();
    let run = env.deploy(&config, "run-1");
    let canceller = async {
        loop {
            let log = emulator.requests("ec2").unwrap();
            if log.contains("Action=CreateNatGateway") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        env.cancel.cancel();
    };
    let (report, ()) = tokio::join!(run, canceller);
    assert_ne!(report.status, RunStatus::Succeeded);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the wait was not cancelled"
    );
    assert_eq!(env.census().await["nat_gateway"], 1);
    assert!(!env.store.snapshot().resources.contains_key("nat-a"));

    emulator.configure(r#"{"create_seconds_by_kind": {"nat_gateway": 0}}"#)?;
    env.cancel = byoc_engine::CancellationToken::new();
    let report = env.deploy(&config, "run-2").await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    assert_eq!(
        env.census().await,
        expected_managed(),
        "the NAT gateway was adopted, not made twice"
    );
    Ok(())
}

/// moto does not enforce ExternalId across accounts, so the proof that byoc sends it is the
/// outgoing AssumeRole request itself: the tenant's role, external id and session name.
#[tokio::test]
async fn assume_role_sends_the_external_id_and_session_name() -> anyhow::Result<()> {
    let emulator = Emulator::shared();
    let account = emulator.fresh_account();
    let platform = platform(emulator.endpoint(), RateLimits::default()).await;
    let env = Env::new(&platform, &account, "wire-dev");
    // Any call in the tenant account assumes the role first.
    env.census().await;
    let log: Value = serde_json::from_str(&emulator.requests("sts")?)?;
    let role = format!("RoleArn=arn%3Aaws%3Aiam%3A%3A{account}%3Arole%2Fbyoc-deployer");
    let sent = log["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["body"].as_str())
        .find(|body| body.contains("Action=AssumeRole") && body.contains(&role))
        .expect("an AssumeRole request for the tenant's role");
    assert!(sent.contains("ExternalId=test-external-id"), "{sent}");
    assert!(
        sent.contains("RoleSessionName=byoc-wire-dev-test"),
        "{sent}"
    );
    Ok(())
}

/// What Kubernetes would leave in the VPC (a load balancer and its target group, an ENI of
/// the VPC CNI, security groups referring to each other, a Karpenter instance) is swept by
/// the destroy, which then deletes the VPC: nothing tagged for the cluster is left.
#[tokio::test]
async fn destroy_sweeps_what_the_cluster_left_in_the_vpc() -> anyhow::Result<()> {
    let emulator = Emulator::shared();
    let platform = platform(emulator.endpoint(), RateLimits::default()).await;
    let stack = "leaky-dev";
    let env = Env::new(&platform, &emulator.fresh_account(), stack);
    let report = env.deploy(&managed_config(), "run-1").await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    let (ec2, elb) = (&env.aws.ec2, &env.aws.elb);
    let vpc = env.id("vpc");
    let cluster_tag = format!("kubernetes.io/cluster/{stack}");
    let owned = (cluster_tag.as_str(), "owned");
    let tags = LeftoverTags {
        lb_security_group: ("elbv2.k8s.aws/cluster", stack),
        node_security_group: owned,
        network_interface: ("cluster.k8s.amazonaws.com/name", stack),
        instance: owned,
        load_balancer: ("elbv2.k8s.aws/cluster", stack),
        target_group: owned,
    };
    let lb_arn = leave_leftovers(ec2, elb, &env, &tags).await?;

    let report = env.destroy("run-2").await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    assert_eq!(env.census().await, empty_census());
    let vpcs = ec2.describe_vpcs().vpc_ids(&vpc).send().await;
    assert!(
        vpcs.map(|v| v.vpcs().is_empty()).unwrap_or(true),
        "the VPC is gone"
    );
    let lbs = elb.describe_load_balancers().send().await?;
    assert!(
        lbs.load_balancers()
            .iter()
            .all(|l| l.load_balancer_arn() != Some(lb_arn.as_str())),
        "the load balancer is gone"
    );
    assert!(
        elb.describe_target_groups()
            .send()
            .await?
            .target_groups()
            .is_empty()
    );
    let by_tag = |key: &str| {
        aws_sdk_ec2::types::Filter::builder()
            .name("tag-key")
            .values(key)
            .build()
    };
    for key in [
        cluster_tag.as_str(),
        "elbv2.k8s.aws/cluster",
        "cluster.k8s.amazonaws.com/name",
    ] {
        let groups = ec2
            .describe_security_groups()
            .filters(by_tag(key))
            .send()
            .await?;
        assert!(groups.security_groups().is_empty(), "{key}: {groups:?}");
        let enis = ec2
            .describe_network_interfaces()
            .filters(by_tag(key))
            .send()
            .await?;
        assert!(enis.network_interfaces().is_empty(), "{key}: {enis:?}");
        let live: Vec<_> = ec2
            .describe_instances()
            .filters(by_tag(key))
            .send()
            .await?
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter(|i| i.state().and_then(|s| s.name()).map(|n| n.as_str()) != Some("terminated"))
            .map(|i| i.instance_id().unwrap_or_default().to_string())
            .collect();
        assert!(live.is_empty(), "{key}: {live:?}");
    }
    Ok(())
}
