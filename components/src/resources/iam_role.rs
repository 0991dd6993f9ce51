//! An IAM role: its trust policy, managed policy attachments and inline policies. Found by
//! its deterministic name; adopted only if its tags say it is this stack's.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use byoc_engine::{Created, Ctx};
use futures::future::try_join_all;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::named::{Found, NamedObject, adopt};
use super::{
    ResourceKind, Result, Seen, StringSet, Tagging, TypedProvider, absent, iam_tag_map, iam_tags,
    policy_json, required, retag, with_name_and_arn,
};
use crate::aws::api::Iam;
use crate::aws::{Aws, user_tags};

pub const KIND: &str = "aws:iam:Role";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    pub name: String,
    /// The trust policy; null when `service_account` makes it.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub assume_role_policy: Value,
    /// Trust for one Kubernetes service account through the cluster's OIDC provider (IRSA).
    /// Its condition keys embed the issuer, known only once the cluster exists, so the
    /// policy is made from these references when the role is written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<ServiceAccountTrust>,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub managed_policy_arns: StringSet,
    /// Inline policies by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inline_policies: BTreeMap<String, Value>,
    /// The name of the customer managed policy (in the role's account) that caps the role:
    /// the trust template's boundary, which its role may create roles only under. `None`:
    /// the role's boundary is not byoc's concern (never set, never read, never removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions_boundary: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

fn is_empty(set: &StringSet) -> bool {
    set.iter().next().is_none()
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

/// The ARN of customer managed policy `name` in `account`.
fn policy_arn(account: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:policy/{name}")
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
    /// Brings the role's policies and tags from `current` to `desired`.
    async fn converge(&self, ctx: &Ctx, current: &Inputs, desired: &Inputs) -> Result<()> {
        let aws = &self.0;
        let name = desired.name.as_str();
        // The boundary first: the trust template lets policies be given only to roles under it.
        if let Some(boundary) = &desired.permissions_boundary
            && current.permissions_boundary.as_ref() != Some(boundary)
        {
            let arn = policy_arn(&aws.account_id, boundary);
            aws.perform(Iam, "PutRolePermissionsBoundary", ctx, |iam| {
                iam.put_role_permissions_boundary()
                    .role_name(name)
                    .permissions_boundary(&arn)
                    .send()
            })
            .await?;
        }
        if current.trust() != desired.trust() {
            let doc = desired.trust().to_string();
            aws.perform(Iam, "UpdateAssumeRolePolicy", ctx, |iam| {
                iam.update_assume_role_policy()
                    .role_name(name)
                    .policy_document(&doc)
                    .send()
            })
            .await?;
        }
        // The policies are independent of each other: set at once, not one call after another.
        let attach = desired
            .managed_policy_arns
            .without(&current.managed_policy_arns)
            .map(|arn| {
                aws.perform(Iam, "AttachRolePolicy", ctx, move |iam| {
                    iam.attach_role_policy()
                        .role_name(name)
                        .policy_arn(arn)
                        .send()
                })
            });
        let detach = current
            .managed_policy_arns
            .without(&desired.managed_policy_arns)
            .map(|arn| {
                aws.perform(Iam, "DetachRolePolicy", ctx, move |iam| {
                    iam.detach_role_policy()
                        .role_name(name)
                        .policy_arn(arn)
                        .send()
                })
            });
        let put = desired
            .inline_policies
            .iter()
            .filter(|(policy, doc)| current.inline_policies.get(*policy) != Some(doc))
            .map(|(policy, doc)| {
                let doc = doc.to_string();
                async move {
                    aws.perform(Iam, "PutRolePolicy", ctx, |iam| {
                        iam.put_role_policy()
                            .role_name(name)
                            .policy_name(policy)
                            .policy_document(&doc)
                            .send()
                    })
                    .await
                }
            });
        futures::try_join!(
            try_join_all(attach),
            try_join_all(detach),
            try_join_all(put)
        )?;
        for policy in current.inline_policies.keys() {
            if !desired.inline_policies.contains_key(policy) {
                aws.perform(Iam, "DeleteRolePolicy", ctx, |iam| {
                    iam.delete_role_policy()
                        .role_name(name)
                        .policy_name(policy)
                        .send()
                })
                .await?;
            }
        }
        retag(aws, ctx, Tagging::Role(name), &current.tags, &desired.tags).await
    }
}

impl ResourceKind for IamRole {
    const KIND: &'static str = KIND;
    type Inputs = Inputs;
    const REPLACE_ON: &'static [&'static str] = &["name"];
    const UNIQUE_BY: &'static [&'static [&'static str]] = &[&["name"]];

    /// One trust: a policy, or a service account's.
    fn check(inputs: &Inputs) -> Result<(), String> {
        if inputs.assume_role_policy.is_null() == inputs.service_account.is_none() {
            return Err("a role needs one trust: assume_role_policy or service_account".into());
        }
        Ok(())
    }
}

impl NamedObject for IamRole {
    const WHAT: &'static str = "IAM role";
    type Object = (Inputs, String);

    fn id(&self, inputs: &Inputs) -> String {
        inputs.name.clone()
    }

    /// The role's inputs as it is, and its ARN.
    async fn describe(&self, ctx: &Ctx, name: &str) -> Result<Option<Found<Self>>> {
        let aws = &self.0;
        let role = aws
            .request(Iam, "GetRole", ctx, |iam| {
                iam.get_role().role_name(name).send()
            })
            .await;
        let Some(role) = absent(role)? else {
            return Ok(None);
        };
        let role = required(role.role(), "role")?;
        let attached = aws
            .request(Iam, "ListAttachedRolePolicies", ctx, |iam| {
                iam.list_attached_role_policies().role_name(name).send()
            })
            .await?;
        let names = aws
            .request(Iam, "ListRolePolicies", ctx, |iam| {
                iam.list_role_policies().role_name(name).send()
            })
            .await?;
        let mut inline_policies = BTreeMap::new();
        for policy in names.policy_names() {
            let doc = aws
                .request(Iam, "GetRolePolicy", ctx, |iam| {
                    iam.get_role_policy()
                        .role_name(name)
                        .policy_name(policy)
                        .send()
                })
                .await?;
            inline_policies.insert(policy.clone(), policy_json(policy, doc.policy_document())?);
        }
        let tags = iam_tag_map(role.tags());
        // A boundary of this account's is known by its name; any other by its ARN.
        let own = policy_arn(&aws.account_id, "");
        let boundary = role
            .permissions_boundary()
            .and_then(|b| b.permissions_boundary_arn())
            .map(|arn| arn.strip_prefix(&own).unwrap_or(arn).to_string());
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
            permissions_boundary: boundary,
        };
        let object = (inputs, role.arn().to_string());
        Ok(Some(Found { tags, object }))
    }

    async fn complete(&self, ctx: &Ctx, inputs: &Inputs, found: Found<Self>) -> Result<Created> {
        let (current, arn) = found.object;
        self.converge(ctx, &current, inputs).await?;
        Ok(with_name_and_arn(&inputs.name, &arn))
    }
}

