//! An IAM role: its trust policy, managed policy attachments and inline policies. Found by
//! its deterministic name; adopted only if its tags say it is this stack's.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use byoc_engine::{Created, Ctx, Diff, ErrorClass, Observed, Provider, ProviderError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{diff_replacing, iam_tag_map, iam_tags, policy_json, removed_keys, required};
use crate::aws::{self, Aws, user_tags};
use crate::limiter::Service::Iam;

pub const KIND: &str = "aws:iam:Role";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    pub name: String,
    /// The trust policy; null when `service_account` makes it.
    #[serde(default)]
    pub assume_role_policy: Value,
    /// Trust for one Kubernetes service account through the cluster's OIDC provider (IRSA).
    /// Its condition keys embed the issuer, known only once the cluster exists, so the
    /// policy is made from these references when the role is written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<ServiceAccountTrust>,
    #[serde(default)]
    pub managed_policy_arns: BTreeSet<String>,
    /// Inline policies by name.
    #[serde(default)]
    pub inline_policies: BTreeMap<String, Value>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceAccountTrust {
    pub oidc_provider_arn: String,
    /// The cluster's OIDC issuer URL (`https://oidc.eks...`).
    pub issuer: String,
    pub namespace: String,
    pub name: String,
}

impl ServiceAccountTrust {
    /// Only this service account, and only for STS.
    pub fn policy(&self) -> Value {
        let host = self.issuer.trim_start_matches("https://");
        json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"Federated": self.oidc_provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringEquals": {
                    format!("{host}:sub"): format!("system:serviceaccount:{}:{}", self.namespace, self.name),
                    format!("{host}:aud"): "sts.amazonaws.com",
                }},
            }],
        })
    }
}

impl Inputs {
    /// The trust policy the role should have.
    fn trust(&self) -> Value {
        match &self.service_account {
            Some(sa) => sa.policy(),
            None => self.assume_role_policy.clone(),
        }
    }
}

pub struct IamRole(pub Arc<Aws>);

impl IamRole {
    fn created(inputs: &Inputs, arn: &str) -> Created {
        Created {
            physical_id: inputs.name.clone(),
            outputs: json!({"name": inputs.name, "arn": arn}),
        }
    }

    /// The role as it is, with its ARN; `None` if it does not exist.
    async fn describe(
        &self,
        ctx: &Ctx,
        name: &str,
    ) -> Result<Option<(Inputs, String, BTreeMap<String, String>)>, ProviderError> {
        let aws = &self.0;
        let role = match aws
            .call(Iam, "GetRole", &ctx.cancel, || {
                aws.iam.get_role().role_name(name).send()
            })
            .await
        {
            Err(e) if aws::classify(&e) == ErrorClass::NotFound => return Ok(None),
            other => other?,
        };
        let role = required(role.role(), "role")?;
        let attached = aws
            .call(Iam, "ListAttachedRolePolicies", &ctx.cancel, || {
                aws.iam.list_attached_role_policies().role_name(name).send()
            })
            .await?;
        let names = aws
            .call(Iam, "ListRolePolicies", &ctx.cancel, || {
                aws.iam.list_role_policies().role_name(name).send()
            })
            .await?;
        let mut inline_policies = BTreeMap::new();
        for policy in names.policy_names() {
            let doc = aws
                .call(Iam, "GetRolePolicy", &ctx.cancel, || {
                    aws.iam
                        .get_role_policy()
                        .role_name(name)
                        .policy_name(policy)
                        .send()
                })
                .await?;
            inline_policies.insert(policy.clone(), policy_json(policy, doc.policy_document())?);
        }
        let tags = iam_tag_map(role.tags());
        let inputs = Inputs {
            name: name.to_string(),
            assume_role_policy: policy_json(
                name,
                role.assume_role_policy_document().unwrap_or("{}"),
            )?,
            managed_policy_arns: attached
                .attached_policies()
                .iter()
                .filter_map(|p| p.policy_arn().map(str::to_string))
                .collect(),
            inline_policies,
            tags: user_tags(&tags),
            service_account: None,
        };
        Ok(Some((inputs, role.arn().to_string(), tags)))
    }

