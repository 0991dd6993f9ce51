//! An Elastic IP address (for a NAT gateway).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ec2::types::{DomainType, ResourceType};
use byoc_engine::{Created, Ctx, Diff, ErrorClass, Observed, Provider, ProviderError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{diff_replacing, ec2_owner_filters, ec2_retag, ec2_tag_map, ec2_tags, not_found};
use crate::aws::{self, Aws, user_tags};
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

    async fn describe(
        &self,
        ctx: &Ctx,
        id: &str,
    ) -> Result<aws_sdk_ec2::types::Address, ProviderError> {
        let aws = &self.0;
        let out = aws
            .call(Ec2, "DescribeAddresses", &ctx.cancel, || {
                aws.ec2.describe_addresses().allocation_ids(id).send()
            })
            .await?;
        out.addresses()
            .first()
            .cloned()
            .ok_or_else(|| not_found("Elastic IP", id))
    }
}

#[async_trait]
impl Provider for ElasticIp {
    fn diff(&self, old: &Value, new: &Value) -> Diff {
        diff_replacing::<Inputs>(old, new, &[])
    }

    async fn create(&self, ctx: &Ctx, inputs: &Value) -> Result<Created, ProviderError> {
        let aws = &self.0;
        let inputs: Inputs = aws::parse(KIND, inputs)?;
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

    async fn read(&self, ctx: &Ctx, id: &str, _inputs: &Value) -> Result<Observed, ProviderError> {
        let address = self.describe(ctx, id).await?;
        let inputs = Inputs {
            tags: user_tags(&ec2_tag_map(address.tags())),
        };
        Ok(Observed {
            outputs: ElasticIp::created(id, address.public_ip()).outputs,
            inputs: json!(inputs),
        })
    }

    async fn update(
        &self,
        ctx: &Ctx,
        id: &str,
        old: &Value,
        new: &Value,
    ) -> Result<Value, ProviderError> {
        let (old, new): (Inputs, Inputs) = (aws::parse(KIND, old)?, aws::parse(KIND, new)?);
        ec2_retag(&self.0, ctx, id, &old.tags, &new.tags).await?;
        let address = self.describe(ctx, id).await?;
        Ok(ElasticIp::created(id, address.public_ip()).outputs)
    }

    async fn delete(&self, ctx: &Ctx, id: &str, _inputs: &Value) -> Result<(), ProviderError> {
        let aws = &self.0;
        aws.call(Ec2, "ReleaseAddress", &ctx.cancel, || {
            aws.ec2.release_address().allocation_id(id).send()
        })
        .await?;
        Ok(())
    }

    async fn find_existing(
        &self,
        ctx: &Ctx,
        _inputs: &Value,
    ) -> Result<Option<Created>, ProviderError> {
        let aws = &self.0;
        let out = aws
            .call(Ec2, "DescribeAddresses", &ctx.cancel, || {
                aws.ec2
                    .describe_addresses()
                    .set_filters(Some(ec2_owner_filters(aws, ctx)))
                    .send()
            })
            .await?;
        Ok(out.addresses().first().and_then(|a| {
            a.allocation_id()
                .map(|id| ElasticIp::created(id, a.public_ip()))
        }))
    }

    fn classify(&self, error: &ProviderError) -> ErrorClass {
        aws::classify(error)
    }
}
