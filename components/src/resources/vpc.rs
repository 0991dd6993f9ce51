//! A VPC, with DNS support and DNS hostnames (EKS needs both).

use std::collections::BTreeMap;

use aws_sdk_ec2::operation::modify_vpc_attribute::builders::ModifyVpcAttributeFluentBuilder;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType, VpcAttributeName};
use byoc_engine::Ctx;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::ec2::{Ec2Object, Tags};
use super::{ResourceKind, Result, ec2_describe, ec2_tags};
use crate::aws::Aws;
use crate::aws::api::Ec2;

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

pub struct Vpc;

impl Vpc {
    async fn attribute(aws: &Aws, ctx: &Ctx, id: &str, name: VpcAttributeName) -> Result<bool> {
        let out = aws
            .request(Ec2, "DescribeVpcAttribute", ctx, |ec2| {
                ec2.describe_vpc_attribute()
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
}

impl ResourceKind for Vpc {
    const KIND: &'static str = KIND;
    type Inputs = Inputs;
    const REPLACE_ON: &'static [&'static str] = &["cidr_block"];
}

impl Ec2Object for Vpc {
    type Object = aws_sdk_ec2::types::Vpc;
    const WHAT: &'static str = "VPC";

    async fn create(aws: &Aws, ctx: &Ctx, inputs: &Inputs) -> Result<Self::Object> {
        let out = aws
            .request(Ec2, "CreateVpc", ctx, |ec2| {
                ec2.create_vpc()
                    .cidr_block(&inputs.cidr_block)
                    .tag_specifications(ec2_tags(aws, ctx, ResourceType::Vpc, &inputs.tags))
                    .send()
            })
            .await?;
        super::required(out.vpc().cloned(), "VPC")
    }

    ec2_describe!(Vpc, "DescribeVpcs", describe_vpcs, set_vpc_ids, vpcs);

    fn outputs(id: &str, inputs: &Inputs, _: Option<&Self::Object>) -> Value {
        json!({"id": id, "cidr_block": inputs.cidr_block})
    }

    async fn inputs(aws: &Aws, ctx: &Ctx, vpc: &Self::Object, tags: Tags) -> Result<Inputs> {
        use VpcAttributeName::{EnableDnsHostnames, EnableDnsSupport};
        let id = vpc.vpc_id().unwrap_or_default();
        Ok(Inputs {
            cidr_block: vpc.cidr_block().unwrap_or_default().to_string(),
            enable_dns_support: Vpc::attribute(aws, ctx, id, EnableDnsSupport).await?,
            enable_dns_hostnames: Vpc::attribute(aws, ctx, id, EnableDnsHostnames).await?,
            tags,
        })
    }

    /// The DNS attributes CreateVpc cannot set, one per call (the API refuses both at once).
    async fn settle(
        aws: &Aws,
        ctx: &Ctx,
        id: &str,
        old: Option<&Inputs>,
        new: &Inputs,
    ) -> Result<()> {
        type Request = ModifyVpcAttributeFluentBuilder;
        // Each attribute: its input, and how the request sets it.
        type Attribute = (
            fn(&Inputs) -> bool,
            fn(Request, AttributeBooleanValue) -> Request,
        );
        let attributes: [Attribute; 2] = [
            (|i| i.enable_dns_support, Request::enable_dns_support),
            (|i| i.enable_dns_hostnames, Request::enable_dns_hostnames),
        ];
        for (value, set) in attributes {
            if old.is_none_or(|o| value(o) != value(new)) {
                let flag = AttributeBooleanValue::builder().value(value(new)).build();
                aws.perform(Ec2, "ModifyVpcAttribute", ctx, |ec2| {
                    set(ec2.modify_vpc_attribute().vpc_id(id), flag.clone()).send()
                })
                .await?;
            }
        }
        Ok(())
    }

    async fn delete(aws: &Aws, ctx: &Ctx, id: &str) -> Result<()> {
        aws.perform(Ec2, "DeleteVpc", ctx, |ec2| {
            ec2.delete_vpc().vpc_id(id).send()
        })
        .await
    }
}
