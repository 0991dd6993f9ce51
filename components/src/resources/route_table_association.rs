//! A subnet associated with a route table. Physical id: the association id.

use std::sync::Arc;

use async_trait::async_trait;
use byoc_engine::{Created, Ctx, Diff, ErrorClass, Observed, Provider, ProviderError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{diff_replacing, not_found};
use crate::aws::{self, Aws};
use crate::limiter::Service::Ec2;

pub const KIND: &str = "aws:ec2:RouteTableAssociation";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    pub route_table_id: String,
    pub subnet_id: String,
}

pub struct RouteTableAssociation(pub Arc<Aws>);

impl RouteTableAssociation {
    fn created(id: &str) -> Created {
        Created {
            physical_id: id.to_string(),
            outputs: json!({"id": id}),
        }
    }

    /// The association of `subnet` with `table`, if there is one: `(id, table, subnet)`.
    async fn lookup(
        &self,
        ctx: &Ctx,
        filter: (&str, &str),
    ) -> Result<Option<(String, Inputs)>, ProviderError> {
        let aws = &self.0;
        let f = aws_sdk_ec2::types::Filter::builder()
            .name(filter.0)
            .values(filter.1)
            .build();
        let out = aws
            .call(Ec2, "DescribeRouteTables", &ctx.cancel, || {
                aws.ec2.describe_route_tables().filters(f.clone()).send()
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

#[async_trait]
impl Provider for RouteTableAssociation {
    fn diff(&self, old: &Value, new: &Value) -> Diff {
        diff_replacing::<Inputs>(old, new, &["route_table_id", "subnet_id"])
    }

    async fn create(&self, ctx: &Ctx, inputs: &Value) -> Result<Created, ProviderError> {
        let aws = &self.0;
        let inputs: Inputs = aws::parse(KIND, inputs)?;
        let out = aws
            .call(Ec2, "AssociateRouteTable", &ctx.cancel, || {
                aws.ec2
                    .associate_route_table()
                    .route_table_id(&inputs.route_table_id)
                    .subnet_id(&inputs.subnet_id)
                    .send()
            })
            .await?;
        let id = super::required(out.association_id(), "association id")?;
        Ok(RouteTableAssociation::created(id))
    }

    async fn read(&self, ctx: &Ctx, id: &str, _inputs: &Value) -> Result<Observed, ProviderError> {
        let (_, inputs) = self
            .lookup(ctx, ("association.route-table-association-id", id))
            .await?
            .ok_or_else(|| not_found("route table association", id))?;
        Ok(Observed {
            outputs: RouteTableAssociation::created(id).outputs,
            inputs: json!(inputs),
        })
    }

    async fn update(
        &self,
        _ctx: &Ctx,
        id: &str,
        _old: &Value,
        _new: &Value,
    ) -> Result<Value, ProviderError> {
        Ok(RouteTableAssociation::created(id).outputs)
    }

    async fn delete(&self, ctx: &Ctx, id: &str, _inputs: &Value) -> Result<(), ProviderError> {
        let aws = &self.0;
        aws.call(Ec2, "DisassociateRouteTable", &ctx.cancel, || {
            aws.ec2.disassociate_route_table().association_id(id).send()
        })
        .await?;
        Ok(())
    }

    async fn find_existing(
        &self,
        ctx: &Ctx,
        inputs: &Value,
    ) -> Result<Option<Created>, ProviderError> {
        let inputs: Inputs = aws::parse(KIND, inputs)?;
        let found = self
            .lookup(ctx, ("association.subnet-id", &inputs.subnet_id))
            .await?;
        Ok(found
            .filter(|(_, found)| found.route_table_id == inputs.route_table_id)
            .map(|(id, _)| RouteTableAssociation::created(&id)))
    }

    fn classify(&self, error: &ProviderError) -> ErrorClass {
        aws::classify(error)
    }
}
