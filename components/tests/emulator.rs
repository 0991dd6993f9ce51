//! The emulator harness: accounts are isolated from each other through assumed roles.

mod common;

use aws_config::retry::RetryConfig;
use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use byoc_testkit::Emulator;

fn stack_filter(stack: &str) -> Filter {
    Filter::builder()
        .name("tag:byoc:stack")
        .values(stack)
        .build()
}

#[tokio::test]
async fn assumed_role_acts_in_its_own_account() -> anyhow::Result<()> {
    let emulator = Emulator::shared();
    let tenant = common::assumed_account(emulator.endpoint(), "111111111111").await?;
    let ec2 = aws_sdk_ec2::Client::new(&tenant);

    let identity = aws_sdk_sts::Client::new(&tenant)
        .get_caller_identity()
        .send()
        .await?;
    assert_eq!(identity.account(), Some("111111111111"));

    let created = ec2
        .create_vpc()
        .cidr_block("10.42.0.0/16")
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Vpc)
                .tags(Tag::builder().key("byoc:stack").value("acme-dev").build())
                .build(),
        )
        .send()
        .await?;
    let vpc_id = created
        .vpc()
        .and_then(|v| v.vpc_id())
        .expect("vpc id")
        .to_string();

    let found = ec2
        .describe_vpcs()
        .filters(stack_filter("acme-dev"))
        .send()
        .await?;
    let ids: Vec<_> = found.vpcs().iter().filter_map(|v| v.vpc_id()).collect();
    assert_eq!(
        ids,
        [vpc_id.as_str()],
        "the tag filter finds exactly the new VPC"
    );

    let platform = common::default_account(emulator.endpoint(), RetryConfig::standard()).await;
    let other = aws_sdk_ec2::Client::new(&platform)
        .describe_vpcs()
        .filters(stack_filter("acme-dev"))
        .send()
        .await?;
    assert!(
        other.vpcs().is_empty(),
        "the default account must not see the tenant's VPC"
    );
    Ok(())
}

#[tokio::test]
async fn fresh_accounts_do_not_see_each_other() -> anyhow::Result<()> {
    let emulator = Emulator::shared();
    let (a, b) = (emulator.fresh_account(), emulator.fresh_account());
    assert_ne!(a, b);
    let ec2_a = aws_sdk_ec2::Client::new(&common::assumed_account(emulator.endpoint(), &a).await?);
    let ec2_b = aws_sdk_ec2::Client::new(&common::assumed_account(emulator.endpoint(), &b).await?);
    let before = ec2_b.describe_vpcs().send().await?.vpcs().len();
    ec2_a.create_vpc().cidr_block("10.1.0.0/16").send().await?;
    let after = ec2_b.describe_vpcs().send().await?.vpcs().len();
    assert_eq!(before, after, "a VPC created in {a} appeared in {b}");
    Ok(())
}
