//! An Elastic IP address (for a NAT gateway).

use aws_sdk_ec2::types::{Address, DomainType, ResourceType};
use byoc_engine::Ctx;
use serde_json::{Value, json};

use super::ec2::{Ec2Object, Tags, TagsOnly};
use super::{ResourceKind, Result, ec2_describe, ec2_tags};
use crate::aws::Aws;
use crate::aws::api::Ec2;

pub const KIND: &str = "aws:ec2:ElasticIp";

/// Its user tags, all it takes.
pub type Inputs = TagsOnly;

pub struct ElasticIp;

impl ResourceKind for ElasticIp {
    const KIND: &'static str = KIND;
    type Inputs = Inputs;
    const REPLACE_ON: &'static [&'static str] = &[];
}

impl Ec2Object for ElasticIp {
    type Object = Address;
    const WHAT: &'static str = "Elastic IP";

    /// The address as AllocateAddress tells it: its allocation id and public IP.
    async fn create(aws: &Aws, ctx: &Ctx, inputs: &Inputs) -> Result<Address> {
        let out = aws
            .request(Ec2, "AllocateAddress", ctx, |ec2| {
                ec2.allocate_address()
                    .domain(DomainType::Vpc)
                    .tag_specifications(ec2_tags(aws, ctx, ResourceType::ElasticIp, &inputs.tags))
                    .send()
            })
            .await?;
        Ok(Address::builder()
            .set_allocation_id(out.allocation_id().map(str::to_string))
            .set_public_ip(out.public_ip().map(str::to_string))
            .build())
    }

    ec2_describe!(
        Address,
        "DescribeAddresses",
        describe_addresses,
        set_allocation_ids,
        addresses
    );

    async fn inputs(_: &Aws, _: &Ctx, _: &Address, tags: Tags) -> Result<Inputs> {
        Ok(Inputs { tags })
    }

    /// The public IP is AWS's to give.
    const OUTPUTS_FROM_AWS: bool = true;

    fn outputs(id: &str, _: &Inputs, address: Option<&Address>) -> Value {
        json!({"id": id, "public_ip": address.and_then(|a| a.public_ip())})
    }

    async fn delete(aws: &Aws, ctx: &Ctx, id: &str) -> Result<()> {
        aws.perform(Ec2, "ReleaseAddress", ctx, |ec2| {
            ec2.release_address().allocation_id(id).send()
        })
        .await
    }
}
