//! What a stack is made of: resources with JSON inputs that may reference other resources'
//! outputs.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A desired resource: its type, its logical name (unique in the stack) and its inputs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    pub kind: String,
    pub name: String,
    /// Desired inputs. A value `{"$ref": "vpc.id"}` anywhere inside is a [`reference`] to an
    /// output of another resource, resolved just before this one is applied.
    pub inputs: Value,
    /// Ordering dependencies that no reference expresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    #[serde(default, skip_serializing_if = "Lifecycle::is_default")]
    pub lifecycle: Lifecycle,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifecycle {
    /// Any plan that would delete (or replace) this resource fails instead.
    #[serde(default)]
    pub protect: bool,
    /// On replacement, create the new object before deleting the old one.
    #[serde(default)]
    pub create_before_destroy: bool,
    /// Replacing or deleting it loses what the customer runs on it (a cluster, a VPC): a
    /// deploy does so only by applying a plan someone approved ([`Plan::needs_approval`]).
    /// A destroy is its own approval.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub guard: bool,
}

impl Lifecycle {
    fn is_default(&self) -> bool {
        *self == Lifecycle::default()
    }
}

impl Resource {
    pub fn new(kind: impl Into<String>, name: impl Into<String>, inputs: Value) -> Resource {
        Resource {
            kind: kind.into(),
            name: name.into(),
            inputs,
            depends_on: Vec::new(),
            lifecycle: Lifecycle::default(),
        }
    }

    pub fn depends_on(mut self, name: impl Into<String>) -> Resource {
        self.depends_on.push(name.into());
        self
    }

    pub fn lifecycle(mut self, lifecycle: Lifecycle) -> Resource {
        self.lifecycle = lifecycle;
        self
    }
}

const REF: &str = "$ref";
/// Marks a value the planner cannot know yet because its source is still to be applied.
pub const UNKNOWN: &str = "$unknown";

/// A reference to output `path` (dot-separated, e.g. `identity.oidc.issuer`) of resource
/// `resource`, to put in another resource's inputs.
pub fn reference(resource: &str, path: &str) -> Value {
    serde_json::json!({ REF: format!("{resource}.{path}") })
}

/// `Some((resource, path))` if `value` is a reference.
pub fn as_reference(value: &Value) -> Option<(&str, &str)> {
    let obj = value.as_object()?;
    if obj.len() != 1 {
        return None;
    }
    obj.get(REF)?.as_str()?.split_once('.')
}

/// Every reference inside `value` (object keys in sorted order).
pub fn references(value: &Value) -> Vec<(&str, &str)> {
    fn walk<'a>(v: &'a Value, out: &mut Vec<(&'a str, &'a str)>) {
        if let Some(r) = as_reference(v) {
            out.push(r);
            return;
        }
        match v {
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            Value::Object(map) => map.values().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, &mut out);
    out
}

/// Why a reference could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("reference {resource}.{path}: {reason}")]
pub struct ResolveError {
    pub resource: String,
    pub path: String,
    pub reason: String,
}

/// Replaces every reference in `value` by the output it names. `outputs(name)` gives a
/// resource's outputs, or `None` when they are not known yet: then the reference becomes an
/// `{"$unknown": "name.path"}` marker if `allow_unknown`, and an error otherwise.
pub fn resolve<'a>(
    value: &Value,
    outputs: &impl Fn(&str) -> Option<&'a Value>,
    allow_unknown: bool,
) -> Result<Value, ResolveError> {
    if let Some((resource, path)) = as_reference(value) {
        let err = |reason: &str| ResolveError {
            resource: resource.to_string(),
            path: path.to_string(),
            reason: reason.to_string(),
        };
        return match outputs(resource) {
            Some(out) => lookup(out, path)
                .cloned()
                .ok_or_else(|| err("no such output")),
            None if allow_unknown => {
                Ok(serde_json::json!({ UNKNOWN: format!("{resource}.{path}") }))
            }
            None => Err(err("outputs not known")),
        };
    }
    Ok(match value {
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| resolve(i, outputs, allow_unknown))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), resolve(v, outputs, allow_unknown)?)))
                .collect::<Result<Map<_, _>, _>>()?,
        ),
        other => other.clone(),
    })
}

/// `path` (dot-separated object keys or array indices) inside `value`.
pub fn lookup<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(value, |v, key| match v {
        Value::Object(map) => map.get(key),
        Value::Array(items) => items.get(key.parse::<usize>().ok()?),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resolves_nested_references() {
        let inputs = json!({
            "vpc_id": reference("vpc", "id"),
            "subnets": [reference("a", "ids.0"), "literal"],
        });
        assert_eq!(references(&inputs), [("a", "ids.0"), ("vpc", "id")]);
        let vpc = json!({"id": "vpc-1"});
        let a = json!({"ids": ["subnet-1"]});
        let outputs = |name: &str| match name {
            "vpc" => Some(&vpc),
            "a" => Some(&a),
            _ => None,
        };
        assert_eq!(
            resolve(&inputs, &outputs, false).unwrap(),
            json!({"vpc_id": "vpc-1", "subnets": ["subnet-1", "literal"]})
        );
    }

    #[test]
    fn unknown_outputs_are_marked_or_rejected() {
        let inputs = json!({"vpc_id": reference("vpc", "id")});
        let none = |_: &str| None;
        assert_eq!(
            resolve(&inputs, &none, true).unwrap(),
            json!({"vpc_id": {"$unknown": "vpc.id"}})
        );
        let err = resolve(&inputs, &none, false).unwrap_err();
        assert_eq!(err.to_string(), "reference vpc.id: outputs not known");
        let vpc = json!({"arn": "x"});
        let some = |_: &str| Some(&vpc);
        let err = resolve(&inputs, &some, false).unwrap_err();
        assert_eq!(err.to_string(), "reference vpc.id: no such output");
    }
}
