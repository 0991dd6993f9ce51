//! Each knob of tools/emulator/emulator.py, observed through the Rust SDK.

mod common;

use std::future::Future;
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{Filter, NatGatewayState};
use aws_sdk_eks::types::{ClusterStatus, NodegroupStatus, VpcConfigRequest};
use byoc_testkit::{Emulator, EmulatorOptions};

fn error_code<E: ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("<none>").to_string()
}

/// Polls `observe` until it returns `want`, returning how long that took.
async fn time_until<T, F, Fut>(want: T, mut observe: F) -> anyhow::Result<Duration>
where
    T: PartialEq + std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let start = Instant::now();
    loop {
        let seen = observe().await?;
        if seen == want {
            return Ok(start.elapsed());
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(30),
            "still {seen:?}, wanted {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn latency_fixed_and_random() -> anyhow::Result<()> {
    let emulator = Emulator::start(&EmulatorOptions {
        latency_ms: Some("400".into()),
        ..Default::default()
    })?;
    let ec2 = aws_sdk_ec2::Client::new(
        &common::default_account(emulator.endpoint(), RetryConfig::disabled()).await,
    );
    for _ in 0..3 {
        let start = Instant::now();
        ec2.describe_vpcs().send().await?;
        assert!(
            start.elapsed() >= Duration::from_millis(400),
            "took {:?}",
            start.elapsed()
        );
    }

    emulator.configure(r#"{"latency_ms": "100-300", "seed": 7}"#)?;
    let mut took = Vec::new();
    for _ in 0..10 {
        let start = Instant::now();
        ec2.describe_vpcs().send().await?;
        took.push(start.elapsed());
    }
    let (min, max) = (took.iter().min().unwrap(), took.iter().max().unwrap());
    assert!(*min >= Duration::from_millis(100), "fastest call {min:?}");
    assert!(
        *max - *min >= Duration::from_millis(20),
        "random latency did not vary: {took:?}"
    );
    Ok(())
}

#[tokio::test]
async fn throttling_uses_each_protocols_error() -> anyhow::Result<()> {
    let emulator = Emulator::start(&EmulatorOptions {
        throttle_rate: 1.0,
        ..Default::default()
    })?;
    let no_retry = common::default_account(emulator.endpoint(), RetryConfig::disabled()).await;

    let ec2 = aws_sdk_ec2::Client::new(&no_retry)
        .describe_vpcs()
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&ec2), "RequestLimitExceeded");
    let sts = aws_sdk_sts::Client::new(&no_retry)
        .get_caller_identity()
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&sts), "Throttling");
    let eks = aws_sdk_eks::Client::new(&no_retry)
        .list_clusters()
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&eks), "Throttling");

    // At 50% the SDK's standard retries get every call through, and the emulator saw them.
    // Seed 3 throttles at most 3 requests in a row, so 12 attempts always suffice.
    emulator.configure(r#"{"throttle_rate": 0.5, "seed": 3}"#)?;
    let before: serde_json::Value = serde_json::from_str(&emulator.stats()?)?;
    let retrying = common::default_account(
        emulator.endpoint(),
        RetryConfig::standard()
            .with_max_attempts(12)
            .with_initial_backoff(Duration::from_millis(5))
            .with_max_backoff(Duration::from_millis(20)),
    )
    .await;
    let ec2 = aws_sdk_ec2::Client::new(&retrying);
    for _ in 0..20 {
        ec2.describe_vpcs().send().await?;
    }
    let after: serde_json::Value = serde_json::from_str(&emulator.stats()?)?;
    let throttled = after["throttled"].as_u64().unwrap() - before["throttled"].as_u64().unwrap();
    let requests = after["requests"].as_u64().unwrap() - before["requests"].as_u64().unwrap();
    assert!(
        throttled >= 3,
        "only {throttled} of {requests} requests throttled"
    );
    assert_eq!(
        requests,
        20 + throttled,
        "every throttled request was retried once more"
    );
    Ok(())
}

