//! A public NAT gateway: private subnets reach the internet through it. Creates and deletes
//! wait for the gateway to be `available` / `deleted` (a few minutes on AWS).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::{NatGatewayState, ResourceType};
use byoc_engine::{Created, Ctx, ProviderError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    Ec2Find, Seen, TypedProvider, absent, ec2_retag, ec2_tag_map, ec2_tags, not_found, with_id,
};
use crate::aws::{Aws, user_tags};
use crate::limiter::Service::Ec2;

pub const KIND: &str = "aws:ec2:NatGateway";

const TIMEOUT: Duration = Duration::from_secs(15 * 60);

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

pub struct NatGateway(pub Arc<Aws>);

impl NatGateway {
    /// The gateways found; by id, one that is deleted is none (AWS lists deleted ones for an
    /// hour).
    async fn describe(
        &self,
        ctx: &Ctx,
        find: Ec2Find<'_>,
    ) -> Result<Vec<aws_sdk_ec2::types::NatGateway>, ProviderError> {
        let aws = &self.0;
        let out = aws
            .call(Ec2, "DescribeNatGateways", &ctx.cancel, || {
                aws.ec2
                    .describe_nat_gateways()
                    .set_nat_gateway_ids(find.ids())
                    .set_filter(find.filters(aws, ctx))
                    .send()
            })
            .await;
        Ok(absent(out)?.map_or_else(Vec::new, |out| out.nat_gateways().to_vec()))
    }

    /// The gateway `id`, or `None` once it is deleted.
    async fn get(
        &self,
        ctx: &Ctx,
        id: &str,
    ) -> Result<Option<aws_sdk_ec2::types::NatGateway>, ProviderError> {
        let found = self.describe(ctx, Ec2Find::Id(id)).await?;
        Ok(found
            .into_iter()
            .next()
            .filter(|g| g.state() != Some(&NatGatewayState::Deleted)))
    }

    async fn wait_available(&self, ctx: &Ctx, id: &str) -> Result<(), ProviderError> {
        let name = format!("NAT gateway {id}");
        self.0
            .wait_ready(
                ctx,
                &name,
                "available",
                TIMEOUT,
                || self.get(ctx, id),
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

#[async_trait]
impl TypedProvider for NatGateway {
    const KIND: &'static str = KIND;
    type Inputs = Inputs;
    const REPLACE_ON: &'static [&'static str] = &["subnet_id", "allocation_id"];

    async fn create(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Created, ProviderError> {
        let aws = &self.0;
        let out = aws
            .call(Ec2, "CreateNatGateway", &ctx.cancel, || {
                aws.ec2
                    .create_nat_gateway()
                    .subnet_id(&inputs.subnet_id)
                    .allocation_id(&inputs.allocation_id)
                    .client_token(&ctx.token)
                    .tag_specifications(ec2_tags(aws, ctx, ResourceType::Natgateway, &inputs.tags))
                    .send()
            })
            .await?;
        let id = super::required(
            out.nat_gateway().and_then(|g| g.nat_gateway_id()),
            "NAT gateway id",
        )?;
        self.wait_available(ctx, id).await?;
        Ok(with_id(id))
    }

    async fn read(&self, ctx: &Ctx, id: &str, _: &Inputs) -> Result<Seen<Inputs>, ProviderError> {
        let g = self
            .get(ctx, id)
            .await?
            .ok_or_else(|| not_found("NAT gateway", id))?;
        Ok(Seen {
            inputs: Inputs {
                subnet_id: g.subnet_id().unwrap_or_default().to_string(),
                allocation_id: g
                    .nat_gateway_addresses()
                    .first()
                    .and_then(|a| a.allocation_id())
                    .unwrap_or_default()
                    .to_string(),
                tags: user_tags(&ec2_tag_map(g.tags())),
            },
            outputs: with_id(id).outputs,
        })
    }

    async fn update(
        &self,
        ctx: &Ctx,
        id: &str,
        old: &Inputs,
        new: &Inputs,
    ) -> Result<Value, ProviderError> {
        ec2_retag(&self.0, ctx, id, &old.tags, &new.tags).await?;
        Ok(with_id(id).outputs)
    }

    async fn delete(&self, ctx: &Ctx, id: &str, _: &Inputs) -> Result<(), ProviderError> {
        let aws = &self.0;
        aws.call(Ec2, "DeleteNatGateway", &ctx.cancel, || {
            aws.ec2.delete_nat_gateway().nat_gateway_id(id).send()
        })
        .await?;
        // Its Elastic IP and subnet cannot go before it has.
        let name = format!("NAT gateway {id}");
        aws.wait_gone(ctx, &name, TIMEOUT, || self.get(ctx, id))
            .await
    }

    async fn find_existing(&self, ctx: &Ctx, _: &Inputs) -> Result<Option<Created>, ProviderError> {
        let found = self.describe(ctx, Ec2Find::Made).await?;
        let live = found.iter().find(|g| {
            !matches!(
                g.state(),
                Some(
                    NatGatewayState::Deleted | NatGatewayState::Deleting | NatGatewayState::Failed
                )
            )
        });
        let Some(id) = live.and_then(|g| g.nat_gateway_id()) else {
            return Ok(None);
        };
        self.wait_available(ctx, id).await?;
        Ok(Some(with_id(id)))
    }
}
