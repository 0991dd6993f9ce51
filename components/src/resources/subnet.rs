//! A subnet in one availability zone; public ones give instances public addresses.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType};
use byoc_engine::Ctx;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::ec2::{Ec2Object, Tags};
use super::{ResourceKind, Result, ec2_describe, ec2_tags};
use crate::aws::Aws;
use crate::aws::api::Ec2;

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

pub struct Subnet;

impl ResourceKind for Subnet {
    const KIND: &'static str = KIND;
    type Inputs = Inputs;
    const REPLACE_ON: &'static [&'static str] = &["vpc_id", "cidr_block", "availability_zone"];
    const UNIQUE_BY: &'static [&'static [&'static str]] = &[&["vpc_id", "cidr_block"]];
}

impl Ec2Object for Subnet {
    type Object = aws_sdk_ec2::types::Subnet;
    const WHAT: &'static str = "subnet";

    async fn create(aws: &Aws, ctx: &Ctx, inputs: &Inputs) -> Result<Self::Object> {
        let out = aws
            .request(Ec2, "CreateSubnet", ctx, |ec2| {
                ec2.create_subnet()
                    .vpc_id(&inputs.vpc_id)
                    .cidr_block(&inputs.cidr_block)
                    .availability_zone(&inputs.availability_zone)
                    .tag_specifications(ec2_tags(aws, ctx, ResourceType::Subnet, &inputs.tags))
                    .send()
            })
            .await?;
        super::required(out.subnet().cloned(), "subnet")
    }

    ec2_describe!(
        Subnet,
        "DescribeSubnets",
        describe_subnets,
        set_subnet_ids,
        subnets
    );

    fn outputs(id: &str, inputs: &Inputs, _: Option<&Self::Object>) -> Value {
        let (zone, cidr) = (&inputs.availability_zone, &inputs.cidr_block);
        json!({"id": id, "availability_zone": zone, "cidr_block": cidr})
    }

    async fn inputs(_: &Aws, _: &Ctx, s: &Self::Object, tags: Tags) -> Result<Inputs> {
        Ok(Inputs {
            vpc_id: s.vpc_id().unwrap_or_default().to_string(),
            cidr_block: s.cidr_block().unwrap_or_default().to_string(),
            availability_zone: s.availability_zone().unwrap_or_default().to_string(),
            map_public_ip_on_launch: s.map_public_ip_on_launch().unwrap_or(false),
            tags,
        })
    }

    /// A subnet is made private: one to be public is made so once it exists.
    async fn settle(
        aws: &Aws,
        ctx: &Ctx,
        id: &str,
        old: Option<&Inputs>,
        new: &Inputs,
    ) -> Result<()> {
        let public = new.map_public_ip_on_launch;
        if old.map_or(public, |o| o.map_public_ip_on_launch != public) {
            aws.perform(Ec2, "ModifySubnetAttribute", ctx, |ec2| {
                ec2.modify_subnet_attribute()
                    .subnet_id(id)
                    .map_public_ip_on_launch(AttributeBooleanValue::builder().value(public).build())
                    .send()
            })
            .await?;
        }
        Ok(())
    }

    async fn delete(aws: &Aws, ctx: &Ctx, id: &str) -> Result<()> {
        aws.perform(Ec2, "DeleteSubnet", ctx, |ec2| {
            ec2.delete_subnet().subnet_id(id).send()
        })
        .await
    }
}
