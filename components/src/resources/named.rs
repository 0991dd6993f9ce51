//! The shape every type named by its create shares (IAM, EKS, SQS, EventBridge): after an
//! interrupted create its object is looked up by that name and adopted only if its tags (all
//! of them) say it is this stack's and this resource's, then completed. Such a type is a
//! [`TypedProvider`] whose `find_existing` is [`adopt`], and says what adopting needs
//! ([`NamedObject`]).

use std::collections::BTreeMap;

use byoc_engine::{Created, Ctx};

use super::{ResourceKind, Result, not_found};
use crate::aws::Aws;

/// What adopting a named type's object needs. Its futures are `Send` for the engine's tasks.
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
}

/// An object of type `T` as a look-up sees it.
pub struct Found<T: NamedObject> {
    /// All its tags (byoc's own too): whether it may be adopted.
    pub tags: BTreeMap<String, String>,
    pub object: T::Object,
}

/// [`TypedProvider::find_existing`] of a named type: the object the create of `inputs`
/// names, adopted only with the tags of this stack and this resource (and of this create, for
/// a type adopting by token) of session `aws`: else it is another's.
///
/// [`TypedProvider::find_existing`]: super::TypedProvider::find_existing
pub async fn adopt<T: NamedObject>(
    object: &T,
    aws: &Aws,
    ctx: &Ctx,
    inputs: &T::Inputs,
) -> Result<Option<Created>> {
    match object.describe(ctx, &object.id(inputs)).await? {
        Some(found) if aws.owns(ctx, &found.tags, T::ADOPT_BY_TOKEN) => {
            object.complete(ctx, inputs, found).await.map(Some)
        }
        _ => Ok(None),
    }
}
