//! A subnet in one availability zone; public ones give instances public addresses.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType};
use byoc_engine::{Created, Ctx, ProviderError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    Ec2Find, Seen, TypedProvider, ec2_describe, ec2_retag, ec2_tag_map, ec2_tags, not_found,
};
use crate::aws::{Aws, user_tags};
use crate::limiter::Service::Ec2;

pub const KIND: &str = "aws:ec2:Subnet";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    pub vpc_id: String,
    pub cidr_block: String,
    pub availability_zone: String,
    /// Instances launched here get a public IPv4 address.
    pub map_public_ip_on_launch: bool,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

pub struct Subnet(pub Arc<Aws>);

impl Subnet {
    async fn set_public(&self, ctx: &Ctx, id: &str, public: bool) -> Result<(), ProviderError> {
        let aws = &self.0;
        aws.call(Ec2, "ModifySubnetAttribute", &ctx.cancel, || {
            aws.ec2
                .modify_subnet_attribute()
                .subnet_id(id)
                .map_public_ip_on_launch(AttributeBooleanValue::builder().value(public).build())
                .send()
        })
        .await?;
        Ok(())
    }

    ec2_describe!(
        Subnet,
        "DescribeSubnets",
        describe_subnets,
        set_subnet_ids,
        subnets
    );

    fn created(id: &str, inputs: &Inputs) -> Created {
        Created {
            physical_id: id.to_string(),
            outputs: json!({
                "id": id,
                "availability_zone": inputs.availability_zone,
                "cidr_block": inputs.cidr_block,
            }),
        }
    }
}

#[async_trait]
impl TypedProvider for Subnet {
    const KIND: &'static str = KIND;
    type Inputs = Inputs;
    const REPLACE_ON: &'static [&'static str] = &["vpc_id", "cidr_block", "availability_zone"];

    async fn create(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Created, ProviderError> {
        let aws = &self.0;
        let out = aws
            .call(Ec2, "CreateSubnet", &ctx.cancel, || {
                aws.ec2
                    .create_subnet()
                    .vpc_id(&inputs.vpc_id)
                    .cidr_block(&inputs.cidr_block)
                    .availability_zone(&inputs.availability_zone)
                    .tag_specifications(ec2_tags(aws, ctx, ResourceType::Subnet, &inputs.tags))
                    .send()
            })
            .await?;
        let id = super::required(out.subnet().and_then(|s| s.subnet_id()), "subnet id")?;
        if inputs.map_public_ip_on_launch {
            self.set_public(ctx, id, true).await?;
        }
        Ok(Subnet::created(id, inputs))
    }

    async fn read(&self, ctx: &Ctx, id: &str, _: &Inputs) -> Result<Seen<Inputs>, ProviderError> {
        let s = self
            .describe(ctx, Ec2Find::Id(id))
            .await?
            .ok_or_else(|| not_found("subnet", id))?;
        let inputs = Inputs {
            vpc_id: s.vpc_id().unwrap_or_default().to_string(),
            cidr_block: s.cidr_block().unwrap_or_default().to_string(),
            availability_zone: s.availability_zone().unwrap_or_default().to_string(),
            map_public_ip_on_launch: s.map_public_ip_on_launch().unwrap_or(false),
            tags: user_tags(&ec2_tag_map(s.tags())),
        };
        Ok(Seen {
            outputs: Subnet::created(id, &inputs).outputs,
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
        if old.map_public_ip_on_launch != new.map_public_ip_on_launch {
            self.set_public(ctx, id, new.map_public_ip_on_launch)
                .await?;
        }
        ec2_retag(&self.0, ctx, id, &old.tags, &new.tags).await?;
        Ok(Subnet::created(id, new).outputs)
    }

    async fn delete(&self, ctx: &Ctx, id: &str, _: &Inputs) -> Result<(), ProviderError> {
        let aws = &self.0;
        aws.call(Ec2, "DeleteSubnet", &ctx.cancel, || {
            aws.ec2.delete_subnet().subnet_id(id).send()
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
        let Some(id) = found.as_ref().and_then(|s| s.subnet_id()) else {
            return Ok(None);
        };
        self.set_public(ctx, id, inputs.map_public_ip_on_launch)
            .await?;
        Ok(Some(Subnet::created(id, inputs)))
    }
}
