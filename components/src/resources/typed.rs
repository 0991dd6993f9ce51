//! The typed provider adapter. A resource type is a [`TypedProvider`]: its kind, its `Inputs`
//! type, the input fields whose change needs a new object, the rules the type cannot
//! express, and create / read / update / delete / find_existing over typed inputs. [`Typed`]
//! makes any of them the engine's JSON [`Provider`], doing once what every type needs:
//! parsing inputs (a misspelled, missing or mistyped field is refused at plan time, naming
//! the resource, kind and field), the diff in the canonical form of `Inputs`, and error
//! classification.
//!
//! The blueprint builds inputs as the same types: [`resource`] makes the engine's resource of
//! them, and [`output`] puts a reference to another resource's output in a string field.

use std::sync::LazyLock;

use async_trait::async_trait;
use byoc_engine::{
    Created, Ctx, Diff, ErrorClass, Observed, Provider, ProviderError, Resource, UNKNOWN,
    as_reference, changed_fields, reference,
};
use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{DeserializeOwned, Deserializer, IntoDeserializer, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Result;
use crate::aws;

/// The code of inputs that do not parse or break a rule of their type: permanent.
pub const INVALID_INPUTS: &str = "InvalidInputs";

/// What a read sees of an object: its inputs as they are now, and its outputs.
pub struct Seen<I> {
    pub inputs: I,
    pub outputs: Value,
}

/// A resource type: its kind, the inputs it takes and the rules they follow.
pub trait ResourceKind: Send + Sync + 'static {
    /// The resource type, e.g. `aws:ec2:Vpc`.
    const KIND: &'static str;
    /// What the blueprint gives, the planner diffs (in its canonical form: parsed and
    /// serialized again) and a read reports back. Unknown fields are refused
    /// (`#[serde(deny_unknown_fields)]`).
    type Inputs: Serialize + DeserializeOwned + PartialEq + Clone + Send + Sync;
    /// Input fields a change of which needs a new object; any other change updates in place.
    const REPLACE_ON: &'static [&'static str];
    /// The unique keys of an object where it lives, each a list of input fields: an object
    /// with the same values of any key cannot exist beside it (a second cluster of the same
    /// name, a second attachment of one internet gateway), so a replacement keeping one
    /// deletes the old object first.
    const UNIQUE_BY: &'static [&'static [&'static str]] = &[];

    /// A change from `old` (as it is) to `new` the type can never make, refused at plan time
    /// (values not known before apply are placeholders, as for `check`).
    fn check_change(_old: &Self::Inputs, _new: &Self::Inputs) -> Result<(), String> {
        Ok(())
    }

    /// Rules the type alone cannot express, checked at plan time and again before a create or
    /// update. At plan time, values not known before apply (another resource's outputs) are
    /// placeholders: an empty collection, `false`, `0`, or [`PLACEHOLDER`] in a string. (A
    /// `tags` field, the object's user tags, is checked for every type: no reserved prefix.)
    fn check(_inputs: &Self::Inputs) -> Result<(), String> {
        Ok(())
    }
}

/// `ResourceKind` for `$wrapper<T>`, a provider over any `T: $bound` (itself a kind): all
/// of it is `T`'s.
macro_rules! forward_kind {
    ($wrapper:ident, $bound:ident) => {
        impl<T: $bound> ResourceKind for $wrapper<T> {
            const KIND: &'static str = T::KIND;
            type Inputs = T::Inputs;
            const REPLACE_ON: &'static [&'static str] = T::REPLACE_ON;
            const UNIQUE_BY: &'static [&'static [&'static str]] = T::UNIQUE_BY;

            fn check(inputs: &T::Inputs) -> Result<(), String> {
                T::check(inputs)
            }

            fn check_change(old: &T::Inputs, new: &T::Inputs) -> Result<(), String> {
                T::check_change(old, new)
            }
        }
    };
}
pub(crate) use forward_kind;

/// One resource type's operations over typed inputs. Every operation must be idempotent (see
/// [`Provider`]); [`Typed`] makes it the engine's provider.
#[async_trait]
pub trait TypedProvider: ResourceKind {
    async fn create(&self, ctx: &Ctx, inputs: &Self::Inputs) -> Result<Created>;

