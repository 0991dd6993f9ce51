//! A VPC, with DNS support and DNS hostnames (EKS needs both).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType, VpcAttributeName};
use byoc_engine::{Created, Ctx, ProviderError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    Ec2Find, Seen, TypedProvider, ec2_describe, ec2_retag, ec2_tag_map, ec2_tags, not_found,
};
use crate::aws::{Aws, user_tags};
use crate::limiter::Service::Ec2;

pub const KIND: &str = "aws:ec2:Vpc";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    pub cidr_block: String,
    pub enable_dns_support: bool,
    pub enable_dns_hostnames: bool,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

pub struct Vpc(pub Arc<Aws>);

impl Vpc {
    async fn set_attributes(
        &self,
        ctx: &Ctx,
        id: &str,
        old: Option<&Inputs>,
        new: &Inputs,
    ) -> Result<(), ProviderError> {
        let aws = &self.0;
        let flag = |v: bool| AttributeBooleanValue::builder().value(v).build();
        // One attribute per call: the API refuses both at once.
        if old.is_none_or(|o| o.enable_dns_support != new.enable_dns_support) {
            aws.call(Ec2, "ModifyVpcAttribute", &ctx.cancel, || {
                aws.ec2
                    .modify_vpc_attribute()
                    .vpc_id(id)
                    .enable_dns_support(flag(new.enable_dns_support))
                    .send()
            })
            .await?;
        }
        if old.is_none_or(|o| o.enable_dns_hostnames != new.enable_dns_hostnames) {
            aws.call(Ec2, "ModifyVpcAttribute", &ctx.cancel, || {
                aws.ec2
                    .modify_vpc_attribute()
                    .vpc_id(id)
                    .enable_dns_hostnames(flag(new.enable_dns_hostnames))
                    .send()
            })
            .await?;
        }
        Ok(())
    }

    ec2_describe!(Vpc, "DescribeVpcs", describe_vpcs, set_vpc_ids, vpcs);

    async fn attribute(
        &self,
        ctx: &Ctx,
        id: &str,
        name: VpcAttributeName,
    ) -> Result<bool, ProviderError> {
        let aws = &self.0;
        let out = aws
            .call(Ec2, "DescribeVpcAttribute", &ctx.cancel, || {
                aws.ec2
                    .describe_vpc_attribute()
                    .vpc_id(id)
                    .attribute(name.clone())
                    .send()
            })
            .await?;
        let value = match name {
            VpcAttributeName::EnableDnsSupport => out.enable_dns_support(),
            _ => out.enable_dns_hostnames(),
        };
        Ok(value.and_then(|v| v.value()).unwrap_or(false))
    }

    fn created(id: &str, inputs: &Inputs) -> Created {
        Created {
            physical_id: id.to_string(),
            outputs: json!({"id": id, "cidr_block": inputs.cidr_block}),
        }
    }
}

#[async_trait]
impl TypedProvider for Vpc {
    const KIND: &'static str = KIND;
    type Inputs = Inputs;
    const REPLACE_ON: &'static [&'static str] = &["cidr_block"];

    async fn create(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Created, ProviderError> {
        let aws = &self.0;
        let out = aws
            .call(Ec2, "CreateVpc", &ctx.cancel, || {
                aws.ec2
                    .create_vpc()
                    .cidr_block(&inputs.cidr_block)
                    .tag_specifications(ec2_tags(aws, ctx, ResourceType::Vpc, &inputs.tags))
                    .send()
            })
            .await?;
        let id = super::required(out.vpc().and_then(|v| v.vpc_id()), "VPC id")?;
        self.set_attributes(ctx, id, None, inputs).await?;
        Ok(Vpc::created(id, inputs))
    }

    async fn read(&self, ctx: &Ctx, id: &str, _: &Inputs) -> Result<Seen<Inputs>, ProviderError> {
        let vpc = self
            .describe(ctx, Ec2Find::Id(id))
            .await?
            .ok_or_else(|| not_found("VPC", id))?;
        let inputs = Inputs {
            cidr_block: vpc.cidr_block().unwrap_or_default().to_string(),
            enable_dns_support: self
                .attribute(ctx, id, VpcAttributeName::EnableDnsSupport)
                .await?,
            enable_dns_hostnames: self
                .attribute(ctx, id, VpcAttributeName::EnableDnsHostnames)
                .await?,
            tags: user_tags(&ec2_tag_map(vpc.tags())),
        };
        Ok(Seen {
            outputs: Vpc::created(id, &inputs).outputs,
            inputs,
        })
    }

    async fn update(
        &self,
        ctx: &Ctx,
        id: &str,
        old: &Inputs,
        new: &Inputs,
    ) -> Result<Value, ProviderError> {
        self.set_attributes(ctx, id, Some(old), new).await?;
        ec2_retag(&self.0, ctx, id, &old.tags, &new.tags).await?;
        Ok(Vpc::created(id, new).outputs)
    }

    async fn delete(&self, ctx: &Ctx, id: &str, _: &Inputs) -> Result<(), ProviderError> {
        let aws = &self.0;
        aws.call(Ec2, "DeleteVpc", &ctx.cancel, || {
            aws.ec2.delete_vpc().vpc_id(id).send()
        })
        .await?;
        Ok(())
    }

    async fn find_existing(
        &self,
        ctx: &Ctx,
        inputs: &Inputs,
    ) -> Result<Option<Created>, ProviderError> {
        let found = self.describe(ctx, Ec2Find::Made).await?;
        let Some(id) = found.as_ref().and_then(|v| v.vpc_id()) else {
            return Ok(None);
        };
        // The create may have died between CreateVpc and the attributes.
        self.set_attributes(ctx, id, None, inputs).await?;
        Ok(Some(Vpc::created(id, inputs)))
    }
}