#[tokio::test]
async fn nat_gateway_is_pending_then_available_then_deleting() -> anyhow::Result<()> {
    const CREATE: Duration = Duration::from_millis(1500);
    const DELETE: Duration = Duration::from_millis(1500);
    let emulator = Emulator::start(&EmulatorOptions {
        create_seconds: CREATE.as_secs_f64(),
        delete_seconds: DELETE.as_secs_f64(),
        ..Default::default()
    })?;
    let ec2 = aws_sdk_ec2::Client::new(
        &common::default_account(emulator.endpoint(), RetryConfig::standard()).await,
    );
    let vpc = ec2.create_vpc().cidr_block("10.0.0.0/16").send().await?;
    let vpc_id = vpc.vpc().and_then(|v| v.vpc_id()).unwrap();
    let subnet = ec2
        .create_subnet()
        .vpc_id(vpc_id)
        .cidr_block("10.0.1.0/24")
        .send()
        .await?;
    let subnet_id = subnet.subnet().and_then(|s| s.subnet_id()).unwrap();
    let eip = ec2.allocate_address().send().await?;

    let created = ec2
        .create_nat_gateway()
        .subnet_id(subnet_id)
        .allocation_id(eip.allocation_id().unwrap())
        .send()
        .await?;
    let nat = created.nat_gateway().unwrap();
    assert_eq!(nat.state(), Some(&NatGatewayState::Pending));
    let nat_id = nat.nat_gateway_id().unwrap().to_string();

    let state = || async {
        let out = ec2
            .describe_nat_gateways()
            .filter(
                Filter::builder()
                    .name("nat-gateway-id")
                    .values(&nat_id)
                    .build(),
            )
            .send()
            .await?;
        Ok(out.nat_gateways()[0].state().cloned().unwrap())
    };
    let waited = time_until(NatGatewayState::Available, state).await?;
    assert!(waited >= CREATE / 2, "available after only {waited:?}");

    ec2.delete_nat_gateway()
        .nat_gateway_id(&nat_id)
        .send()
        .await?;
    assert_eq!(state().await?, NatGatewayState::Deleting);
    let waited = time_until(NatGatewayState::Deleted, state).await?;
    assert!(waited >= DELETE / 2, "deleted after only {waited:?}");
    Ok(())
}

#[tokio::test]
async fn eks_cluster_and_node_group_transition_through_creating_and_deleting() -> anyhow::Result<()>
{
    const CREATE: Duration = Duration::from_millis(1500);
    let emulator = Emulator::start(&EmulatorOptions {
        create_seconds: CREATE.as_secs_f64(),
        delete_seconds: CREATE.as_secs_f64(),
        ..Default::default()
    })?;
    let config = common::default_account(emulator.endpoint(), RetryConfig::standard()).await;
    let eks = aws_sdk_eks::Client::new(&config);
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let vpc = ec2.create_vpc().cidr_block("10.0.0.0/16").send().await?;
    let subnet = ec2
        .create_subnet()
        .vpc_id(vpc.vpc().and_then(|v| v.vpc_id()).unwrap())
        .cidr_block("10.0.1.0/24")
        .send()
        .await?;
    let subnet_id = subnet
        .subnet()
        .and_then(|s| s.subnet_id())
        .unwrap()
        .to_string();

    let created = eks
        .create_cluster()
        .name("knobs")
        .role_arn("arn:aws:iam::123456789012:role/byoc-cluster")
        .resources_vpc_config(VpcConfigRequest::builder().subnet_ids(&subnet_id).build())
        .send()
        .await?;
    assert_eq!(
        created.cluster().unwrap().status(),
        Some(&ClusterStatus::Creating)
    );

    let nodegroup = || {
        eks.create_nodegroup()
            .cluster_name("knobs")
            .nodegroup_name("system")
            .node_role("arn:aws:iam::123456789012:role/byoc-node")
            .subnets(&subnet_id)
    };
    let early = nodegroup().send().await.unwrap_err();
    assert_eq!(
        error_code(&early),
        "InvalidRequestException",
        "node group on a CREATING cluster"
    );

    let cluster_status = || async {
        let out = eks.describe_cluster().name("knobs").send().await?;
        Ok(out.cluster().unwrap().status().cloned().unwrap())
    };
    let waited = time_until(ClusterStatus::Active, cluster_status).await?;
    assert!(waited >= CREATE / 2, "cluster ACTIVE after only {waited:?}");

    let ng = nodegroup().send().await?;
    assert_eq!(
        ng.nodegroup().unwrap().status(),
        Some(&NodegroupStatus::Creating)
    );
    let ng_status = || async {
        let out = eks
            .describe_nodegroup()
            .cluster_name("knobs")
            .nodegroup_name("system")
            .send()
            .await;
        match out {
            Ok(out) => Ok(out.nodegroup().unwrap().status().cloned()),
            Err(e) if error_code(&e) == "ResourceNotFoundException" => Ok(None),
            Err(e) => Err(e.into()),
        }
    };
    time_until(Some(NodegroupStatus::Active), ng_status).await?;

    eks.delete_nodegroup()
        .cluster_name("knobs")
        .nodegroup_name("system")
        .send()
        .await?;
    assert_eq!(ng_status().await?, Some(NodegroupStatus::Deleting));
    let busy = eks.delete_cluster().name("knobs").send().await.unwrap_err();
    assert_eq!(
        error_code(&busy),
        "ResourceInUseException",
        "cluster delete while a node group exists"
    );
    let waited = time_until(None, ng_status).await?;
    assert!(
        waited >= CREATE / 2,
        "node group gone after only {waited:?}"
    );

    let deleted = eks.delete_cluster().name("knobs").send().await?;
    assert_eq!(
        deleted.cluster().unwrap().status(),
        Some(&ClusterStatus::Deleting)
    );
    let gone = time_until(true, || async {
        match eks.describe_cluster().name("knobs").send().await {
            Ok(_) => Ok(false),
            Err(e) if error_code(&e) == "ResourceNotFoundException" => Ok(true),
            Err(e) => Err(e.into()),
        }
    })
    .await?;
    assert!(gone >= CREATE / 2, "cluster gone after only {gone:?}");
    Ok(())
}
