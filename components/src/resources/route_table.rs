//! A route table of a VPC (its routes and subnet associations are resources of their own).

use std::collections::BTreeMap;

use aws_sdk_ec2::types::ResourceType;
use byoc_engine::Ctx;
use serde::{Deserialize, Serialize};

use super::ec2::{Ec2Object, Tags};
use super::{ResourceKind, Result, ec2_describe, ec2_tags};
use crate::aws::Aws;
use crate::aws::api::Ec2;

pub const KIND: &str = "aws:ec2:RouteTable";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    pub vpc_id: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

pub struct RouteTable;

impl ResourceKind for RouteTable {
    const KIND: &'static str = KIND;
    type Inputs = Inputs;
    const REPLACE_ON: &'static [&'static str] = &["vpc_id"];
}

impl Ec2Object for RouteTable {
    type Object = aws_sdk_ec2::types::RouteTable;
    const WHAT: &'static str = "route table";

    async fn create(aws: &Aws, ctx: &Ctx, inputs: &Inputs) -> Result<Self::Object> {
        let out = aws
            .request(Ec2, "CreateRouteTable", ctx, |ec2| {
                ec2.create_route_table()
                    .vpc_id(&inputs.vpc_id)
                    .tag_specifications(ec2_tags(aws, ctx, ResourceType::RouteTable, &inputs.tags))
                    .send()
            })
            .await?;
        super::required(out.route_table().cloned(), "route table")
    }

    ec2_describe!(
        RouteTable,
        "DescribeRouteTables",
        describe_route_tables,
        set_route_table_ids,
        route_tables
    );

    async fn inputs(_: &Aws, _: &Ctx, t: &Self::Object, tags: Tags) -> Result<Inputs> {
        let vpc_id = t.vpc_id().unwrap_or_default().to_string();
        Ok(Inputs { vpc_id, tags })
    }

    async fn delete(aws: &Aws, ctx: &Ctx, id: &str) -> Result<()> {
        aws.perform(Ec2, "DeleteRouteTable", ctx, |ec2| {
            ec2.delete_route_table().route_table_id(id).send()
        })
        .await
    }
}