    /// The object as it is now (a `NotFound`-class error if it is gone); `recorded` are the
    /// inputs last applied.
    async fn read(
        &self,
        ctx: &Ctx,
        id: &str,
        recorded: &Self::Inputs,
    ) -> Result<Seen<Self::Inputs>>;

    /// Applies `new` over `old` in place; the new outputs. By default a type changes nothing
    /// in place (every input is in `REPLACE_ON`, so no update comes): its outputs read back.
    async fn update(
        &self,
        ctx: &Ctx,
        id: &str,
        _old: &Self::Inputs,
        new: &Self::Inputs,
    ) -> Result<Value> {
        Ok(self.read(ctx, id, new).await?.outputs)
    }

    async fn delete(&self, ctx: &Ctx, id: &str, inputs: &Self::Inputs) -> Result<()>;

    /// The object an interrupted create of `inputs` made, if any: found by the create's tags
    /// (`ctx.token`) or by its deterministic name with the `byoc:stack` tag checked, and
    /// completed where the create may not have finished.
    async fn find_existing(&self, ctx: &Ctx, inputs: &Self::Inputs) -> Result<Option<Created>>;

    /// What the engine does with a failed call; AWS's classification unless the type knows
    /// better.
    fn classify(error: &ProviderError) -> ErrorClass {
        aws::classify(error)
    }
}

/// A type that makes nothing in the cloud and acts only when it goes: its create records its
/// inputs, and its delete sweeps (the drain of a cluster, what a cluster left in AWS).
#[async_trait]
pub trait Sweeper: ResourceKind {
    /// What it is recorded as: an id and outputs.
    fn recorded(inputs: &Self::Inputs) -> Created;

    async fn sweep(&self, ctx: &Ctx, inputs: &Self::Inputs) -> Result<()>;

    fn classify(error: &ProviderError) -> ErrorClass {
        aws::classify(error)
    }
}

#[async_trait]
impl<S: Sweeper> TypedProvider for S {
    async fn create(&self, _: &Ctx, inputs: &S::Inputs) -> Result<Created> {
        Ok(S::recorded(inputs))
    }

    /// Nothing of its own to read.
    async fn read(&self, _: &Ctx, _: &str, recorded: &S::Inputs) -> Result<Seen<S::Inputs>> {
        Ok(Seen {
            inputs: recorded.clone(),
            outputs: S::recorded(recorded).outputs,
        })
    }

    async fn update(&self, _: &Ctx, _: &str, _: &S::Inputs, new: &S::Inputs) -> Result<Value> {
        Ok(S::recorded(new).outputs)
    }

    async fn delete(&self, ctx: &Ctx, _: &str, inputs: &S::Inputs) -> Result<()> {
        self.sweep(ctx, inputs).await
    }

    /// Its create makes nothing: an interrupted one is complete.
    async fn find_existing(&self, _: &Ctx, inputs: &S::Inputs) -> Result<Option<Created>> {
        Ok(Some(S::recorded(inputs)))
    }

    fn classify(error: &ProviderError) -> ErrorClass {
        S::classify(error)
    }
}

/// The engine's provider for a [`TypedProvider`].
pub struct Typed<P>(pub P);

impl<P: TypedProvider> Typed<P> {
    /// Inputs as the engine hands them over (references resolved).
    fn parse(ctx: &Ctx, inputs: &Value) -> Result<P::Inputs> {
        parse(inputs, false).map_err(|message| invalid::<P>(ctx, message))
    }

    /// Inputs to apply: parsed and checked.
    fn desired(ctx: &Ctx, inputs: &Value) -> Result<P::Inputs> {
        let parsed = Typed::<P>::parse(ctx, inputs)?;
        P::check(&parsed)
            .and_then(|()| check_tags(inputs))
            .map_err(|message| invalid::<P>(ctx, message))?;
        Ok(parsed)
    }

    /// The canonical form of inputs: parsed and serialized again (sets sorted, a field left
    /// out the same as its default), so that what a read reports equals what was applied.
    /// Inputs with outputs not yet known do not parse: they are compared as they are.
    fn canonical(inputs: &Value) -> Value {
        P::Inputs::deserialize(inputs)
            .ok()
            .and_then(|i| serde_json::to_value(i).ok())
            .unwrap_or_else(|| inputs.clone())
    }
}

fn invalid<P: TypedProvider>(ctx: &Ctx, message: String) -> ProviderError {
    ProviderError::with_code(
        INVALID_INPUTS,
        format!("resource {} ({}): {message}", ctx.resource, P::KIND),
    )
}

