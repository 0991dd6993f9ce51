//! An internet gateway attached to a VPC. Physical id: `{igw}:{vpc}`.

use std::sync::Arc;

use async_trait::async_trait;
use byoc_engine::{Created, Ctx, ProviderError};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::ec2::Ec2Object;
use super::internet_gateway::InternetGateway;
use super::{ResourceKind, Result, Seen, TypedProvider, not_found};
use crate::aws::Aws;
use crate::aws::api::Ec2;

pub const KIND: &str = "aws:ec2:InternetGatewayAttachment";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    pub internet_gateway_id: String,
    pub vpc_id: String,
}

pub struct InternetGatewayAttachment(pub Arc<Aws>);

impl InternetGatewayAttachment {
    fn created(inputs: &Inputs) -> Created {
        Created {
            physical_id: format!("{}:{}", inputs.internet_gateway_id, inputs.vpc_id),
            outputs: json!({"internet_gateway_id": inputs.internet_gateway_id, "vpc_id": inputs.vpc_id}),
        }
    }

    /// The VPCs the gateway is attached to.
    async fn attached(&self, ctx: &Ctx, igw: &str) -> Result<Vec<String>> {
        let g = InternetGateway::existing(&self.0, ctx, igw).await?;
        Ok(g.attachments()
            .iter()
            .filter_map(|a| a.vpc_id().map(str::to_string))
            .collect())
    }
}

fn split(id: &str) -> Result<Inputs> {
    let (igw, vpc) = id
        .split_once(':')
        .ok_or_else(|| ProviderError::new(format!("{id:?} is not an attachment id (igw:vpc)")))?;
    Ok(Inputs {
        internet_gateway_id: igw.into(),
        vpc_id: vpc.into(),
    })
}

impl ResourceKind for InternetGatewayAttachment {
    const KIND: &'static str = KIND;
    type Inputs = Inputs;
    const REPLACE_ON: &'static [&'static str] = &["internet_gateway_id", "vpc_id"];
    const UNIQUE_BY: &'static [&'static [&'static str]] = &[&["internet_gateway_id"], &["vpc_id"]];
}

#[async_trait]
impl TypedProvider for InternetGatewayAttachment {
    async fn create(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Created> {
        let aws = &self.0;
        aws.perform(Ec2, "AttachInternetGateway", ctx, |ec2| {
            ec2.attach_internet_gateway()
                .internet_gateway_id(&inputs.internet_gateway_id)
                .vpc_id(&inputs.vpc_id)
                .send()
        })
        .await?;
        Ok(InternetGatewayAttachment::created(inputs))
    }

    async fn read(&self, ctx: &Ctx, id: &str, _: &Inputs) -> Result<Seen<Inputs>> {
        let inputs = split(id)?;
        if !self
            .attached(ctx, &inputs.internet_gateway_id)
            .await?
            .contains(&inputs.vpc_id)
        {
            return Err(not_found("internet gateway attachment", id));
        }
        Ok(Seen {
            outputs: InternetGatewayAttachment::created(&inputs).outputs,
            inputs,
        })
    }

    async fn delete(&self, ctx: &Ctx, id: &str, _: &Inputs) -> Result<()> {
        let aws = &self.0;
        let inputs = split(id)?;
        match aws
            .perform(Ec2, "DetachInternetGateway", ctx, |ec2| {
                ec2.detach_internet_gateway()
                    .internet_gateway_id(&inputs.internet_gateway_id)
                    .vpc_id(&inputs.vpc_id)
                    .send()
            })
            .await
        {
            // Detached already: a repeat of a detach whose outcome was not recorded (the
            // crash matrix found it).
            Err(e) if e.code.as_deref() == Some("Gateway.NotAttached") => Ok(()),
            other => other,
        }
    }

    async fn find_existing(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Option<Created>> {
        let attached = self.attached(ctx, &inputs.internet_gateway_id).await?;
        Ok(attached
            .contains(&inputs.vpc_id)
            .then(|| InternetGatewayAttachment::created(inputs)))
    }
}
