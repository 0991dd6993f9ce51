//! An EventBridge rule on the default bus with one target (Karpenter's interruption events
//! to its queue). Found by its deterministic name; adopted only if its tags say it is this
//! stack's.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_eventbridge::types::{RuleState, Target};
use byoc_engine::{Created, Ctx, ProviderError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::named::{Found, NamedObject, adopt};
use super::{ResourceKind, Result, Seen, Tagging, TypedProvider, absent, retag, with_name_and_arn};
use crate::aws::api::Events;
use crate::aws::{Aws, tag_map, user_tags};

pub const KIND: &str = "aws:events:Rule";

/// The id of the rule's one target.
const TARGET_ID: &str = "1";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    pub name: String,
    pub event_pattern: Value,
    pub target_arn: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

pub struct EventbridgeRule(pub Arc<Aws>);

impl EventbridgeRule {
    /// Writes the rule (PutRule is an upsert) and its target; returns the rule's ARN.
    async fn put(&self, ctx: &Ctx, inputs: &Inputs) -> Result<String> {
        let aws = &self.0;
        let pattern = inputs.event_pattern.to_string();
        let out = aws
            .request(Events, "PutRule", ctx, |events| {
                events
                    .put_rule()
                    .name(&inputs.name)
                    .event_pattern(&pattern)
                    .state(RuleState::Enabled)
                    .send()
            })
            .await?;
        let target = Target::builder()
            .id(TARGET_ID)
            .arn(&inputs.target_arn)
            .build()
            .map_err(|e| ProviderError::new(format!("rule target: {e}")))?;
        aws.perform(Events, "PutTargets", ctx, |events| {
            events
                .put_targets()
                .rule(&inputs.name)
                .targets(target.clone())
                .send()
        })
        .await?;
        Ok(super::required(out.rule_arn(), "rule ARN")?.to_string())
    }

    /// Writes the rule and its target, and brings its tags from `current` (all of them) to
    /// `desired`'s; returns the rule's ARN.
    async fn converge(
        &self,
        ctx: &Ctx,
        current: &BTreeMap<String, String>,
        desired: &Inputs,
    ) -> Result<String> {
        let arn = self.put(ctx, desired).await?;
        let rule = Tagging::Rule(&arn);
        retag(&self.0, ctx, rule, &user_tags(current), &desired.tags).await?;
        Ok(arn)
    }
}

impl ResourceKind for EventbridgeRule {
    const KIND: &'static str = KIND;
    type Inputs = Inputs;
    const REPLACE_ON: &'static [&'static str] = &["name"];
    const UNIQUE_BY: &'static [&'static [&'static str]] = &[&["name"]];

    fn check(inputs: &Inputs) -> Result<(), String> {
        if !inputs.event_pattern.is_object() {
            return Err("event_pattern is not a JSON object".into());
        }
        Ok(())
    }
}

impl NamedObject for EventbridgeRule {
    const WHAT: &'static str = "EventBridge rule";
    type Object = (Inputs, String);

    fn id(&self, inputs: &Inputs) -> String {
        inputs.name.clone()
    }

    /// The rule's inputs as it is, and its ARN.
    async fn describe(&self, ctx: &Ctx, name: &str) -> Result<Option<Found<Self>>> {
        let aws = &self.0;
        let rule = aws
            .request(Events, "DescribeRule", ctx, |events| {
                events.describe_rule().name(name).send()
            })
            .await;
        let Some(rule) = absent(rule)? else {
            return Ok(None);
        };
        let arn = super::required(rule.arn(), "rule ARN")?.to_string();
        let targets = aws
            .request(Events, "ListTargetsByRule", ctx, |events| {
                events.list_targets_by_rule().rule(name).send()
            })
            .await?;
        let tags = aws
            .request(Events, "ListTagsForResource", ctx, |events| {
                events.list_tags_for_resource().resource_arn(&arn).send()
            })
            .await?;
        let tags = tag_map(tags.tags().iter().map(|t| (Some(t.key()), Some(t.value()))));
        let inputs = Inputs {
            name: name.to_string(),
            event_pattern: super::policy_json(
                "event pattern",
                rule.event_pattern().unwrap_or("{}"),
            )?,
            target_arn: targets
                .targets()
                .iter()
                .find(|t| t.id() == TARGET_ID)
                .map(|t| t.arn().to_string())
                .unwrap_or_default(),
            tags: user_tags(&tags),
        };
        Ok(Some(Found {
            tags,
            object: (inputs, arn),
        }))
    }

    async fn complete(&self, ctx: &Ctx, inputs: &Inputs, found: Found<Self>) -> Result<Created> {
        let arn = self.converge(ctx, &found.tags, inputs).await?;
        Ok(with_name_and_arn(&inputs.name, &arn))
    }
}

#[async_trait]
impl TypedProvider for EventbridgeRule {
    async fn create(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Created> {
        let arn = self.converge(ctx, &BTreeMap::new(), inputs).await?;
        Ok(with_name_and_arn(&inputs.name, &arn))
    }

    async fn read(&self, ctx: &Ctx, name: &str, _: &Inputs) -> Result<Seen<Inputs>> {
        let (inputs, arn) = self.existing(ctx, name).await?.object;
        Ok(Seen {
            inputs,
            outputs: with_name_and_arn(name, &arn).outputs,
        })
    }

    async fn update(&self, ctx: &Ctx, name: &str, _: &Inputs, new: &Inputs) -> Result<Value> {
        // Written whole, as a create completes it.
        let found = self.existing(ctx, name).await?;
        Ok(self.complete(ctx, new, found).await?.outputs)
    }

    async fn delete(&self, ctx: &Ctx, name: &str, _: &Inputs) -> Result<()> {
        let aws = &self.0;
        if self.describe(ctx, name).await?.is_none() {
            return Ok(());
        }
        // A rule goes only once it has no targets.
        aws.perform(Events, "RemoveTargets", ctx, |events| {
            events.remove_targets().rule(name).ids(TARGET_ID).send()
        })
        .await?;
        let deleted = aws
            .request(Events, "DeleteRule", ctx, |events| {
                events.delete_rule().name(name).send()
            })
            .await;
        absent(deleted).map(drop)
    }

    async fn find_existing(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Option<Created>> {
        adopt(self, &self.0, ctx, inputs).await
    }
}