/// The rule of every type's user tags (a `tags` field): byoc's own (`byoc:`) and AWS's
/// (`aws:`) are not inputs (a read never reports them back).
fn check_tags(inputs: &Value) -> Result<(), String> {
    let keys = inputs
        .get("tags")
        .and_then(Value::as_object)
        .into_iter()
        .flatten();
    match keys
        .map(|(k, _)| k)
        .find(|k| k.starts_with("byoc:") || k.starts_with("aws:"))
    {
        Some(key) => Err(format!(
            "invalid input `tags.{key}`: the byoc: and aws: prefixes are reserved"
        )),
        None => Ok(()),
    }
}

fn to_json(inputs: &impl Serialize) -> Value {
    serde_json::to_value(inputs).expect("inputs have string keys")
}

#[async_trait]
impl<P: TypedProvider> Provider for Typed<P> {
    fn check(&self, inputs: &Value) -> Result<(), String> {
        P::check(&parse(inputs, true)?)?;
        check_tags(inputs)
    }

    fn check_change(&self, old: &Value, new: &Value) -> Result<(), String> {
        match (parse(old, false), parse(new, true)) {
            (Ok(old), Ok(new)) => P::check_change(&old, &new),
            // Inputs that do not parse are refused by `check`.
            _ => Ok(()),
        }
    }

    /// A value not known before apply comes from an object still to be made: it differs.
    fn coexists(&self, old: &Value, new: &Value) -> bool {
        let (old, new) = (Typed::<P>::canonical(old), Typed::<P>::canonical(new));
        P::UNIQUE_BY
            .iter()
            .all(|key| key.iter().any(|f| old.get(f) != new.get(f)))
    }

    fn diff(&self, old: &Value, new: &Value) -> Diff {
        let fields = changed_fields(&Typed::<P>::canonical(old), &Typed::<P>::canonical(new));
        let forcing: Vec<String> = fields
            .iter()
            .filter(|f| P::REPLACE_ON.contains(&f.as_str()))
            .cloned()
            .collect();
        if !forcing.is_empty() {
            Diff::Replace(forcing)
        } else if fields.is_empty() {
            Diff::NoChange
        } else {
            Diff::Update(fields)
        }
    }

    async fn create(&self, ctx: &Ctx, inputs: &Value) -> Result<Created> {
        let inputs = Typed::<P>::desired(ctx, inputs)?;
        self.0.create(ctx, &inputs).await
    }

    async fn read(&self, ctx: &Ctx, id: &str, inputs: &Value) -> Result<Observed> {
        let recorded = Typed::<P>::parse(ctx, inputs)?;
        let seen = self.0.read(ctx, id, &recorded).await?;
        Ok(Observed {
            inputs: to_json(&seen.inputs),
            outputs: seen.outputs,
        })
    }

    async fn update(&self, ctx: &Ctx, id: &str, old: &Value, new: &Value) -> Result<Value> {
        let old = Typed::<P>::parse(ctx, old)?;
        let new = Typed::<P>::desired(ctx, new)?;
        self.0.update(ctx, id, &old, &new).await
    }

    async fn delete(&self, ctx: &Ctx, id: &str, inputs: &Value) -> Result<()> {
        let inputs = Typed::<P>::parse(ctx, inputs)?;
        self.0.delete(ctx, id, &inputs).await
    }

    async fn find_existing(&self, ctx: &Ctx, inputs: &Value) -> Result<Option<Created>> {
        let inputs = Typed::<P>::parse(ctx, inputs)?;
        self.0.find_existing(ctx, &inputs).await
    }

    fn classify(&self, error: &ProviderError) -> ErrorClass {
        P::classify(error)
    }
}

/// `value` as an `I`; the error names the field. With `planned`, values not known before
/// apply stand for any value of the type expected there.
fn parse<I: DeserializeOwned>(value: &Value, planned: bool) -> Result<I, String> {
    let parsed = if planned {
        serde_path_to_error::deserialize(Planned(value))
    } else {
        serde_path_to_error::deserialize(value)
    };
    parsed.map_err(|e| {
        let path = e.path().to_string();
        let error = e.into_inner();
        if path == "." {
            format!("invalid inputs: {error}")
        } else {
            format!("invalid input `{path}`: {error}")
        }
    })
}

