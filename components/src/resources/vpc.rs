//! A VPC, with DNS support and DNS hostnames (EKS needs both).

use std::collections::BTreeMap;

use aws_sdk_ec2::operation::modify_vpc_attribute::builders::ModifyVpcAttributeFluentBuilder;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType, VpcAttributeName};
use byoc_engine::Ctx;
use futures::future::try_join_all;
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
        let (enable_dns_support, enable_dns_hostnames) = tokio::try_join!(
            Vpc::attribute(aws, ctx, id, EnableDnsSupport),
            Vpc::attribute(aws, ctx, id, EnableDnsHostnames),
        )?;
        Ok(Inputs {
            cidr_block: vpc.cidr_block().unwrap_or_default().to_string(),
            enable_dns_support,
            enable_dns_hostnames,
            tags,
        })
    }

    /// The DNS attributes CreateVpc cannot set that differ from `old` (without it, from
    /// what a new VPC has: DNS support on, hostnames off), at once: the API takes one
    /// attribute per call.
    async fn settle(
        aws: &Aws,
        ctx: &Ctx,
        id: &str,
        old: Option<&Inputs>,
        new: &Inputs,
    ) -> Result<()> {
        type Request = ModifyVpcAttributeFluentBuilder;
        // Each attribute: its input, its value in a new VPC, how the request sets it.
        type Attribute = (
            fn(&Inputs) -> bool,
            bool,
            fn(Request, AttributeBooleanValue) -> Request,
        );
        let attributes: [Attribute; 2] = [
            (|i| i.enable_dns_support, true, Request::enable_dns_support),
            (
                |i| i.enable_dns_hostnames,
                false,
                Request::enable_dns_hostnames,
            ),
        ];
        let calls = attributes
            .into_iter()
            .filter(|(value, created, _)| old.map_or(*created, value) != value(new))
            .map(|(value, _, set)| {
                let flag = AttributeBooleanValue::builder().value(value(new)).build();
                aws.perform(Ec2, "ModifyVpcAttribute", ctx, move |ec2| {
                    set(ec2.modify_vpc_attribute().vpc_id(id), flag.clone()).send()
                })
            });
        try_join_all(calls).await.map(drop)
    }

    async fn delete(aws: &Aws, ctx: &Ctx, id: &str) -> Result<()> {
        aws.perform(Ec2, "DeleteVpc", ctx, |ec2| {
            ec2.delete_vpc().vpc_id(id).send()
        })
        .await
    }
}
