//! A subnet associated with a route table. Physical id: the association id.

use std::sync::Arc;

use async_trait::async_trait;
use byoc_engine::{Created, Ctx};
use serde::{Deserialize, Serialize};

use super::{ResourceKind, Result, Seen, TypedProvider, not_found, with_id};
use crate::aws::Aws;
use crate::aws::api::Ec2;

pub const KIND: &str = "aws:ec2:RouteTableAssociation";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    pub route_table_id: String,
    pub subnet_id: String,
}

pub struct RouteTableAssociation(pub Arc<Aws>);

impl RouteTableAssociation {
    /// The association of `subnet` with `table`, if there is one: `(id, table, subnet)`.
    async fn lookup(&self, ctx: &Ctx, filter: (&str, &str)) -> Result<Option<(String, Inputs)>> {
        let aws = &self.0;
        let f = aws_sdk_ec2::types::Filter::builder()
            .name(filter.0)
            .values(filter.1)
            .build();
        let out = aws
            .request(Ec2, "DescribeRouteTables", ctx, |ec2| {
                ec2.describe_route_tables().filters(f.clone()).send()
            })
            .await?;
        Ok(out
            .route_tables()
            .iter()
            .flat_map(|t| t.associations())
            .find(|a| match filter.0 {
                "association.subnet-id" => a.subnet_id() == Some(filter.1),
                _ => a.route_table_association_id() == Some(filter.1),
            })
            .and_then(|a| {
                Some((
                    a.route_table_association_id()?.to_string(),
                    Inputs {
                        route_table_id: a.route_table_id()?.to_string(),
                        subnet_id: a.subnet_id()?.to_string(),
                    },
                ))
            }))
    }
}

impl ResourceKind for RouteTableAssociation {
    const KIND: &'static str = KIND;
    type Inputs = Inputs;
    const REPLACE_ON: &'static [&'static str] = &["route_table_id", "subnet_id"];
    const UNIQUE_BY: &'static [&'static [&'static str]] = &[&["subnet_id"]];
}

#[async_trait]
impl TypedProvider for RouteTableAssociation {
    async fn create(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Created> {
        let aws = &self.0;
        let out = aws
            .request(Ec2, "AssociateRouteTable", ctx, |ec2| {
                ec2.associate_route_table()
                    .route_table_id(&inputs.route_table_id)
                    .subnet_id(&inputs.subnet_id)
                    .send()
            })
            .await?;
        let id = super::required(out.association_id(), "association id")?;
        Ok(with_id(id))
    }

    async fn read(&self, ctx: &Ctx, id: &str, _: &Inputs) -> Result<Seen<Inputs>> {
        let (_, inputs) = self
            .lookup(ctx, ("association.route-table-association-id", id))
            .await?
            .ok_or_else(|| not_found("route table association", id))?;
        Ok(Seen {
            inputs,
            outputs: with_id(id).outputs,
        })
    }

    async fn delete(&self, ctx: &Ctx, id: &str, _: &Inputs) -> Result<()> {
        let aws = &self.0;
        aws.perform(Ec2, "DisassociateRouteTable", ctx, |ec2| {
            ec2.disassociate_route_table().association_id(id).send()
        })
        .await
    }

    async fn find_existing(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Option<Created>> {
        let found = self
            .lookup(ctx, ("association.subnet-id", &inputs.subnet_id))
            .await?;
        Ok(found
            .filter(|(_, found)| found.route_table_id == inputs.route_table_id)
            .map(|(id, _)| with_id(&id)))
    }
}
