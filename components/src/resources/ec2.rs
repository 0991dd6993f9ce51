//! The shape every tagged EC2 type shares: an object made with byoc's tags, read back by its
//! id, found after an interrupted create by those tags (`Ec2Find::Made`), its user tags
//! changed in place, deleted with one call. A type says only what is its own
//! ([`Ec2Object`]: associated functions over the session, which [`Ec2`] holds); [`Ec2`]
//! makes it a [`TypedProvider`].

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ec2::types::Tag;
use byoc_engine::{Created, Ctx};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    Ec2Find, ResourceKind, Result, Seen, Tagging, TypedProvider, ec2_tag_map, not_found, required,
    retag,
};
use crate::aws::{Aws, user_tags};

/// User tags.
pub type Tags = BTreeMap<String, String>;

/// One EC2 type's own part. Its futures are `Send` for the engine's tasks.
pub trait Ec2Object: ResourceKind<Inputs: Tagged> {
    /// The SDK's description of one object.
    type Object: Described;
    /// What a not-found error calls it, e.g. `VPC`.
    const WHAT: &'static str;

    /// Makes the object, tagged with byoc's tags and the user's (`ec2_tags`); the object as
    /// the create describes it. What the request cannot set, [`Ec2Object::settle`] sets.
    fn create(
        aws: &Aws,
        ctx: &Ctx,
        inputs: &Self::Inputs,
    ) -> impl Future<Output = Result<Self::Object>> + Send;

    /// The object `find` finds, if any (`ec2_describe!` writes it).
    fn describe(
        aws: &Aws,
        ctx: &Ctx,
        find: Ec2Find<'_>,
    ) -> impl Future<Output = Result<Option<Self::Object>>> + Send;

    /// The object `id`: a not-found error if there is none.
    fn existing(
        aws: &Aws,
        ctx: &Ctx,
        id: &str,
    ) -> impl Future<Output = Result<Self::Object>> + Send {
        async move {
            let object = Self::describe(aws, ctx, Ec2Find::Id(id)).await?;
            object.ok_or_else(|| not_found(Self::WHAT, id))
        }
    }

    /// The inputs `object` shows; `tags` are its user tags.
    fn inputs(
        aws: &Aws,
        ctx: &Ctx,
        object: &Self::Object,
        tags: Tags,
    ) -> impl Future<Output = Result<Self::Inputs>> + Send;

    /// Whether its outputs hold what only AWS knows (an address): then an update describes
    /// the object again for them.
    const OUTPUTS_FROM_AWS: bool = false;

    /// Its outputs with `inputs` applied (`object`: as described, when it was): its id,
    /// unless the type has more.
    fn outputs(id: &str, _inputs: &Self::Inputs, _object: Option<&Self::Object>) -> Value {
        json!({"id": id})
    }

    /// Sets what the create request cannot set (attributes, or waits for the object to be
    /// ready): what changed from `old`, or with `old` none what a new object needs (one just
    /// made, or one an interrupted create made). By default there is nothing of the kind.
    fn settle(
        _aws: &Aws,
        _ctx: &Ctx,
        _id: &str,
        _old: Option<&Self::Inputs>,
        _new: &Self::Inputs,
    ) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }

    fn delete(aws: &Aws, ctx: &Ctx, id: &str) -> impl Future<Output = Result<()>> + Send;
}

/// The inputs of an EC2 type that takes nothing but user tags (an Elastic IP, an internet
/// gateway).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagsOnly {
    #[serde(default)]
    pub tags: Tags,
}

/// Inputs with user tags (every EC2 type's have a `tags` field).
pub trait Tagged {
    fn tags(&self) -> &Tags;
}

/// [`Tagged`] for the EC2 types' inputs: Rust cannot name a field generically.
macro_rules! tagged {
    ($($inputs:path),* $(,)?) => {$(
        impl Tagged for $inputs {
            fn tags(&self) -> &Tags {
                &self.tags
            }
        }
    )*};
}

tagged! {
    super::vpc::Inputs,
    super::subnet::Inputs,
    TagsOnly,
    super::route_table::Inputs,
    super::nat_gateway::Inputs,
}

/// What every described EC2 object has: its id and its tags.
pub trait Described: Send + Sync {
    fn id(&self) -> Option<&str>;
    fn tags(&self) -> &[Tag];
}

/// [`Described`] for SDK types, by the name of their id's getter (they share no trait).
macro_rules! described {
    ($($object:ident => $id:ident),* $(,)?) => {$(
        impl Described for aws_sdk_ec2::types::$object {
            fn id(&self) -> Option<&str> {
                self.$id()
            }

            fn tags(&self) -> &[Tag] {
                aws_sdk_ec2::types::$object::tags(self)
            }
        }
    )*};
}

described! {
    Vpc => vpc_id,
    Subnet => subnet_id,
    InternetGateway => internet_gateway_id,
    RouteTable => route_table_id,
    Address => allocation_id,
    NatGateway => nat_gateway_id,
}

/// The engine's typed provider for an [`Ec2Object`] (a unit type), over a session.
pub struct Ec2<T>(pub T, pub Arc<Aws>);

impl<T: Ec2Object> Ec2<T> {
    /// What a create of `inputs` made of `object` (as a create describes it, or as found
    /// after an interrupted one), settled.
    async fn made(&self, ctx: &Ctx, inputs: &T::Inputs, object: &T::Object) -> Result<Created> {
        let id = required(object.id(), &format!("{} id", T::WHAT))?;
        T::settle(&self.1, ctx, id, None, inputs).await?;
        Ok(Created {
            physical_id: id.to_string(),
            outputs: T::outputs(id, inputs, Some(object)),
        })
    }
}

super::typed::forward_kind!(Ec2, Ec2Object);

#[async_trait]
impl<T: Ec2Object> TypedProvider for Ec2<T> {
    async fn create(&self, ctx: &Ctx, inputs: &T::Inputs) -> Result<Created> {
        let object = T::create(&self.1, ctx, inputs).await?;
        self.made(ctx, inputs, &object).await
    }

    async fn read(&self, ctx: &Ctx, id: &str, _: &T::Inputs) -> Result<Seen<T::Inputs>> {
        let object = T::existing(&self.1, ctx, id).await?;
        let tags = user_tags(&ec2_tag_map(object.tags()));
        let inputs = T::inputs(&self.1, ctx, &object, tags).await?;
        Ok(Seen {
            outputs: T::outputs(id, &inputs, Some(&object)),
            inputs,
        })
    }

    async fn update(&self, ctx: &Ctx, id: &str, old: &T::Inputs, new: &T::Inputs) -> Result<Value> {
        T::settle(&self.1, ctx, id, Some(old), new).await?;
        let object = Tagging::Ec2(id);
        retag(&self.1, ctx, object, old.tags(), new.tags()).await?;
        let object = if T::OUTPUTS_FROM_AWS {
            Some(T::existing(&self.1, ctx, id).await?)
        } else {
            None
        };
        Ok(T::outputs(id, new, object.as_ref()))
    }

    async fn delete(&self, ctx: &Ctx, id: &str, _: &T::Inputs) -> Result<()> {
        T::delete(&self.1, ctx, id).await
    }

    async fn find_existing(&self, ctx: &Ctx, inputs: &T::Inputs) -> Result<Option<Created>> {
        match T::describe(&self.1, ctx, Ec2Find::Made).await? {
            Some(object) => self.made(ctx, inputs, &object).await.map(Some),
            None => Ok(None),
        }
    }
}
