//! An IAM instance profile holding one role (for nodes Karpenter launches).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use byoc_engine::{Created, Ctx};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::named::{Found, NamedObject, adopt};
use super::{
    ResourceKind, Result, Seen, Tagging, TypedProvider, absent, iam_tag_map, iam_tags, required,
    retag, with_name_and_arn,
};
use crate::aws::api::Iam;
use crate::aws::{Aws, user_tags};

pub const KIND: &str = "aws:iam:InstanceProfile";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    pub name: String,
    pub role_name: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

pub struct IamInstanceProfile(pub Arc<Aws>);

impl IamInstanceProfile {
    /// Makes `role` the profile's only role (with `None`, it holds none); it holds `roles`.
    async fn set_role(
        &self,
        ctx: &Ctx,
        name: &str,
        roles: &[String],
        role: Option<&str>,
    ) -> Result<()> {
        let aws = &self.0;
        for other in roles.iter().filter(|r| Some(r.as_str()) != role) {
            aws.perform(Iam, "RemoveRoleFromInstanceProfile", ctx, |iam| {
                iam.remove_role_from_instance_profile()
                    .instance_profile_name(name)
                    .role_name(other)
                    .send()
            })
            .await?;
        }
        if let Some(role) = role
            && !roles.iter().any(|r| r == role)
        {
            aws.perform(Iam, "AddRoleToInstanceProfile", ctx, |iam| {
                iam.add_role_to_instance_profile()
                    .instance_profile_name(name)
                    .role_name(role)
                    .send()
            })
            .await?;
        }
        Ok(())
    }
}

impl ResourceKind for IamInstanceProfile {
    const KIND: &'static str = KIND;
    type Inputs = Inputs;
    const REPLACE_ON: &'static [&'static str] = &["name"];
    const UNIQUE_BY: &'static [&'static [&'static str]] = &[&["name"]];
}

impl NamedObject for IamInstanceProfile {
    const WHAT: &'static str = "instance profile";
    type Object = (Vec<String>, String);

    fn id(&self, inputs: &Inputs) -> String {
        inputs.name.clone()
    }

    /// The profile's roles and its ARN.
    async fn describe(&self, ctx: &Ctx, name: &str) -> Result<Option<Found<Self>>> {
        let aws = &self.0;
        let out = aws
            .request(Iam, "GetInstanceProfile", ctx, |iam| {
                iam.get_instance_profile()
                    .instance_profile_name(name)
                    .send()
            })
            .await;
        let Some(out) = absent(out)? else {
            return Ok(None);
        };
        let p = required(out.instance_profile(), "instance profile")?;
        let roles = p
            .roles()
            .iter()
            .map(|r| r.role_name().to_string())
            .collect();
        Ok(Some(Found {
            tags: iam_tag_map(p.tags()),
            object: (roles, p.arn().to_string()),
        }))
    }

    async fn complete(&self, ctx: &Ctx, inputs: &Inputs, found: Found<Self>) -> Result<Created> {
        let (name, (roles, arn)) = (&inputs.name, found.object);
        self.set_role(ctx, name, &roles, Some(&inputs.role_name))
            .await?;
        Ok(with_name_and_arn(name, &arn))
    }
}

#[async_trait]
impl TypedProvider for IamInstanceProfile {
    async fn create(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Created> {
        let aws = &self.0;
        let out = aws
            .request(Iam, "CreateInstanceProfile", ctx, |iam| {
                iam.create_instance_profile()
                    .instance_profile_name(&inputs.name)
                    .set_tags(Some(iam_tags(aws, ctx, &inputs.tags)))
                    .send()
            })
            .await?;
        let arn = required(out.instance_profile(), "instance profile")?
            .arn()
            .to_string();
        self.set_role(ctx, &inputs.name, &[], Some(&inputs.role_name))
            .await?;
        Ok(with_name_and_arn(&inputs.name, &arn))
    }

    async fn read(&self, ctx: &Ctx, name: &str, _: &Inputs) -> Result<Seen<Inputs>> {
        let found = self.existing(ctx, name).await?;
        let (roles, arn) = found.object;
        Ok(Seen {
            inputs: Inputs {
                name: name.to_string(),
                role_name: roles.first().cloned().unwrap_or_default(),
                tags: user_tags(&found.tags),
            },
            outputs: with_name_and_arn(name, &arn).outputs,
        })
    }

    async fn update(&self, ctx: &Ctx, name: &str, old: &Inputs, new: &Inputs) -> Result<Value> {
        let aws = &self.0;
        if old.role_name != new.role_name {
            self.set_role(
                ctx,
                name,
                std::slice::from_ref(&old.role_name),
                Some(&new.role_name),
            )
            .await?;
        }
        let profile = Tagging::InstanceProfile(name);
        retag(aws, ctx, profile, &old.tags, &new.tags).await?;
        let arn = format!("arn:aws:iam::{}:instance-profile/{name}", aws.account_id);
        Ok(with_name_and_arn(name, &arn).outputs)
    }

    async fn delete(&self, ctx: &Ctx, name: &str, _: &Inputs) -> Result<()> {
        let aws = &self.0;
        let Some(found) = self.describe(ctx, name).await? else {
            return Ok(());
        };
        let (roles, _) = found.object;
        // A profile goes only once it holds no role.
        self.set_role(ctx, name, &roles, None).await?;
        aws.perform(Iam, "DeleteInstanceProfile", ctx, |iam| {
            iam.delete_instance_profile()
                .instance_profile_name(name)
                .send()
        })
        .await
    }

    async fn find_existing(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Option<Created>> {
        adopt(self, &self.0, ctx, inputs).await
    }
}
