//! A public NAT gateway: private subnets reach the internet through it. Creates and deletes
//! wait for the gateway to be `available` / `deleted` (a few minutes on AWS).

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{NatGatewayState, ResourceType};
use byoc_engine::{Ctx, ProviderError};
use serde::{Deserialize, Serialize};

use super::ec2::{Ec2Object, Tags};
use super::{Ec2Find, ResourceKind, Result, absent, ec2_tags};
use crate::aws::api::Ec2;
use crate::aws::{Aws, Patience};

pub const KIND: &str = "aws:ec2:NatGateway";

/// AWS makes a NAT gateway available in one to two minutes, and deletes one in about one.
const CREATE: Patience = Patience::secs(100, 15 * 60);
const DELETE: Patience = Patience::secs(60, 15 * 60);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    /// A public subnet.
    pub subnet_id: String,
    /// The Elastic IP's allocation id.
    pub allocation_id: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

pub struct NatGateway;

impl NatGateway {
    /// The gateway `id`, or `None` once it is deleted.
    async fn get(aws: &Aws, ctx: &Ctx, id: &str) -> Result<Option<Gateway>> {
        NatGateway::describe(aws, ctx, Ec2Find::Id(id)).await
    }

    async fn wait_available(aws: &Aws, ctx: &Ctx, id: &str) -> Result<()> {
        let name = format!("NAT gateway {id}");
        aws.wait_ready(
            ctx,
            &name,
            "available",
            CREATE,
            || NatGateway::get(aws, ctx, id),
            |g| match g.state() {
                Some(NatGatewayState::Available) => Ok(true),
                Some(NatGatewayState::Failed | NatGatewayState::Deleting) => {
                    Err(ProviderError::with_code(
                        "NatGatewayFailed",
                        format!(
                            "{name} failed: {}",
                            g.failure_message().unwrap_or("no reason given")
                        ),
                    ))
                }
                _ => Ok(false),
            },
        )
        .await
        .map(drop)
    }
}

type Gateway = aws_sdk_ec2::types::NatGateway;

impl ResourceKind for NatGateway {
    const KIND: &'static str = KIND;
    type Inputs = Inputs;
    const REPLACE_ON: &'static [&'static str] = &["subnet_id", "allocation_id"];
    const UNIQUE_BY: &'static [&'static [&'static str]] = &[&["allocation_id"]];
}

impl Ec2Object for NatGateway {
    type Object = Gateway;
    const WHAT: &'static str = "NAT gateway";

    async fn create(aws: &Aws, ctx: &Ctx, inputs: &Inputs) -> Result<Gateway> {
        let out = aws
            .request(Ec2, "CreateNatGateway", ctx, |ec2| {
                ec2.create_nat_gateway()
                    .subnet_id(&inputs.subnet_id)
                    .allocation_id(&inputs.allocation_id)
                    .client_token(&ctx.token)
                    .tag_specifications(ec2_tags(aws, ctx, ResourceType::Natgateway, &inputs.tags))
                    .send()
            })
            .await?;
        super::required(out.nat_gateway().cloned(), "NAT gateway")
    }

    /// By id, one that is deleted is none (AWS lists deleted ones for an hour); of those an
    /// interrupted create made, the one not failed or going.
    async fn describe(aws: &Aws, ctx: &Ctx, find: Ec2Find<'_>) -> Result<Option<Gateway>> {
        let out = aws
            .request(Ec2, "DescribeNatGateways", ctx, |ec2| {
                ec2.describe_nat_gateways()
                    .set_nat_gateway_ids(find.ids())
                    .set_filter(find.filters(aws, ctx))
                    .send()
            })
            .await;
        let found = absent(out)?.map_or_else(Vec::new, |out| out.nat_gateways().to_vec());
        let gone: &[NatGatewayState] = match find {
            Ec2Find::Id(_) => &[NatGatewayState::Deleted],
            Ec2Find::Made => &[
                NatGatewayState::Deleted,
                NatGatewayState::Deleting,
                NatGatewayState::Failed,
            ],
        };
        Ok(found
            .into_iter()
            .find(|g| g.state().is_none_or(|s| !gone.contains(s))))
    }

    async fn inputs(_: &Aws, _: &Ctx, g: &Gateway, tags: Tags) -> Result<Inputs> {
        let address = g.nat_gateway_addresses().first();
        Ok(Inputs {
            subnet_id: g.subnet_id().unwrap_or_default().to_string(),
            allocation_id: address
                .and_then(|a| a.allocation_id())
                .unwrap_or_default()
                .to_string(),
            tags,
        })
    }

    /// A new gateway is waited for until it is available.
    async fn settle(
        aws: &Aws,
        ctx: &Ctx,
        id: &str,
        old: Option<&Inputs>,
        _: &Inputs,
    ) -> Result<()> {
        match old {
            None => NatGateway::wait_available(aws, ctx, id).await,
            Some(_) => Ok(()),
        }
    }

    async fn delete(aws: &Aws, ctx: &Ctx, id: &str) -> Result<()> {
        aws.perform(Ec2, "DeleteNatGateway", ctx, |ec2| {
            ec2.delete_nat_gateway().nat_gateway_id(id).send()
        })
        .await?;
        // Its Elastic IP and subnet cannot go before it has.
        let name = format!("NAT gateway {id}");
        aws.wait_gone(ctx, &name, DELETE, || NatGateway::get(aws, ctx, id))
            .await
    }
}
