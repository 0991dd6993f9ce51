//! An IAM instance profile holding one role (for nodes Karpenter launches).

use std::collections::BTreeMap;
use std::sync::Arc;

use byoc_engine::{Created, Ctx};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::named::NamedObject;
use super::{ResourceKind, Result, Seen, Tagging, absent, iam_tag_map, iam_tags, required, retag};
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
    fn created(name: &str, arn: &str) -> Created {
        Created {
            physical_id: name.to_string(),
            outputs: json!({"name": name, "arn": arn}),
        }
    }

    /// `(roles, arn, tags)` of the profile, or `None` if it does not exist.
    async fn describe(
        &self,
        ctx: &Ctx,
        name: &str,
    ) -> Result<Option<(Vec<String>, String, BTreeMap<String, String>)>> {
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
        Ok(Some((roles, p.arn().to_string(), iam_tag_map(p.tags()))))
    }

    /// Makes `role` the profile's only role.
    async fn set_role(&self, ctx: &Ctx, name: &str, roles: &[String], role: &str) -> Result<()> {
        let aws = &self.0;
        for other in roles.iter().filter(|r| *r != role) {
            aws.perform(Iam, "RemoveRoleFromInstanceProfile", ctx, |iam| {
                iam.remove_role_from_instance_profile()
                    .instance_profile_name(name)
                    .role_name(other)
                    .send()
            })
            .await?;
        }
        if !roles.iter().any(|r| r == role) {
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
    type Found = (Vec<String>, String, BTreeMap<String, String>);

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
        self.set_role(ctx, &inputs.name, &[], &inputs.role_name)
            .await?;
        Ok(IamInstanceProfile::created(&inputs.name, &arn))
    }

    async fn read(&self, ctx: &Ctx, name: &str, _: &Inputs) -> Result<Seen<Inputs>> {
        let (roles, arn, tags) = self
            .describe(ctx, name)
            .await?
            .ok_or_else(|| super::not_found("instance profile", name))?;
        Ok(Seen {
            inputs: Inputs {
                name: name.to_string(),
                role_name: roles.first().cloned().unwrap_or_default(),
                tags: user_tags(&tags),
            },
            outputs: IamInstanceProfile::created(name, &arn).outputs,
        })
    }

    async fn update(&self, ctx: &Ctx, name: &str, old: &Inputs, new: &Inputs) -> Result<Value> {
        let aws = &self.0;
        if old.role_name != new.role_name {
            self.set_role(
                ctx,
                name,
                std::slice::from_ref(&old.role_name),
                &new.role_name,
            )
            .await?;
        }
        let profile = Tagging::InstanceProfile(name);
        retag(aws, ctx, profile, &old.tags, &new.tags).await?;
        let arn = format!("arn:aws:iam::{}:instance-profile/{name}", aws.account_id);
        Ok(IamInstanceProfile::created(name, &arn).outputs)
    }

    async fn delete(&self, ctx: &Ctx, name: &str, _: &Inputs) -> Result<()> {
        let aws = &self.0;
        let Some((roles, _, _)) = self.describe(ctx, name).await? else {
            return Ok(());
        };
        for role in &roles {
            aws.perform(Iam, "RemoveRoleFromInstanceProfile", ctx, |iam| {
                iam.remove_role_from_instance_profile()
                    .instance_profile_name(name)
                    .role_name(role)
                    .send()
            })
            .await?;
        }
        aws.perform(Iam, "DeleteInstanceProfile", ctx, |iam| {
            iam.delete_instance_profile()
                .instance_profile_name(name)
                .send()
        })
        .await
    }

    async fn find(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Option<Self::Found>> {
        self.describe(ctx, &inputs.name).await
    }

    fn tags((_, _, tags): &Self::Found) -> &BTreeMap<String, String> {
        tags
    }

    async fn complete(
        &self,
        ctx: &Ctx,
        inputs: &Inputs,
        (roles, arn, _): Self::Found,
    ) -> Result<Created> {
        let name = &inputs.name;
        self.set_role(ctx, name, &roles, &inputs.role_name).await?;
        Ok(IamInstanceProfile::created(name, &arn))
    }
}