/// What a string known only after apply reads as in a plan-time [`TypedProvider::check`].
pub const PLACEHOLDER: &str = "(known after apply)";

/// Inputs as the planner sees them: a value not known before apply (`{"$unknown": ...}`, or a
/// reference still unresolved) stands for any value of the type expected there (a
/// placeholder of that type); anything else deserializes as JSON does.
struct Planned<'a>(&'a Value);

impl Planned<'_> {
    fn unknown(&self) -> bool {
        as_reference(self.0).is_some()
            || self
                .0
                .as_object()
                .is_some_and(|o| o.len() == 1 && o.contains_key(UNKNOWN))
    }
}

impl<'de> IntoDeserializer<'de, serde_json::Error> for Planned<'de> {
    type Deserializer = Planned<'de>;

    fn into_deserializer(self) -> Planned<'de> {
        self
    }
}

/// Visits `items` (none for an unknown value) as a sequence of planned values.
fn visit_seq<'de, V: Visitor<'de>>(
    items: &'de [Value],
    visitor: V,
) -> Result<V::Value, serde_json::Error> {
    let mut seq = SeqDeserializer::new(items.iter().map(Planned));
    let value = visitor.visit_seq(&mut seq)?;
    seq.end()?;
    Ok(value)
}

/// Visits `map` (empty for an unknown value) as a map of planned values.
fn visit_map<'de, V: Visitor<'de>>(
    map: Option<&'de serde_json::Map<String, Value>>,
    visitor: V,
) -> Result<V::Value, serde_json::Error> {
    let entries = map
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), Planned(v)));
    let mut map = MapDeserializer::new(entries);
    let value = visitor.visit_map(&mut map)?;
    map.end()?;
    Ok(value)
}

/// Methods that give an unknown value a placeholder and hand anything else to JSON's
/// deserializer.
macro_rules! placeholders {
    ($($method:ident => $visit:ident($placeholder:expr);)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, serde_json::Error> {
            if self.unknown() {
                visitor.$visit($placeholder)
            } else {
                self.0.$method(visitor)
            }
        }
    )*};
}