#[async_trait]
impl TypedProvider for IamRole {
    async fn create(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Created> {
        let aws = &self.0;
        let trust = inputs.trust().to_string();
        let boundary = inputs
            .permissions_boundary
            .as_ref()
            .map(|b| policy_arn(&aws.account_id, b));
        let out = aws
            .request(Iam, "CreateRole", ctx, |iam| {
                iam.create_role()
                    .role_name(&inputs.name)
                    .assume_role_policy_document(&trust)
                    .set_permissions_boundary(boundary.clone())
                    .set_tags(Some(iam_tags(aws, ctx, &inputs.tags)))
                    .send()
            })
            .await?;
        let arn = required(out.role(), "role")?.arn().to_string();
        let current = Inputs {
            name: inputs.name.clone(),
            assume_role_policy: inputs.trust(),
            tags: inputs.tags.clone(),
            permissions_boundary: inputs.permissions_boundary.clone(),
            ..Inputs::default()
        };
        self.converge(ctx, &current, inputs).await?;
        Ok(with_name_and_arn(&inputs.name, &arn))
    }

    async fn read(&self, ctx: &Ctx, name: &str, recorded: &Inputs) -> Result<Seen<Inputs>> {
        let (mut inputs, arn) = self.existing(ctx, name).await?.object;
        // A boundary byoc does not manage is not reported.
        if recorded.permissions_boundary.is_none() {
            inputs.permissions_boundary = None;
        }
        // A trust made from a service account reads back as that service account.
        if let Some(sa) = &recorded.service_account
            && sa.policy() == inputs.assume_role_policy
        {
            inputs.assume_role_policy = Value::Null;
            inputs.service_account = Some(sa.clone());
        }
        Ok(Seen {
            outputs: with_name_and_arn(&inputs.name, &arn).outputs,
            inputs,
        })
    }

    async fn update(&self, ctx: &Ctx, name: &str, old: &Inputs, new: &Inputs) -> Result<Value> {
        self.converge(ctx, old, new).await?;
        let arn = format!("arn:aws:iam::{}:role/{name}", self.0.account_id);
        Ok(with_name_and_arn(&new.name, &arn).outputs)
    }

    async fn delete(&self, ctx: &Ctx, name: &str, _: &Inputs) -> Result<()> {
        let aws = &self.0;
        let Some(found) = self.describe(ctx, name).await? else {
            return Ok(());
        };
        let (current, _) = found.object;
        // A role goes only once nothing is attached to it.
        let bare = Inputs {
            name: name.to_string(),
            assume_role_policy: current.assume_role_policy.clone(),
            tags: current.tags.clone(),
            permissions_boundary: current.permissions_boundary.clone(),
            ..Inputs::default()
        };
        self.converge(ctx, &current, &bare).await?;
        aws.perform(Iam, "DeleteRole", ctx, |iam| {
            iam.delete_role().role_name(name).send()
        })
        .await
    }

    async fn find_existing(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Option<Created>> {
        adopt(self, &self.0, ctx, inputs).await
    }
}
