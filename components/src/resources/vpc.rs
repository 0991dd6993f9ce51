//! A VPC, with DNS support and DNS hostnames (EKS needs both).

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType, VpcAttributeName};
use byoc_engine::{Created, Ctx, ProviderError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::ec2::{Ec2Object, Tags};
use super::{ResourceKind, ec2_describe, ec2_tags, with_id};
use crate::aws::Aws;
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

pub struct Vpc;

/// What AWS sets on a new VPC: DNS support on, DNS hostnames off.
const CREATED: (bool, bool) = (true, false);

impl Vpc {
    /// Sets the DNS attributes that differ from `old` (`(support, hostnames)`; `None`:
    /// unknown, both set), both at once: the API takes one attribute per call.
    async fn set_attributes(
        aws: &Aws,
        ctx: &Ctx,
        id: &str,
        old: Option<(bool, bool)>,
        new: &Inputs,
    ) -> Result<(), ProviderError> {
        use VpcAttributeName::{EnableDnsHostnames, EnableDnsSupport};
        let set = |name: VpcAttributeName, was: Option<bool>, value: bool| async move {
            if was == Some(value) {
                return Ok(());
            }
            let flag = AttributeBooleanValue::builder().value(value).build();
            aws.perform(Ec2, "ModifyVpcAttribute", ctx, |aws| {
                let request = aws.ec2.modify_vpc_attribute().vpc_id(id);
                match &name {
                    EnableDnsSupport => request.enable_dns_support(flag.clone()),
                    _ => request.enable_dns_hostnames(flag.clone()),
                }
                .send()
            })
            .await
        };
        tokio::try_join!(
            set(EnableDnsSupport, old.map(|o| o.0), new.enable_dns_support),
            set(
                EnableDnsHostnames,
                old.map(|o| o.1),
                new.enable_dns_hostnames
            ),
        )
        .map(drop)
    }

    async fn attribute(
        aws: &Aws,
        ctx: &Ctx,
        id: &str,
        name: VpcAttributeName,
    ) -> Result<bool, ProviderError> {
        let out = aws
            .request(Ec2, "DescribeVpcAttribute", ctx, |aws| {
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
}

impl ResourceKind for Vpc {
    const KIND: &'static str = KIND;
    type Inputs = Inputs;
    const REPLACE_ON: &'static [&'static str] = &["cidr_block"];
}

impl Ec2Object for Vpc {
    type Object = aws_sdk_ec2::types::Vpc;
    const WHAT: &'static str = "VPC";

    async fn create(aws: &Aws, ctx: &Ctx, inputs: &Inputs) -> Result<Created, ProviderError> {
        let out = aws
            .request(Ec2, "CreateVpc", ctx, |aws| {
                aws.ec2
                    .create_vpc()
                    .cidr_block(&inputs.cidr_block)
                    .tag_specifications(ec2_tags(aws, ctx, ResourceType::Vpc, &inputs.tags))
                    .send()
            })
            .await?;
        let id = super::required(out.vpc().and_then(|v| v.vpc_id()), "VPC id")?;
        Vpc::set_attributes(aws, ctx, id, Some(CREATED), inputs).await?;
        Ok(Created {
            outputs: Vpc::outputs(id, inputs, None),
            ..with_id(id)
        })
    }

    ec2_describe!(Vpc, "DescribeVpcs", describe_vpcs, set_vpc_ids, vpcs);

    fn outputs(id: &str, inputs: &Inputs, _: Option<&Self::Object>) -> Value {
        json!({"id": id, "cidr_block": inputs.cidr_block})
    }

    async fn inputs(
        aws: &Aws,
        ctx: &Ctx,
        vpc: &Self::Object,
        tags: Tags,
    ) -> Result<Inputs, ProviderError> {
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

    /// The create may have died between CreateVpc and the attributes.
    async fn settle(
        aws: &Aws,
        ctx: &Ctx,
        id: &str,
        old: Option<&Inputs>,
        new: &Inputs,
    ) -> Result<(), ProviderError> {
        let old = old.map(|o| (o.enable_dns_support, o.enable_dns_hostnames));
        Vpc::set_attributes(aws, ctx, id, old, new).await
    }

    async fn delete(aws: &Aws, ctx: &Ctx, id: &str) -> Result<(), ProviderError> {
        aws.perform(Ec2, "DeleteVpc", ctx, |aws| {
            aws.ec2.delete_vpc().vpc_id(id).send()
        })
        .await
    }
}
