//! A public NAT gateway: private subnets reach the internet through it. Creates and deletes
//! wait for the gateway to be `available` / `deleted` (a few minutes on AWS).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::{NatGatewayState, ResourceType};
use byoc_engine::{Created, Ctx, Diff, ErrorClass, Observed, Provider, ProviderError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{diff_replacing, ec2_owner_filters, ec2_retag, ec2_tag_map, ec2_tags, not_found};
use crate::aws::{self, Aws, user_tags};
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
    fn created(id: &str) -> Created {
        Created {
            physical_id: id.to_string(),
            outputs: json!({"id": id}),
        }
    }

    /// The gateway, or `None` once it is deleted (AWS lists deleted ones for an hour).
    async fn describe(
        &self,
        ctx: &Ctx,
        id: &str,
    ) -> Result<Option<aws_sdk_ec2::types::NatGateway>, ProviderError> {
        let aws = &self.0;
        let out = aws
            .call(Ec2, "DescribeNatGateways", &ctx.cancel, || {
                aws.ec2.describe_nat_gateways().nat_gateway_ids(id).send()
            })
            .await;
        let out = match out {
            Err(e) if aws::classify(&e) == ErrorClass::NotFound => return Ok(None),
            other => other?,
        };
        Ok(out
            .nat_gateways()
            .first()
            .filter(|g| g.state() != Some(&NatGatewayState::Deleted))
            .cloned())
    }

    async fn wait_available(&self, ctx: &Ctx, id: &str) -> Result<(), ProviderError> {
        let what = format!("NAT gateway {id} to be available");
        self.0
            .wait_for(ctx, &what, TIMEOUT, || async {
                let g = self
                    .describe(ctx, id)
                    .await?
                    .ok_or_else(|| not_found("NAT gateway", id))?;
                match g.state() {
                    Some(NatGatewayState::Available) => Ok(Some(())),
                    Some(NatGatewayState::Failed | NatGatewayState::Deleting) => {
                        Err(ProviderError::with_code(
                            "NatGatewayFailed",
                            format!(
                                "NAT gateway {id} failed: {}",
                                g.failure_message().unwrap_or("no reason given")
                            ),
                        ))
                    }
                    _ => Ok(None),
                }
            })
            .await
    }
}

#[async_trait]
impl Provider for NatGateway {
    fn diff(&self, old: &Value, new: &Value) -> Diff {
        diff_replacing::<Inputs>(old, new, &["subnet_id", "allocation_id"])
    }

    async fn create(&self, ctx: &Ctx, inputs: &Value) -> Result<Created, ProviderError> {
        let aws = &self.0;
        let inputs: Inputs = aws::parse(KIND, inputs)?;
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
        Ok(NatGateway::created(id))
    }

    async fn read(&self, ctx: &Ctx, id: &str, _inputs: &Value) -> Result<Observed, ProviderError> {
        let g = self
            .describe(ctx, id)
            .await?
            .ok_or_else(|| not_found("NAT gateway", id))?;
        let inputs = Inputs {
            subnet_id: g.subnet_id().unwrap_or_default().to_string(),
            allocation_id: g
                .nat_gateway_addresses()
                .first()
                .and_then(|a| a.allocation_id())
                .unwrap_or_default()
                .to_string(),
            tags: user_tags(&ec2_tag_map(g.tags())),
        };
        Ok(Observed {
            outputs: NatGateway::created(id).outputs,
            inputs: json!(inputs),
        })
    }

    async fn update(
        &self,
        ctx: &Ctx,
        id: &str,
        old: &Value,
        new: &Value,
    ) -> Result<Value, ProviderError> {
        let (old, new): (Inputs, Inputs) = (aws::parse(KIND, old)?, aws::parse(KIND, new)?);
        ec2_retag(&self.0, ctx, id, &old.tags, &new.tags).await?;
        Ok(NatGateway::created(id).outputs)
    }

    async fn delete(&self, ctx: &Ctx, id: &str, _inputs: &Value) -> Result<(), ProviderError> {
        let aws = &self.0;
        aws.call(Ec2, "DeleteNatGateway", &ctx.cancel, || {
            aws.ec2.delete_nat_gateway().nat_gateway_id(id).send()
        })
        .await?;
        // Its Elastic IP and subnet cannot go before it has.
        let what = format!("NAT gateway {id} to be deleted");
        aws.wait_for(ctx, &what, TIMEOUT, || async {
            Ok(self.describe(ctx, id).await?.is_none().then_some(()))
        })
        .await
    }

    async fn find_existing(
        &self,
        ctx: &Ctx,
        _inputs: &Value,
    ) -> Result<Option<Created>, ProviderError> {
        let aws = &self.0;
        let out = aws
            .call(Ec2, "DescribeNatGateways", &ctx.cancel, || {
                aws.ec2
                    .describe_nat_gateways()
                    .set_filter(Some(ec2_owner_filters(aws, ctx)))
                    .send()
            })
            .await?;
        let live = out.nat_gateways().iter().find(|g| {
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
        Ok(Some(NatGateway::created(id)))
    }

    fn classify(&self, error: &ProviderError) -> ErrorClass {
        aws::classify(error)
    }
}
