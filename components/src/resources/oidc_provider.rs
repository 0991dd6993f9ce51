//! The IAM OpenID Connect provider of an EKS cluster's issuer: how pods get IAM roles.
//! Its ARN follows from the account and the issuer URL, so it is found by that.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use byoc_engine::{Created, Ctx};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::named::{Found, NamedObject, adopt};
use super::{
    ResourceKind, Result, Seen, Tagging, TypedProvider, absent, iam_tag_map, iam_tags, required,
    retag,
};
use crate::aws::api::Iam;
use crate::aws::{Aws, user_tags};

pub const KIND: &str = "aws:iam:OidcProvider";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    /// The issuer, `https://oidc.eks.REGION.amazonaws.com/id/ID`.
    pub url: String,
    pub client_ids: BTreeSet<String>,
    pub thumbprints: Vec<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

pub struct OidcProvider(pub Arc<Aws>);

impl OidcProvider {
    fn created(arn: &str, url: &str) -> Created {
        Created {
            physical_id: arn.to_string(),
            outputs: json!({"arn": arn, "url": url.trim_start_matches("https://")}),
        }
    }

    async fn converge(
        &self,
        ctx: &Ctx,
        arn: &str,
        current: &Inputs,
        desired: &Inputs,
    ) -> Result<()> {
        let aws = &self.0;
        for id in desired.client_ids.difference(&current.client_ids) {
            aws.perform(Iam, "AddClientIDToOpenIDConnectProvider", ctx, |iam| {
                iam.add_client_id_to_open_id_connect_provider()
                    .open_id_connect_provider_arn(arn)
                    .client_id(id)
                    .send()
            })
            .await?;
        }
        for id in current.client_ids.difference(&desired.client_ids) {
            aws.perform(Iam, "RemoveClientIDFromOpenIDConnectProvider", ctx, |iam| {
                iam.remove_client_id_from_open_id_connect_provider()
                    .open_id_connect_provider_arn(arn)
                    .client_id(id)
                    .send()
            })
            .await?;
        }
        if current.thumbprints != desired.thumbprints {
            aws.perform(Iam, "UpdateOpenIDConnectProviderThumbprint", ctx, |iam| {
                iam.update_open_id_connect_provider_thumbprint()
                    .open_id_connect_provider_arn(arn)
                    .set_thumbprint_list(Some(desired.thumbprints.clone()))
                    .send()
            })
            .await?;
        }
        let provider = Tagging::OidcProvider(arn);
        retag(aws, ctx, provider, &current.tags, &desired.tags).await
    }
}

impl ResourceKind for OidcProvider {
    const KIND: &'static str = KIND;
    type Inputs = Inputs;
    const REPLACE_ON: &'static [&'static str] = &["url"];
    const UNIQUE_BY: &'static [&'static [&'static str]] = &[&["url"]];
}

impl NamedObject for OidcProvider {
    const WHAT: &'static str = "OIDC provider";
    type Object = Inputs;

    /// Its ARN: the account's, for the issuer's host and path.
    fn id(&self, inputs: &Inputs) -> String {
        let host_path = inputs.url.trim_start_matches("https://");
        format!(
            "arn:aws:iam::{}:oidc-provider/{host_path}",
            self.0.account_id
        )
    }

    async fn describe(&self, ctx: &Ctx, arn: &str) -> Result<Option<Found<Self>>> {
        let aws = &self.0;
        let out = aws
            .request(Iam, "GetOpenIDConnectProvider", ctx, |iam| {
                iam.get_open_id_connect_provider()
                    .open_id_connect_provider_arn(arn)
                    .send()
            })
            .await;
        let Some(out) = absent(out)? else {
            return Ok(None);
        };
        let tags = iam_tag_map(out.tags());
        let url = required(out.url(), "OIDC provider URL")?;
        let inputs = Inputs {
            url: format!("https://{}", url.trim_start_matches("https://")),
            client_ids: out.client_id_list().iter().cloned().collect(),
            thumbprints: out.thumbprint_list().to_vec(),
            tags: user_tags(&tags),
        };
        Ok(Some(Found {
            tags,
            object: inputs,
        }))
    }

    async fn complete(&self, ctx: &Ctx, inputs: &Inputs, found: Found<Self>) -> Result<Created> {
        let arn = self.id(inputs);
        self.converge(ctx, &arn, &found.object, inputs).await?;
        Ok(OidcProvider::created(&arn, &inputs.url))
    }
}

#[async_trait]
impl TypedProvider for OidcProvider {
    async fn create(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Created> {
        let aws = &self.0;
        let out = aws
            .request(Iam, "CreateOpenIDConnectProvider", ctx, |iam| {
                iam.create_open_id_connect_provider()
                    .url(&inputs.url)
                    .set_client_id_list(Some(inputs.client_ids.iter().cloned().collect()))
                    .set_thumbprint_list(Some(inputs.thumbprints.clone()))
                    .set_tags(Some(iam_tags(aws, ctx, &inputs.tags)))
                    .send()
            })
            .await?;
        let arn = required(out.open_id_connect_provider_arn(), "OIDC provider ARN")?;
        Ok(OidcProvider::created(arn, &inputs.url))
    }

    async fn read(&self, ctx: &Ctx, arn: &str, _: &Inputs) -> Result<Seen<Inputs>> {
        let inputs = self.existing(ctx, arn).await?.object;
        Ok(Seen {
            outputs: OidcProvider::created(arn, &inputs.url).outputs,
            inputs,
        })
    }

    async fn update(&self, ctx: &Ctx, arn: &str, old: &Inputs, new: &Inputs) -> Result<Value> {
        self.converge(ctx, arn, old, new).await?;
        Ok(OidcProvider::created(arn, &new.url).outputs)
    }

    async fn delete(&self, ctx: &Ctx, arn: &str, _: &Inputs) -> Result<()> {
        let aws = &self.0;
        aws.perform(Iam, "DeleteOpenIDConnectProvider", ctx, |iam| {
            iam.delete_open_id_connect_provider()
                .open_id_connect_provider_arn(arn)
                .send()
        })
        .await
    }

    async fn find_existing(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Option<Created>> {
        adopt(self, &self.0, ctx, inputs).await
    }
}
