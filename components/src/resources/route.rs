//! One route of a route table, to an internet gateway or a NAT gateway. Physical id:
//! `{route_table_id}_{destination}`. A new target replaces the route in place.

use std::sync::Arc;

use async_trait::async_trait;
use byoc_engine::{Created, Ctx, ProviderError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::ec2::Ec2Object;
use super::route_table::RouteTable;
use super::{ResourceKind, Result, Seen, TypedProvider, not_found};
use crate::aws::Aws;
use crate::aws::api::Ec2;

pub const KIND: &str = "aws:ec2:Route";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    pub route_table_id: String,
    pub destination_cidr_block: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat_gateway_id: Option<String>,
}

pub struct Route(pub Arc<Aws>);

impl Route {
    fn created(inputs: &Inputs) -> Created {
        Created {
            physical_id: format!(
                "{}_{}",
                inputs.route_table_id, inputs.destination_cidr_block
            ),
            outputs: json!({"route_table_id": inputs.route_table_id}),
        }
    }

    /// The route as it is in its table, if it is there.
    async fn find(&self, ctx: &Ctx, table: &str, destination: &str) -> Result<Option<Inputs>> {
        let t = RouteTable::existing(&self.0, ctx, table).await?;
        Ok(t.routes()
            .iter()
            .find(|r| r.destination_cidr_block() == Some(destination))
            .map(|r| Inputs {
                route_table_id: table.to_string(),
                destination_cidr_block: destination.to_string(),
                gateway_id: r.gateway_id().map(str::to_string),
                nat_gateway_id: r.nat_gateway_id().map(str::to_string),
            }))
    }
}

/// `request` (CreateRoute or ReplaceRoute, which take the same fields but share no trait)
/// for the route `inputs` describe.
macro_rules! route {
    ($request:expr, $inputs:expr) => {
        $request
            .route_table_id(&$inputs.route_table_id)
            .destination_cidr_block(&$inputs.destination_cidr_block)
            .set_gateway_id($inputs.gateway_id.clone())
            .set_nat_gateway_id($inputs.nat_gateway_id.clone())
    };
}

fn split(id: &str) -> Result<(&str, &str)> {
    id.split_once('_')
        .ok_or_else(|| ProviderError::new(format!("{id:?} is not a route id (table_destination)")))
}

impl ResourceKind for Route {
    const KIND: &'static str = KIND;
    type Inputs = Inputs;
    const REPLACE_ON: &'static [&'static str] = &["route_table_id", "destination_cidr_block"];
    const UNIQUE_BY: &'static [&'static [&'static str]] =
        &[&["route_table_id", "destination_cidr_block"]];

    /// A route has one target.
    fn check(inputs: &Inputs) -> Result<(), String> {
        match (&inputs.gateway_id, &inputs.nat_gateway_id) {
            (Some(_), None) | (None, Some(_)) => Ok(()),
            _ => Err("a route needs one target: gateway_id or nat_gateway_id".into()),
        }
    }
}

#[async_trait]
impl TypedProvider for Route {
    async fn create(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Created> {
        let aws = &self.0;
        aws.perform(Ec2, "CreateRoute", ctx, |ec2| {
            route!(ec2.create_route(), inputs).send()
        })
        .await?;
        Ok(Route::created(inputs))
    }

    async fn read(&self, ctx: &Ctx, id: &str, _: &Inputs) -> Result<Seen<Inputs>> {
        let (table, destination) = split(id)?;
        let inputs = self
            .find(ctx, table, destination)
            .await?
            .ok_or_else(|| not_found("route", id))?;
        Ok(Seen {
            outputs: Route::created(&inputs).outputs,
            inputs,
        })
    }

    async fn update(&self, ctx: &Ctx, _: &str, _: &Inputs, new: &Inputs) -> Result<Value> {
        let aws = &self.0;
        aws.perform(Ec2, "ReplaceRoute", ctx, |ec2| {
            route!(ec2.replace_route(), new).send()
        })
        .await?;
        Ok(Route::created(new).outputs)
    }

    async fn delete(&self, ctx: &Ctx, id: &str, _: &Inputs) -> Result<()> {
        let aws = &self.0;
        let (table, destination) = split(id)?;
        aws.perform(Ec2, "DeleteRoute", ctx, |ec2| {
            ec2.delete_route()
                .route_table_id(table)
                .destination_cidr_block(destination)
                .send()
        })
        .await
    }

    async fn find_existing(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Option<Created>> {
        let found = self
            .find(ctx, &inputs.route_table_id, &inputs.destination_cidr_block)
            .await?;
        Ok(found.map(|_| Route::created(inputs)))
    }
}
