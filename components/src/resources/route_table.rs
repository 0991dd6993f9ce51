//! A route table of a VPC (its routes and subnet associations are resources of their own).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ec2::types::ResourceType;
use byoc_engine::{Created, Ctx, Diff, ErrorClass, Observed, Provider, ProviderError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{diff_replacing, ec2_owner_filters, ec2_retag, ec2_tag_map, ec2_tags, not_found};
use crate::aws::{self, Aws, user_tags};
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
    fn created(id: &str) -> Created {
        Created {
            physical_id: id.to_string(),
            outputs: json!({"id": id}),
        }
    }
}

#[async_trait]
impl Provider for RouteTable {
    fn diff(&self, old: &Value, new: &Value) -> Diff {
        diff_replacing::<Inputs>(old, new, &["vpc_id"])
    }

    async fn create(&self, ctx: &Ctx, inputs: &Value) -> Result<Created, ProviderError> {
        let aws = &self.0;
        let inputs: Inputs = aws::parse(KIND, inputs)?;
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
        Ok(RouteTable::created(id))
    }

    async fn read(&self, ctx: &Ctx, id: &str, _inputs: &Value) -> Result<Observed, ProviderError> {
        let aws = &self.0;
        let out = aws
            .call(Ec2, "DescribeRouteTables", &ctx.cancel, || {
                aws.ec2.describe_route_tables().route_table_ids(id).send()
            })
            .await?;
        let t = out
            .route_tables()
            .first()
            .ok_or_else(|| not_found("route table", id))?;
        let inputs = Inputs {
            vpc_id: t.vpc_id().unwrap_or_default().to_string(),
            tags: user_tags(&ec2_tag_map(t.tags())),
        };
        Ok(Observed {
            outputs: RouteTable::created(id).outputs,
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
        Ok(RouteTable::created(id).outputs)
    }

    async fn delete(&self, ctx: &Ctx, id: &str, _inputs: &Value) -> Result<(), ProviderError> {
        let aws = &self.0;
        aws.call(Ec2, "DeleteRouteTable", &ctx.cancel, || {
            aws.ec2.delete_route_table().route_table_id(id).send()
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
            .call(Ec2, "DescribeRouteTables", &ctx.cancel, || {
                aws.ec2
                    .describe_route_tables()
                    .set_filters(Some(ec2_owner_filters(aws, ctx)))
                    .send()
            })
            .await?;
        Ok(out
            .route_tables()
            .first()
            .and_then(|t| t.route_table_id())
            .map(RouteTable::created))
    }

    fn classify(&self, error: &ProviderError) -> ErrorClass {
        aws::classify(error)
    }
}
