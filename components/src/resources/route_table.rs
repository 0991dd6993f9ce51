//! A route table of a VPC (its routes and subnet associations are resources of their own).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ec2::types::ResourceType;
use byoc_engine::{Created, Ctx, ProviderError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    Ec2Find, Seen, TypedProvider, ec2_describe, ec2_retag, ec2_tag_map, ec2_tags, not_found,
    with_id,
};
use crate::aws::{Aws, user_tags};
use crate::limiter::Service::Ec2;

pub const KIND: &str = "aws:ec2:RouteTable";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    pub vpc_id: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

pub struct RouteTable(pub Arc<Aws>);

impl RouteTable {
    ec2_describe!(
        RouteTable,
        "DescribeRouteTables",
        describe_route_tables,
        set_route_table_ids,
        route_tables
    );
}

#[async_trait]
impl TypedProvider for RouteTable {
    const KIND: &'static str = KIND;
    type Inputs = Inputs;
    const REPLACE_ON: &'static [&'static str] = &["vpc_id"];

    async fn create(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Created, ProviderError> {
        let aws = &self.0;
        let out = aws
            .call(Ec2, "CreateRouteTable", &ctx.cancel, || {
                aws.ec2
                    .create_route_table()
                    .vpc_id(&inputs.vpc_id)
                    .tag_specifications(ec2_tags(aws, ctx, ResourceType::RouteTable, &inputs.tags))
                    .send()
            })
            .await?;
        let id = super::required(
            out.route_table().and_then(|t| t.route_table_id()),
            "route table id",
        )?;
        Ok(with_id(id))
    }

    async fn read(&self, ctx: &Ctx, id: &str, _: &Inputs) -> Result<Seen<Inputs>, ProviderError> {
        let t = self
            .describe(ctx, Ec2Find::Id(id))
            .await?
            .ok_or_else(|| not_found("route table", id))?;
        Ok(Seen {
            inputs: Inputs {
                vpc_id: t.vpc_id().unwrap_or_default().to_string(),
                tags: user_tags(&ec2_tag_map(t.tags())),
            },
            outputs: with_id(id).outputs,
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
        Ok(with_id(id).outputs)
    }

    async fn delete(&self, ctx: &Ctx, id: &str, _: &Inputs) -> Result<(), ProviderError> {
        let aws = &self.0;
        aws.call(Ec2, "DeleteRouteTable", &ctx.cancel, || {
            aws.ec2.delete_route_table().route_table_id(id).send()
        })
        .await?;
        Ok(())
    }

    async fn find_existing(&self, ctx: &Ctx, _: &Inputs) -> Result<Option<Created>, ProviderError> {
        let found = self.describe(ctx, Ec2Find::Made).await?;
        Ok(found.as_ref().and_then(|t| t.route_table_id()).map(with_id))
    }
}
