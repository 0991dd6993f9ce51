//! An internet gateway (attached to its VPC by an `InternetGatewayAttachment`).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ec2::types::ResourceType;
use byoc_engine::{Created, Ctx, ProviderError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    Ec2Find, Seen, TypedProvider, ec2_describe, ec2_retag, ec2_tag_map, ec2_tags, not_found,
    with_id,
};
use crate::aws::{Aws, user_tags};
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
    ec2_describe!(
        InternetGateway,
        "DescribeInternetGateways",
        describe_internet_gateways,
        set_internet_gateway_ids,
        internet_gateways
    );
}

#[async_trait]
impl TypedProvider for InternetGateway {
    const KIND: &'static str = KIND;
    type Inputs = Inputs;
    const REPLACE_ON: &'static [&'static str] = &[];

    async fn create(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Created, ProviderError> {
        let aws = &self.0;
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
        Ok(with_id(id))
    }

    async fn read(&self, ctx: &Ctx, id: &str, _: &Inputs) -> Result<Seen<Inputs>, ProviderError> {
        let g = self
            .describe(ctx, Ec2Find::Id(id))
            .await?
            .ok_or_else(|| not_found("internet gateway", id))?;
        Ok(Seen {
            inputs: Inputs {
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
        aws.call(Ec2, "DeleteInternetGateway", &ctx.cancel, || {
            aws.ec2
                .delete_internet_gateway()
                .internet_gateway_id(id)
                .send()
        })
        .await?;
        Ok(())
    }

    async fn find_existing(&self, ctx: &Ctx, _: &Inputs) -> Result<Option<Created>, ProviderError> {
        let found = self.describe(ctx, Ec2Find::Made).await?;
        Ok(found
            .as_ref()
            .and_then(|g| g.internet_gateway_id())
            .map(with_id))
    }
}
