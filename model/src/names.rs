//! Names people type (a tenant's, a token's, labels) and their validation; run kinds and
//! states. The identities are in `ids.rs`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Invalid;

/// A free-text name (a tenant's, a token's): 1 to `max` characters, no control characters,
/// no leading or trailing whitespace.
pub fn validate_display_name(what: &str, value: &str, max: usize) -> Result<(), Invalid> {
    let problem = if value.trim().is_empty() {
        Some("is empty".to_string())
    } else if value.chars().any(char::is_control) {
        Some(format!("{value:?} contains a control character"))
    } else if value.trim() != value {
        Some(format!("{value:?} has leading or trailing whitespace"))
    } else if value.chars().count() > max {
        Some(format!(
            "has {} characters: use at most {max}",
            value.chars().count()
        ))
    } else {
        None
    };
    match problem {
        Some(problem) => Err(Invalid(format!("{what} {problem}"))),
        None => Ok(()),
    }
}

/// The most labels a tenant or a node group may have.
pub const MAX_LABELS: usize = 50;

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, at most 63 characters: the name part of a
/// Kubernetes label key, and a label value.
fn is_label_name(text: &str) -> bool {
    text.len() <= 63
        && text.starts_with(|c: char| c.is_ascii_alphanumeric())
        && text.ends_with(|c: char| c.is_ascii_alphanumeric())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A lowercase RFC 1123 DNS subdomain of at most 253 characters.
pub(crate) fn is_dns_subdomain(text: &str) -> bool {
    text.len() <= 253
        && text.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

/// What is wrong with a Kubernetes label (or taint) key, if anything: an optional DNS
/// subdomain prefix and `/`, then a name of 1 to 63 characters.
pub fn label_key_problem(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && !is_dns_subdomain(prefix)
    {
        return Some(format!(
            "the prefix of key {key:?} is not a DNS subdomain: use at most 253 lowercase letters, digits, '-' and '.'"
        ));
    }
    if name.is_empty() || !is_label_name(name) {
        return Some(format!(
            "key {key:?} is not a Kubernetes label key: its name (after an optional prefix and '/') has 1 to 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
        ));
    }
    None
}

/// What is wrong with a Kubernetes label (or taint) value, if anything: empty, or up to 63
/// characters like a key's name.
pub fn label_value_problem(value: &str) -> Option<String> {
    if value.is_empty() || is_label_name(value) {
        None
    } else {
        Some(format!(
            "value {value:?} is invalid: use at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
        ))
    }
}

/// [`validate_labels`]' rule for a key (a Kubernetes label name, no prefix) as an ECMA-262
/// pattern; a value is the same or empty.
pub const LABEL_NAME_PATTERN: &str = r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$";

/// A tenant's labels: at most 50, each key a Kubernetes label name (no `prefix/`: tenant
/// labels select tenants, they are not put on Kubernetes objects) and each value a label
/// value.
pub fn validate_labels(labels: &BTreeMap<String, String>) -> Result<(), Invalid> {
    if labels.len() > MAX_LABELS {
        return Err(Invalid(format!(
            "labels: {} given, at most {MAX_LABELS}",
            labels.len()
        )));
    }
    for (key, value) in labels {
        let key_problem = (!is_label_name(key)).then(|| {
            format!(
                "key {key:?} is invalid: use 1 to 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
            )
        });
        if let Some(problem) = key_problem.or_else(|| label_value_problem(value)) {
            return Err(Invalid(format!("labels.{key}: {problem}")));
        }
    }
    Ok(())
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),* }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }
        }

        impl std::str::FromStr for $name {
            type Err = Invalid;
            fn from_str(s: &str) -> Result<Self, Invalid> {
                match s {
                    $($text => Ok($name::$variant),)*
                    other => Err(Invalid(format!(
                        concat!("unknown ", stringify!($name), " {:?}"), other
                    ))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// What a run does.
    RunKind { Deploy = "deploy", Destroy = "destroy", Refresh = "refresh", Preview = "preview", Verify = "verify" }
);

string_enum!(
    RunStatus { Queued = "queued", Running = "running", Succeeded = "succeeded", Failed = "failed", Cancelled = "cancelled" }
);

impl RunStatus {
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled
        )
    }
}

string_enum!(
    /// Whether byoc can act in the tenant's account yet.
    OnboardingStatus { PendingTrust = "pending_trust", Trusted = "trusted", TrustFailed = "trust_failed" }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_kinds() {
        assert_eq!("deploy".parse::<RunKind>().unwrap(), RunKind::Deploy);
        assert_eq!(
            "nope".parse::<RunKind>().unwrap_err().to_string(),
            "unknown RunKind \"nope\""
        );
    }

    #[test]
    fn display_names() {
        assert!(validate_display_name("tenant name", "Acme Corp. (Ünïcode)", 200).is_ok());
        let name = "x".repeat(200);
        assert!(validate_display_name("tenant name", &name, 200).is_ok());
        let long = "é".repeat(101);
        assert!(validate_display_name("token name", &long[..200], 100).is_ok());
        for (bad, max) in [
            ("", 200),
            ("   ", 200),
            (" acme", 200),
            ("acme ", 200),
            ("ac\nme", 200),
            ("ac\u{7}me", 200),
            (&long[..], 100),
        ] {
            let err = validate_display_name("token name", bad, max).unwrap_err();
            assert!(
                matches!(&err, Invalid(m) if m.starts_with("token name ")),
                "{err}"
            );
        }
    }

    #[test]
    fn label_syntax() {
        let long_prefix = format!(
            "{}.{}.{}.{}",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61)
        );
        assert_eq!(long_prefix.len(), 253);
        for good in [
            "team",
            "a",
            "Team_1.x-y",
            "example.com/team",
            "my-org.example.com/Z",
            &"k".repeat(63),
            &format!("{long_prefix}/x"),
        ] {
            assert_eq!(label_key_problem(good), None, "{good}");
        }
        for bad in [
            "",
            "-team",
            "team-",
            "te am",
            "tëam",
            "/team",
            "example.com/",
            "Example.com/team",
            "-example.com/team",
            "example..com/team",
            "a/b/c",
            &"k".repeat(64),
            &format!("{long_prefix}a/x"),
        ] {
            assert!(label_key_problem(bad).is_some(), "{bad}");
        }
        for good in ["", "v", "v1.2_3-x", &"v".repeat(63)] {
            assert_eq!(label_value_problem(good), None, "{good}");
        }
        for bad in ["-v", "v.", "a b", "a/b", &"v".repeat(64)] {
            assert!(label_value_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn tenant_labels() {
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(validate_labels(&labels(&[("team", "core"), ("tier", "")])).is_ok());
        let message = |l: BTreeMap<String, String>| match validate_labels(&l) {
            Err(Invalid(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(message(labels(&[("team!", "core")])).starts_with("labels.team!: "));
        assert!(message(labels(&[("", "core")])).starts_with("labels.: "));
        assert!(message(labels(&[("acme.io/team", "core")])).starts_with("labels.acme.io/team: "));
        assert!(message(labels(&[("team", "core team")])).starts_with("labels.team: "));
        let full: BTreeMap<String, String> = (0..MAX_LABELS)
            .map(|i| (format!("k{i}"), "v".into()))
            .collect();
        assert!(validate_labels(&full).is_ok());
        let mut over = full;
        over.insert("one-more".into(), "v".into());
        assert!(message(over).starts_with("labels: 51 given"));
    }
}
