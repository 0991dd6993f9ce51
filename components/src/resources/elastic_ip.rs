//! An Elastic IP address (for a NAT gateway).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ec2::types::{Address, DomainType, ResourceType};
use byoc_engine::{Created, Ctx, ProviderError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    Ec2Find, Seen, TypedProvider, ec2_describe, ec2_retag, ec2_tag_map, ec2_tags, not_found,
};
use crate::aws::{Aws, user_tags};
use crate::limiter::Service::Ec2;

pub const KIND: &str = "aws:ec2:ElasticIp";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

pub struct ElasticIp(pub Arc<Aws>);

impl ElasticIp {
    fn created(id: &str, public_ip: Option<&str>) -> Created {
        Created {
            physical_id: id.to_string(),
            outputs: json!({"id": id, "public_ip": public_ip}),
        }
    }

    ec2_describe!(
        Address,
        "DescribeAddresses",
        describe_addresses,
        set_allocation_ids,
        addresses
    );

    async fn get(&self, ctx: &Ctx, id: &str) -> Result<Address, ProviderError> {
        self.describe(ctx, Ec2Find::Id(id))
            .await?
            .ok_or_else(|| not_found("Elastic IP", id))
    }
}

#[async_trait]
impl TypedProvider for ElasticIp {
    const KIND: &'static str = KIND;
    type Inputs = Inputs;
    const REPLACE_ON: &'static [&'static str] = &[];

    async fn create(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Created, ProviderError> {
        let aws = &self.0;
        let out = aws
            .call(Ec2, "AllocateAddress", &ctx.cancel, || {
                aws.ec2
                    .allocate_address()
                    .domain(DomainType::Vpc)
                    .tag_specifications(ec2_tags(aws, ctx, ResourceType::ElasticIp, &inputs.tags))
                    .send()
            })
            .await?;
        let id = super::required(out.allocation_id(), "allocation id")?;
        Ok(ElasticIp::created(id, out.public_ip()))
    }

    async fn read(&self, ctx: &Ctx, id: &str, _: &Inputs) -> Result<Seen<Inputs>, ProviderError> {
        let address = self.get(ctx, id).await?;
        Ok(Seen {
            inputs: Inputs {
                tags: user_tags(&ec2_tag_map(address.tags())),
            },
            outputs: ElasticIp::created(id, address.public_ip()).outputs,
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
        let address = self.get(ctx, id).await?;
        Ok(ElasticIp::created(id, address.public_ip()).outputs)
    }

    async fn delete(&self, ctx: &Ctx, id: &str, _: &Inputs) -> Result<(), ProviderError> {
        let aws = &self.0;
        aws.call(Ec2, "ReleaseAddress", &ctx.cancel, || {
            aws.ec2.release_address().allocation_id(id).send()
        })
        .await?;
        Ok(())
    }

    async fn find_existing(&self, ctx: &Ctx, _: &Inputs) -> Result<Option<Created>, ProviderError> {
        let found = self.describe(ctx, Ec2Find::Made).await?;
        Ok(found.as_ref().and_then(|a| {
            a.allocation_id()
                .map(|id| ElasticIp::created(id, a.public_ip()))
        }))
    }
}
