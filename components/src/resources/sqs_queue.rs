//! An SQS queue (Karpenter's interruption queue), with a policy letting the given AWS
//! services send to it. Found by its deterministic name; adopted only if its tags say it is
//! this stack's.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_sqs::types::QueueAttributeName;
use byoc_engine::{Created, Ctx, ErrorClass, ProviderError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::named::{Found, NamedObject, adopt};
use super::{
    ResourceKind, Result, Seen, Tagging, TypedProvider, is_seconds, keyed_tag_map, keyed_tags,
    retag, seconds,
};
use crate::aws::api::Sqs;
use crate::aws::{self, Aws, user_tags};

pub const KIND: &str = "aws:sqs:Queue";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    pub name: String,
    #[serde(default = "seconds::<300>", skip_serializing_if = "is_seconds::<300>")]
    pub message_retention_seconds: u64,
    /// Service principals that may send messages, e.g. `events.amazonaws.com`.
    #[serde(default)]
    pub senders: BTreeSet<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

pub struct SqsQueue(pub Arc<Aws>);

/// The queue's attributes as byoc sets them.
struct Attributes {
    retention: u64,
    policy: Option<Value>,
}

impl SqsQueue {
    fn arn(&self, name: &str) -> String {
        format!("arn:aws:sqs:{}:{}:{name}", self.0.region, self.0.account_id)
    }

    fn policy(&self, inputs: &Inputs) -> Option<Value> {
        (!inputs.senders.is_empty()).then(|| {
            json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Principal": {"Service": inputs.senders},
                    "Action": "sqs:SendMessage",
                    "Resource": self.arn(&inputs.name),
                }],
            })
        })
    }

    fn created(&self, name: &str, url: &str) -> Created {
        Created {
            physical_id: name.to_string(),
            outputs: json!({"name": name, "url": url, "arn": self.arn(name)}),
        }
    }

    /// The queue's URL, or `None` if there is no such queue.
    async fn url(&self, ctx: &Ctx, name: &str) -> Result<Option<String>> {
        let aws = &self.0;
        match aws
            .request(Sqs, "GetQueueUrl", ctx, |sqs| {
                sqs.get_queue_url().queue_name(name).send()
            })
            .await
        {
            Err(e) if is_missing(&e) => Ok(None),
            other => Ok(other?.queue_url().map(str::to_string)),
        }
    }

    async fn attributes(&self, ctx: &Ctx, url: &str) -> Result<Attributes> {
        let aws = &self.0;
        let out = aws
            .request(Sqs, "GetQueueAttributes", ctx, |sqs| {
                sqs.get_queue_attributes()
                    .queue_url(url)
                    .attribute_names(QueueAttributeName::All)
                    .send()
            })
            .await?;
        let attrs = out.attributes();
        let get = |name: QueueAttributeName| attrs.and_then(|a| a.get(&name)).cloned();
        Ok(Attributes {
            retention: get(QueueAttributeName::MessageRetentionPeriod)
                .and_then(|r| r.parse().ok())
                .unwrap_or_default(),
            policy: get(QueueAttributeName::Policy)
                .filter(|p| !p.is_empty())
                .map(|p| super::policy_json("queue policy", &p))
                .transpose()?,
        })
    }

    /// The attributes byoc sets, as CreateQueue and SetQueueAttributes take them.
    fn attributes_of(&self, inputs: &Inputs) -> HashMap<QueueAttributeName, String> {
        HashMap::from([
            (
                QueueAttributeName::MessageRetentionPeriod,
                inputs.message_retention_seconds.to_string(),
            ),
            (
                QueueAttributeName::Policy,
                self.policy(inputs)
                    .map(|p| p.to_string())
                    .unwrap_or_default(),
            ),
        ])
    }

    /// Sets the queue's attributes and user tags to `desired`.
    async fn converge(
        &self,
        ctx: &Ctx,
        url: &str,
        current_tags: &BTreeMap<String, String>,
        desired: &Inputs,
    ) -> Result<()> {
        let aws = &self.0;
        let attributes = self.attributes_of(desired);
        aws.perform(Sqs, "SetQueueAttributes", ctx, |sqs| {
            sqs.set_queue_attributes()
                .queue_url(url)
                .set_attributes(Some(attributes.clone()))
                .send()
        })
        .await?;
        let queue = Tagging::Queue(url);
        retag(aws, ctx, queue, &user_tags(current_tags), &desired.tags).await
    }
}

