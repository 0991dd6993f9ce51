//! An internet gateway (attached to its VPC by an `InternetGatewayAttachment`).

use aws_sdk_ec2::types::ResourceType;
use byoc_engine::Ctx;

use super::ec2::{Ec2Object, Tags, TagsOnly};
use super::{ResourceKind, Result, ec2_describe, ec2_tags};
use crate::aws::Aws;
use crate::aws::api::Ec2;

pub const KIND: &str = "aws:ec2:InternetGateway";

/// Its user tags, all it takes.
pub type Inputs = TagsOnly;

pub struct InternetGateway;

impl ResourceKind for InternetGateway {
    const KIND: &'static str = KIND;
    type Inputs = Inputs;
    const REPLACE_ON: &'static [&'static str] = &[];
}

impl Ec2Object for InternetGateway {
    type Object = aws_sdk_ec2::types::InternetGateway;
    const WHAT: &'static str = "internet gateway";

    async fn create(aws: &Aws, ctx: &Ctx, inputs: &Inputs) -> Result<Self::Object> {
        let tags = ec2_tags(aws, ctx, ResourceType::InternetGateway, &inputs.tags);
        let out = aws
            .request(Ec2, "CreateInternetGateway", ctx, |ec2| {
                let request = ec2.create_internet_gateway();
                request.tag_specifications(tags.clone()).send()
            })
            .await?;
        super::required(out.internet_gateway().cloned(), "internet gateway")
    }

    ec2_describe!(
        InternetGateway,
        "DescribeInternetGateways",
        describe_internet_gateways,
        set_internet_gateway_ids,
        internet_gateways
    );

    async fn inputs(_: &Aws, _: &Ctx, _: &Self::Object, tags: Tags) -> Result<Inputs> {
        Ok(Inputs { tags })
    }

    async fn delete(aws: &Aws, ctx: &Ctx, id: &str) -> Result<()> {
        aws.perform(Ec2, "DeleteInternetGateway", ctx, |ec2| {
            ec2.delete_internet_gateway().internet_gateway_id(id).send()
        })
        .await
    }
}