impl<'de> Deserializer<'de> for Planned<'de> {
    type Error = serde_json::Error;

    placeholders! {
        deserialize_bool => visit_bool(false);
        deserialize_i8 => visit_i64(0);
        deserialize_i16 => visit_i64(0);
        deserialize_i32 => visit_i64(0);
        deserialize_i64 => visit_i64(0);
        deserialize_u8 => visit_u64(0);
        deserialize_u16 => visit_u64(0);
        deserialize_u32 => visit_u64(0);
        deserialize_u64 => visit_u64(0);
        deserialize_f32 => visit_f64(0.0);
        deserialize_f64 => visit_f64(0.0);
        deserialize_char => visit_char(' ');
        deserialize_str => visit_str(PLACEHOLDER);
        deserialize_string => visit_str(PLACEHOLDER);
        deserialize_bytes => visit_str(PLACEHOLDER);
        deserialize_byte_buf => visit_str(PLACEHOLDER);
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, serde_json::Error> {
        self.0.deserialize_unit(visitor)
    }

    /// A `Value` field keeps the marker itself.
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, serde_json::Error> {
        match self.0 {
            Value::Array(items) => visit_seq(items, visitor),
            Value::Object(map) if !self.unknown() => visit_map(Some(map), visitor),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, serde_json::Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, serde_json::Error> {
        self.0.deserialize_unit_struct(name, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, serde_json::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, serde_json::Error> {
        match self.0 {
            _ if self.unknown() => visit_seq(&[], visitor),
            Value::Array(items) => visit_seq(items, visitor),
            other => other.deserialize_seq(visitor),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, serde_json::Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, serde_json::Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, serde_json::Error> {
        match self.0 {
            _ if self.unknown() => visit_map(None, visitor),
            Value::Object(map) => visit_map(Some(map), visitor),
            other => other.deserialize_map(visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, serde_json::Error> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, serde_json::Error> {
        self.0.deserialize_enum(name, variants, visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, serde_json::Error> {
        self.0.deserialize_identifier(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, serde_json::Error> {
        visitor.visit_unit()
    }
}

/// A number of seconds an input has unless it is given, for its
/// `#[serde(default = "seconds::<N>", skip_serializing_if = "is_seconds::<N>")]`: left out of the
/// inputs when it is the default, as in inputs recorded before the input was.
pub fn seconds<const N: u64>() -> u64 {
    N
}

/// Whether `value` is the default `N` of [`seconds`].
pub fn is_seconds<const N: u64>(value: &u64) -> bool {
    *value == N
}

/// A set of strings given as a list: in the order given when built (so that the blueprint's
/// inputs read as written), sorted and without repeats once parsed (the canonical form the
/// planner compares, whatever order AWS lists them in).
#[derive(Clone, Debug, Default, Serialize)]
#[serde(transparent)]
pub struct StringSet(Vec<String>);

impl StringSet {
    pub fn contains(&self, item: &str) -> bool {
        self.0.iter().any(|i| i == item)
    }

    pub fn iter(&self) -> impl Iterator<Item = &String> {
        self.0.iter()
    }

    /// What `self` has and `other` has not.
    pub fn without<'a>(&'a self, other: &'a StringSet) -> impl Iterator<Item = &'a String> {
        self.0.iter().filter(|i| !other.contains(i))
    }
}

impl PartialEq for StringSet {
    fn eq(&self, other: &StringSet) -> bool {
        self.without(other).next().is_none() && other.without(self).next().is_none()
    }
}

impl FromIterator<String> for StringSet {
    fn from_iter<T: IntoIterator<Item = String>>(items: T) -> StringSet {
        StringSet(items.into_iter().collect())
    }
}

impl<'de> Deserialize<'de> for StringSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<StringSet, D::Error> {
        let mut items = Vec::<String>::deserialize(deserializer)?;
        items.sort();
        items.dedup();
        Ok(StringSet(items))
    }
}

/// Marks a string made by [`output`]: a NUL and a number drawn once per process, so that no
/// string from elsewhere (a config's Helm values) can pass for one.
static OUTPUT: LazyLock<String> =
    LazyLock::new(|| format!("\u{0}output-{:016x}:", fastrand::u64(..)));

/// A reference to output `path` of resource `resource` (e.g. `output("vpc", "id")`), for a
/// string field of typed inputs: [`resource`] makes it the engine's reference. It must be the
/// whole string, never part of one.
pub fn output(resource: &str, path: &str) -> String {
    format!("{}{resource}.{path}", *OUTPUT)
}

/// The engine's resource `name` of type `P` with `inputs`, the strings [`output`] made turned
/// into references.
///
/// # Panics
/// If an [`output`] string was made part of another string (a bug of the blueprint).
pub fn resource<P: ResourceKind>(name: impl Into<String>, inputs: &P::Inputs) -> Resource {
    Resource::new(P::KIND, name, references(to_json(inputs)))
}

fn references(value: Value) -> Value {
    let mark = OUTPUT.as_str();
    match value {
        Value::String(s) => match s.strip_prefix(mark).and_then(|r| r.split_once('.')) {
            Some((resource, path)) => reference(resource, path),
            None => {
                assert!(
                    !s.contains(mark),
                    "a reference to an output stands alone in its string: {s:?}"
                );
                Value::String(s)
            }
        },
        Value::Array(items) => Value::Array(items.into_iter().map(references).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    assert!(!k.contains(mark), "a reference as a key: {k:?}");
                    (k, references(v))
                })
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Arc;

    use byoc_engine::{Graph, PlanError, Providers, Snapshot, plan};
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct DiskInputs {
        name: String,
        size: u32,
        zones: BTreeSet<String>,
        #[serde(default)]
        encrypted: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<Source>,
        #[serde(default)]
        tags: BTreeMap<String, String>,
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Source {
        snapshot: String,
    }

    /// A type whose calls are never made: planning only.
    struct Disk;

    impl ResourceKind for Disk {
        const KIND: &'static str = "test:Disk";
        type Inputs = DiskInputs;
        const REPLACE_ON: &'static [&'static str] = &["name", "zones"];
        const UNIQUE_BY: &'static [&'static [&'static str]] = &[&["name"], &["zones", "size"]];

        fn check_change(old: &DiskInputs, new: &DiskInputs) -> Result<(), String> {
            if new.size < old.size {
                return Err(format!(
                    "a disk cannot shrink from {} to {}",
                    old.size, new.size
                ));
            }
            Ok(())
        }

        fn check(inputs: &DiskInputs) -> Result<(), String> {
            if inputs.size > 100 {
                return Err(format!("size {} is over 100", inputs.size));
            }
            Ok(())
        }
    }

    #[async_trait]
    impl TypedProvider for Disk {
        async fn create(&self, _: &Ctx, _: &DiskInputs) -> Result<Created> {
            unreachable!()
        }

        async fn read(&self, _: &Ctx, _: &str, _: &DiskInputs) -> Result<Seen<DiskInputs>> {
            unreachable!()
        }

        async fn update(&self, _: &Ctx, _: &str, _: &DiskInputs, _: &DiskInputs) -> Result<Value> {
            unreachable!()
        }

        async fn delete(&self, _: &Ctx, _: &str, _: &DiskInputs) -> Result<()> {
            unreachable!()
        }

        async fn find_existing(&self, _: &Ctx, _: &DiskInputs) -> Result<Option<Created>> {
            unreachable!()
        }
    }

    fn disk(name: &str, size: Value) -> Value {
        json!({"name": name, "size": size, "zones": ["b", "a"]})
    }

    fn plan_of(resources: Vec<Resource>) -> Result<(), PlanError> {
        let providers = Providers::new().with(Disk::KIND, Arc::new(Typed(Disk)));
        let graph = Graph::new(resources).expect("a valid graph");
        plan("s", "r", &graph, &Snapshot::default(), &providers, None).map(drop)
    }

    #[test]
    fn misspelled_missing_and_mistyped_inputs_fail_at_plan_time_naming_the_field() {
        let with = |inputs: Value| {
            plan_of(vec![
                Resource::new(Disk::KIND, "a", disk("a", json!(1))),
                Resource::new(Disk::KIND, "b", inputs),
            ])
            .unwrap_err()
            .to_string()
        };
        let mut misspelled = disk("b", json!(1));
        misspelled["sise"] = json!(2);
        assert_eq!(
            with(misspelled),
            "resource b (test:Disk): invalid input `sise`: unknown field `sise`, expected one of \
             `name`, `size`, `zones`, `encrypted`, `source`, `tags`"
        );
        let mut missing = disk("b", json!(1));
        missing.as_object_mut().unwrap().remove("size");
        assert_eq!(
            with(missing),
            "resource b (test:Disk): invalid inputs: missing field `size`"
        );
        assert_eq!(
            with(disk("b", json!("big"))),
            "resource b (test:Disk): invalid input `size`: invalid type: string \"big\", \
             expected u32"
        );
        let mut nested = disk("b", json!(1));
        nested["source"] = json!({"snapshot": "s-1", "region": "x"});
        assert!(with(nested).starts_with("resource b (test:Disk): invalid input `source.region`"),);
        assert_eq!(
            with(disk("b", json!(101))),
            "resource b (test:Disk): size 101 is over 100"
        );
        let mut reserved = disk("b", json!(1));
        reserved["tags"] = json!({"byoc:stack": "other"});
        assert_eq!(
            with(reserved),
            "resource b (test:Disk): invalid input `tags.byoc:stack`: the byoc: and aws: \
             prefixes are reserved"
        );
    }

    #[test]
    fn outputs_not_known_at_plan_time_stand_for_any_value() {
        let mut b = disk("b", reference("a", "size"));
        b["name"] = reference("a", "name");
        b["zones"] = reference("a", "zones");
        b["encrypted"] = reference("a", "encrypted");
        b["source"] = json!({"snapshot": reference("a", "snapshot")});
        b["tags"] = json!({"k": reference("a", "tag")});
        plan_of(vec![
            Resource::new(Disk::KIND, "a", disk("a", json!(1))),
            Resource::new(Disk::KIND, "b", b.clone()),
        ])
        .expect("references pass");
        // Unknown values read as placeholders.
        let planned: DiskInputs =
            parse(&json!({"name": {UNKNOWN: "a.name"}, "size": {UNKNOWN: "a.size"}, "zones": {UNKNOWN: "a.z"}}), true)
                .unwrap();
        assert_eq!(planned.name, PLACEHOLDER);
        assert_eq!((planned.size, planned.zones.len()), (0, 0));
        // A known value is still checked.
        b["encrypted"] = json!("yes");
        assert!(
            plan_of(vec![
                Resource::new(Disk::KIND, "a", disk("a", json!(1))),
                Resource::new(Disk::KIND, "b", b),
            ])
            .unwrap_err()
            .to_string()
            .contains("invalid input `encrypted`")
        );
    }

    #[test]
    fn diffs_compare_canonical_inputs_and_name_replacing_fields() {
        let p = Typed(Disk);
        let a = disk("a", json!(1));
        let mut reordered = a.clone();
        reordered["zones"] = json!(["a", "b", "a"]);
        reordered["encrypted"] = json!(false);
        assert_eq!(p.diff(&a, &reordered), Diff::NoChange);
        let mut bigger = a.clone();
        bigger["size"] = json!(2);
        assert_eq!(p.diff(&a, &bigger), Diff::Update(vec!["size".into()]));
        let mut moved = bigger.clone();
        moved["zones"] = json!(["c"]);
        assert_eq!(p.diff(&a, &moved), Diff::Replace(vec!["zones".into()]));
        // Not yet known: compared as given.
        let unknown = json!({
            "name": "a", "size": {UNKNOWN: "x.size"}, "zones": ["a", "b"], "encrypted": false,
            "tags": {},
        });
        assert_eq!(p.diff(&a, &unknown), Diff::Update(vec!["size".into()]));
    }

    #[test]
    fn a_new_object_coexists_unless_it_repeats_a_unique_key() {
        let p = Typed(Disk);
        // In canonical form: with a value not known yet, inputs are compared as given.
        let a = json!({"name": "a", "size": 1, "zones": ["a", "b"]});
        let with = |field: &str, value: Value| {
            let mut v = a.clone();
            v[field] = value;
            v
        };
        // Every key must differ somewhere for both to exist.
        assert!(!p.coexists(&a, &a));
        assert!(
            !p.coexists(&a, &with("name", json!("b"))),
            "same zones and size"
        );
        let renamed_and_resized = {
            let mut v = with("name", json!("b"));
            v["size"] = json!(2);
            v
        };
        assert!(p.coexists(&a, &renamed_and_resized));
        // A value not known yet is another object's: it differs.
        let unknown = with("name", json!({UNKNOWN: "x.name"}));
        assert!(
            !p.coexists(&a, &unknown),
            "zones and size are still the same"
        );
        assert!(p.coexists(&a, &{
            let mut v = unknown.clone();
            v["size"] = json!({UNKNOWN: "x.size"});
            v
        }));
        assert_eq!(
            p.check_change(&a, &with("size", json!(0))),
            Err("a disk cannot shrink from 1 to 0".into())
        );
        assert_eq!(p.check_change(&a, &with("size", json!(3))), Ok(()));
    }

    #[test]
    fn outputs_become_references() {
        let inputs = DiskInputs {
            name: output("vol", "name"),
            size: 1,
            zones: BTreeSet::from([output("subnet", "zone"), "z".into()]),
            encrypted: false,
            source: None,
            tags: BTreeMap::from([("from".into(), output("vol", "tags.owner"))]),
        };
        let r = resource::<Disk>("d", &inputs);
        assert_eq!(r.kind, Disk::KIND);
        assert_eq!(
            r.inputs,
            json!({
                "name": reference("vol", "name"),
                "size": 1,
                "zones": [reference("subnet", "zone"), "z"],
                "encrypted": false,
                "tags": {"from": reference("vol", "tags.owner")},
            })
        );
    }

    #[test]
    fn string_sets_keep_their_order_until_parsed() {
        let built: StringSet = ["b", "a", "b"].map(String::from).into_iter().collect();
        assert_eq!(to_json(&built), json!(["b", "a", "b"]));
        let parsed: StringSet = parse(&json!(["b", "a", "b"]), false).unwrap();
        assert_eq!(to_json(&parsed), json!(["a", "b"]));
        assert_eq!(built, parsed);
        let other: StringSet = ["a".to_string()].into_iter().collect();
        assert_ne!(built, other);
        assert_eq!(built.without(&other).collect::<Vec<_>>(), ["b", "b"]);
    }

    #[test]
    #[should_panic(expected = "stands alone")]
    fn an_output_inside_a_string_is_refused() {
        let inputs = DiskInputs {
            name: format!("disk-{}", output("vol", "name")),
            size: 1,
            zones: BTreeSet::new(),
            encrypted: false,
            source: None,
            tags: BTreeMap::new(),
        };
        resource::<Disk>("d", &inputs);
    }
}