/// SQS's codes for a queue that does not exist.
fn is_missing(error: &ProviderError) -> bool {
    matches!(
        error.code.as_deref(),
        Some("AWS.SimpleQueueService.NonExistentQueue" | "QueueDoesNotExist")
    )
}

impl ResourceKind for SqsQueue {
    const KIND: &'static str = KIND;
    type Inputs = Inputs;
    const REPLACE_ON: &'static [&'static str] = &["name"];
    const UNIQUE_BY: &'static [&'static [&'static str]] = &[&["name"]];

    /// SQS keeps messages from a minute to 14 days.
    fn check(inputs: &Inputs) -> Result<(), String> {
        if !(60..=1_209_600).contains(&inputs.message_retention_seconds) {
            return Err(format!(
                "message_retention_seconds {} is not within 60 to 1209600",
                inputs.message_retention_seconds
            ));
        }
        Ok(())
    }
}

impl NamedObject for SqsQueue {
    const WHAT: &'static str = "SQS queue";
    type Object = String;

    fn id(&self, inputs: &Inputs) -> String {
        inputs.name.clone()
    }

    /// The queue's URL.
    async fn describe(&self, ctx: &Ctx, name: &str) -> Result<Option<Found<Self>>> {
        let Some(url) = self.url(ctx, name).await? else {
            return Ok(None);
        };
        let tags = self
            .0
            .request(Sqs, "ListQueueTags", ctx, |sqs| {
                sqs.list_queue_tags().queue_url(&url).send()
            })
            .await?;
        let tags = keyed_tag_map(tags.tags());
        Ok(Some(Found { tags, object: url }))
    }

    async fn complete(&self, ctx: &Ctx, inputs: &Inputs, found: Found<Self>) -> Result<Created> {
        let url = found.object;
        self.converge(ctx, &url, &found.tags, inputs).await?;
        Ok(self.created(&inputs.name, &url))
    }
}

#[async_trait]
impl TypedProvider for SqsQueue {
    async fn create(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Created> {
        let aws = &self.0;
        let tags = keyed_tags(aws, ctx, &inputs.tags);
        // Made whole in one call: its attributes and tags need no second write.
        let mut attributes = self.attributes_of(inputs);
        attributes.retain(|_, value| !value.is_empty());
        attributes.insert(QueueAttributeName::SqsManagedSseEnabled, "true".into());
        let out = aws
            .request(Sqs, "CreateQueue", ctx, |sqs| {
                sqs.create_queue()
                    .queue_name(&inputs.name)
                    .set_attributes(Some(attributes.clone()))
                    .set_tags(Some(tags.clone()))
                    .send()
            })
            .await?;
        let url = super::required(out.queue_url(), "queue URL")?.to_string();
        Ok(self.created(&inputs.name, &url))
    }

    async fn read(&self, ctx: &Ctx, name: &str, recorded: &Inputs) -> Result<Seen<Inputs>> {
        let Found { tags, object: url } = self.existing(ctx, name).await?;
        let attributes = self.attributes(ctx, &url).await?;
        // The policy reads back as its senders when it is the one byoc writes.
        let senders = if attributes.policy == self.policy(recorded) {
            recorded.senders.clone()
        } else {
            BTreeSet::from(["(changed outside byoc)".to_string()])
        };
        Ok(Seen {
            inputs: Inputs {
                name: name.to_string(),
                message_retention_seconds: attributes.retention,
                senders,
                tags: user_tags(&tags),
            },
            outputs: self.created(name, &url).outputs,
        })
    }

    async fn update(&self, ctx: &Ctx, name: &str, _: &Inputs, new: &Inputs) -> Result<Value> {
        // Written whole, as a create completes it.
        let found = self.existing(ctx, name).await?;
        Ok(self.complete(ctx, new, found).await?.outputs)
    }

    async fn delete(&self, ctx: &Ctx, name: &str, _: &Inputs) -> Result<()> {
        let aws = &self.0;
        let Some(url) = self.url(ctx, name).await? else {
            return Ok(());
        };
        match aws
            .perform(Sqs, "DeleteQueue", ctx, |sqs| {
                sqs.delete_queue().queue_url(&url).send()
            })
            .await
        {
            Err(e) if is_missing(&e) => Ok(()),
            other => other,
        }
    }

    async fn find_existing(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Option<Created>> {
        adopt(self, &self.0, ctx, inputs).await
    }

    fn classify(error: &ProviderError) -> ErrorClass {
        if is_missing(error) {
            ErrorClass::NotFound
        } else {
            aws::classify(error)
        }
    }
}
