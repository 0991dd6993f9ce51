//! An internet gateway (attached to its VPC by an `InternetGatewayAttachment`).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ec2::types::ResourceType;
use byoc_engine::{Created, Ctx, Diff, ErrorClass, Observed, Provider, ProviderError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{diff_replacing, ec2_owner_filters, ec2_retag, ec2_tag_map, ec2_tags, not_found};
use crate::aws::{self, Aws, user_tags};
use crate::limiter::Service::Ec2;

pub const KIND: &str = "aws:ec2:InternetGateway";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

pub struct InternetGateway(pub Arc<Aws>);

impl InternetGateway {
    fn created(id: &str) -> Created {
        Created {
            physical_id: id.to_string(),
            outputs: json!({"id": id}),
        }
    }
}

#[async_trait]
impl Provider for InternetGateway {
    fn diff(&self, old: &Value, new: &Value) -> Diff {
        diff_replacing::<Inputs>(old, new, &[])
    }

    async fn create(&self, ctx: &Ctx, inputs: &Value) -> Result<Created, ProviderError> {
        let aws = &self.0;
        let inputs: Inputs = aws::parse(KIND, inputs)?;
        let out = aws
            .call(Ec2, "CreateInternetGateway", &ctx.cancel, || {
                aws.ec2
                    .create_internet_gateway()
                    .tag_specifications(ec2_tags(
                        aws,
                        ctx,
                        ResourceType::InternetGateway,
                        &inputs.tags,
                    ))
                    .send()
            })
            .await?;
        let id = super::required(
            out.internet_gateway().and_then(|g| g.internet_gateway_id()),
            "internet gateway id",
        )?;
        Ok(InternetGateway::created(id))
    }

    async fn read(&self, ctx: &Ctx, id: &str, _inputs: &Value) -> Result<Observed, ProviderError> {
        let aws = &self.0;
        let out = aws
            .call(Ec2, "DescribeInternetGateways", &ctx.cancel, || {
                aws.ec2
                    .describe_internet_gateways()
                    .internet_gateway_ids(id)
                    .send()
            })
            .await?;
        let g = out
            .internet_gateways()
            .first()
            .ok_or_else(|| not_found("internet gateway", id))?;
        let inputs = Inputs {
            tags: user_tags(&ec2_tag_map(g.tags())),
        };
        Ok(Observed {
            outputs: InternetGateway::created(id).outputs,
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
        Ok(InternetGateway::created(id).outputs)
    }

    async fn delete(&self, ctx: &Ctx, id: &str, _inputs: &Value) -> Result<(), ProviderError> {
        let aws = &self.0;
        aws.call(Ec2, "DeleteInternetGateway", &ctx.cancel, || {
            aws.ec2
                .delete_internet_gateway()
                .internet_gateway_id(id)
                .send()
        })
        .await?;
        Ok(())
    }

    async fn find_existing(
        &self,
        ctx: &Ctx,
        _inputs: &Value,
    ) -> Result<Option<Created>, ProviderError> {
        let aws = &self.0;
        let out = aws
            .call(Ec2, "DescribeInternetGateways", &ctx.cancel, || {
                aws.ec2
                    .describe_internet_gateways()
                    .set_filters(Some(ec2_owner_filters(aws, ctx)))
                    .send()
            })
            .await?;
        Ok(out
            .internet_gateways()
            .first()
            .and_then(|g| g.internet_gateway_id())
            .map(InternetGateway::created))
    }

    fn classify(&self, error: &ProviderError) -> ErrorClass {
        aws::classify(error)
    }
}