    /// Brings the role's policies and tags from `current` to `desired`.
    async fn converge(
        &self,
        ctx: &Ctx,
        current: &Inputs,
        desired: &Inputs,
    ) -> Result<(), ProviderError> {
        let aws = &self.0;
        let name = desired.name.as_str();
        if current.trust() != desired.trust() {
            let doc = desired.trust().to_string();
            aws.call(Iam, "UpdateAssumeRolePolicy", &ctx.cancel, || {
                aws.iam
                    .update_assume_role_policy()
                    .role_name(name)
                    .policy_document(&doc)
                    .send()
            })
            .await?;
        }
        for arn in desired
            .managed_policy_arns
            .difference(&current.managed_policy_arns)
        {
            aws.call(Iam, "AttachRolePolicy", &ctx.cancel, || {
                aws.iam
                    .attach_role_policy()
                    .role_name(name)
                    .policy_arn(arn)
                    .send()
            })
            .await?;
        }
        for arn in current
            .managed_policy_arns
            .difference(&desired.managed_policy_arns)
        {
            aws.call(Iam, "DetachRolePolicy", &ctx.cancel, || {
                aws.iam
                    .detach_role_policy()
                    .role_name(name)
                    .policy_arn(arn)
                    .send()
            })
            .await?;
        }
        for (policy, doc) in &desired.inline_policies {
            if current.inline_policies.get(policy) != Some(doc) {
                let doc = doc.to_string();
                aws.call(Iam, "PutRolePolicy", &ctx.cancel, || {
                    aws.iam
                        .put_role_policy()
                        .role_name(name)
                        .policy_name(policy)
                        .policy_document(&doc)
                        .send()
                })
                .await?;
            }
        }
        for policy in current.inline_policies.keys() {
            if !desired.inline_policies.contains_key(policy) {
                aws.call(Iam, "DeleteRolePolicy", &ctx.cancel, || {
                    aws.iam
                        .delete_role_policy()
                        .role_name(name)
                        .policy_name(policy)
                        .send()
                })
                .await?;
            }
        }
        let gone = removed_keys(&current.tags, &desired.tags);
        if !gone.is_empty() {
            aws.call(Iam, "UntagRole", &ctx.cancel, || {
                aws.iam
                    .untag_role()
                    .role_name(name)
                    .set_tag_keys(Some(gone.clone()))
                    .send()
            })
            .await?;
        }
        if current.tags != desired.tags {
            let tags = iam_tags(aws, ctx, &desired.tags);
            aws.call(Iam, "TagRole", &ctx.cancel, || {
                aws.iam
                    .tag_role()
                    .role_name(name)
                    .set_tags(Some(tags.clone()))
                    .send()
            })
            .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Provider for IamRole {
    fn diff(&self, old: &Value, new: &Value) -> Diff {
        diff_replacing::<Inputs>(old, new, &["name"])
    }

    async fn create(&self, ctx: &Ctx, inputs: &Value) -> Result<Created, ProviderError> {
        let aws = &self.0;
        let inputs: Inputs = aws::parse(KIND, inputs)?;
        let trust = inputs.trust().to_string();
        let out = aws
            .call(Iam, "CreateRole", &ctx.cancel, || {
                aws.iam
                    .create_role()
                    .role_name(&inputs.name)
                    .assume_role_policy_document(&trust)
                    .set_tags(Some(iam_tags(aws, ctx, &inputs.tags)))
                    .send()
            })
            .await?;
        let arn = required(out.role(), "role")?.arn().to_string();
        let current = Inputs {
            name: inputs.name.clone(),
            assume_role_policy: inputs.trust(),
            tags: inputs.tags.clone(),
            ..Inputs::default()
        };
        self.converge(ctx, &current, &inputs).await?;
        Ok(IamRole::created(&inputs, &arn))
    }

    async fn read(
        &self,
        ctx: &Ctx,
        name: &str,
        recorded: &Value,
    ) -> Result<Observed, ProviderError> {
        let (mut inputs, arn, _) = self
            .describe(ctx, name)
            .await?
            .ok_or_else(|| super::not_found("IAM role", name))?;
        // A trust made from a service account reads back as that service account.
        if let Ok(Inputs {
            service_account: Some(sa),
            ..
        }) = aws::parse::<Inputs>(KIND, recorded)
            && sa.policy() == inputs.assume_role_policy
        {
            inputs.assume_role_policy = Value::Null;
            inputs.service_account = Some(sa);
        }
        Ok(Observed {
            outputs: IamRole::created(&inputs, &arn).outputs,
            inputs: json!(inputs),
        })
    }

    async fn update(
        &self,
        ctx: &Ctx,
        name: &str,
        old: &Value,
        new: &Value,
    ) -> Result<Value, ProviderError> {
        let (old, new): (Inputs, Inputs) = (aws::parse(KIND, old)?, aws::parse(KIND, new)?);
        self.converge(ctx, &old, &new).await?;
        let arn = format!("arn:aws:iam::{}:role/{name}", self.0.account_id);
        Ok(IamRole::created(&new, &arn).outputs)
    }

    async fn delete(&self, ctx: &Ctx, name: &str, _inputs: &Value) -> Result<(), ProviderError> {
        let aws = &self.0;
        let Some((current, _, _)) = self.describe(ctx, name).await? else {
            return Ok(());
        };
        // A role goes only once nothing is attached to it.
        let bare = Inputs {
            name: name.to_string(),
            assume_role_policy: current.assume_role_policy.clone(),
            tags: current.tags.clone(),
            ..Inputs::default()
        };
        self.converge(ctx, &current, &bare).await?;
        aws.call(Iam, "DeleteRole", &ctx.cancel, || {
            aws.iam.delete_role().role_name(name).send()
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
        let Some((current, arn, tags)) = self.describe(ctx, &inputs.name).await? else {
            return Ok(None);
        };
        if !self.0.owns(ctx, &tags, false) {
            return Ok(None);
        }
        self.converge(ctx, &current, &inputs).await?;
        Ok(Some(IamRole::created(&inputs, &arn)))
    }

    fn classify(&self, error: &ProviderError) -> ErrorClass {
        aws::classify(error)
    }
}
