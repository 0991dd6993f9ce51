//! The shape every type named by its create shares (IAM, EKS, SQS, EventBridge): after an
//! interrupted create its object is looked up by that name and adopted only if its tags (all
//! of them) say it is this stack's and this resource's, then completed. A type says only
//! what is its own ([`NamedObject`]); [`Named`] makes it a [`TypedProvider`].

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use byoc_engine::{Created, Ctx, ErrorClass, ProviderError};
use serde_json::Value;

use super::{ResourceKind, Result, Seen, TypedProvider, not_found};
use crate::aws::{self, Aws};

/// One named type's own part: its operations, and what adopting its object needs. Its
/// futures are `Send` for the engine's tasks.
pub trait NamedObject: ResourceKind + Sized {
    /// What a not-found error calls it, e.g. `IAM role`.
    const WHAT: &'static str;

    /// What a look-up sees of the object beside its tags ([`Found`]): what reading,
    /// updating, deleting or completing it needs.
    type Object: Send;

    /// Whether an object found by name is adopted only if it also carries the interrupted
    /// create's token (`byoc:token`), not only this stack's and this resource's tags. For
    /// types whose create tags the object in the same call, and whose replacement may be
    /// created before the old object is deleted (EKS): a new object named as the old one
    /// must fail to be created, never adopt the old one (which the replacement then
    /// deletes).
    const ADOPT_BY_TOKEN: bool = false;

    /// The physical id the create of `inputs` gives its object: its name, or what follows
    /// from it.
    fn id(&self, inputs: &Self::Inputs) -> String;

    /// The object `id` as it is, if there is one.
    fn describe(
        &self,
        ctx: &Ctx,
        id: &str,
    ) -> impl Future<Output = Result<Option<Found<Self>>>> + Send;

    /// The object `id` as it is: a not-found error if there is none.
    fn existing(&self, ctx: &Ctx, id: &str) -> impl Future<Output = Result<Found<Self>>> + Send {
        async move {
            let found = self.describe(ctx, id).await?;
            found.ok_or_else(|| not_found(Self::WHAT, id))
        }
    }

    /// Does what an interrupted create of `inputs` may not have done (policies, waits) to
    /// the object found; what the create made.
    fn complete(
        &self,
        ctx: &Ctx,
        inputs: &Self::Inputs,
        found: Found<Self>,
    ) -> impl Future<Output = Result<Created>> + Send;

    fn create(
        &self,
        ctx: &Ctx,
        inputs: &Self::Inputs,
    ) -> impl Future<Output = Result<Created>> + Send;

    /// As [`TypedProvider::read`].
    fn read(
        &self,
        ctx: &Ctx,
        id: &str,
        recorded: &Self::Inputs,
    ) -> impl Future<Output = Result<Seen<Self::Inputs>>> + Send;

    fn update(
        &self,
        ctx: &Ctx,
        id: &str,
        old: &Self::Inputs,
        new: &Self::Inputs,
    ) -> impl Future<Output = Result<Value>> + Send;

    fn delete(
        &self,
        ctx: &Ctx,
        id: &str,
        inputs: &Self::Inputs,
    ) -> impl Future<Output = Result<()>> + Send;

    /// As [`TypedProvider::classify`].
    fn classify(error: &ProviderError) -> ErrorClass {
        aws::classify(error)
    }
}

/// An object of type `T` as a look-up sees it.
pub struct Found<T: NamedObject> {
    /// All its tags (byoc's own too): whether it may be adopted.
    pub tags: BTreeMap<String, String>,
    pub object: T::Object,
}

/// The engine's typed provider for a [`NamedObject`], over its session (the one whose stack
/// an object must be tagged for to be adopted).
pub struct Named<T>(pub T, pub Arc<Aws>);

super::typed::forward_kind!(Named, NamedObject);

#[async_trait]
impl<T: NamedObject> TypedProvider for Named<T> {
    async fn create(&self, ctx: &Ctx, inputs: &T::Inputs) -> Result<Created> {
        self.0.create(ctx, inputs).await
    }

    async fn read(&self, ctx: &Ctx, id: &str, recorded: &T::Inputs) -> Result<Seen<T::Inputs>> {
        self.0.read(ctx, id, recorded).await
    }

    async fn update(&self, ctx: &Ctx, id: &str, old: &T::Inputs, new: &T::Inputs) -> Result<Value> {
        self.0.update(ctx, id, old, new).await
    }

    async fn delete(&self, ctx: &Ctx, id: &str, inputs: &T::Inputs) -> Result<()> {
        self.0.delete(ctx, id, inputs).await
    }

    /// The object the create of `inputs` names, adopted only with the tags of this stack and
    /// this resource (and of this create, for a type adopting by token): else it is another's.
    async fn find_existing(&self, ctx: &Ctx, inputs: &T::Inputs) -> Result<Option<Created>> {
        match self.0.describe(ctx, &self.0.id(inputs)).await? {
            Some(found) if self.1.owns(ctx, &found.tags, T::ADOPT_BY_TOKEN) => {
                self.0.complete(ctx, inputs, found).await.map(Some)
            }
            _ => Ok(None),
        }
    }

    fn classify(error: &ProviderError) -> ErrorClass {
        T::classify(error)
    }
}
