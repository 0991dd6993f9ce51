//! The stack model: names and their validation, run kinds and states.

use serde::{Deserialize, Serialize};

use crate::DbError;

/// Lowercase letters, digits and '-', starting with a letter, `min..=max` long, and (for
/// slugs) not ending with '-'.
fn validate_name(
    what: &str,
    value: &str,
    min: usize,
    max: usize,
    dash_end: bool,
) -> Result<(), DbError> {
    let ok = (min..=max).contains(&value.len())
        && value.starts_with(|c: char| c.is_ascii_lowercase())
        && (dash_end || !value.ends_with('-'))
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        let end = if dash_end {
            ""
        } else {
            " and not ending with '-'"
        };
        Err(DbError::Invalid(format!(
            "{what} {value:?} is invalid: use {min} to {max} lowercase letters, digits and '-', starting with a letter{end}"
        )))
    }
}

/// `^[a-z][a-z0-9-]{1,38}[a-z0-9]$`
pub fn validate_slug(slug: &str) -> Result<(), DbError> {
    validate_name("tenant slug", slug, 3, 40, false)
}

/// `^[a-z][a-z0-9-]{0,20}$`
pub fn validate_env(env: &str) -> Result<(), DbError> {
    validate_name("environment name", env, 1, 21, true)
}

pub fn validate_account_id(id: &str) -> Result<(), DbError> {
    if id.len() == 12 && id.chars().all(|c| c.is_ascii_digit()) {
        Ok(())
    } else {
        Err(DbError::Invalid(format!(
            "AWS account id {id:?} is invalid: it has exactly 12 digits"
        )))
    }
}

/// An AWS region name such as `eu-west-1` or `us-gov-west-1`.
pub fn is_region(name: &str) -> bool {
    let parts: Vec<&str> = name.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| !p.is_empty())
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit())
}

/// The stack of a tenant's environment.
pub fn stack_name(slug: &str, env: &str) -> String {
    format!("{slug}-{env}")
}

/// The environment name of the stack record a tenant's trust verifications run under: runs
/// are serialised per stack, and `.` is in no slug or environment name, so `{slug}.trust`
/// never collides with a `{slug}-{env}`.
pub const TRUST_ENV: &str = ".trust";

/// The stack record of a tenant's trust verifications.
pub fn trust_stack_name(slug: &str) -> String {
    format!("{slug}{TRUST_ENV}")
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),* }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }
        }

        impl std::str::FromStr for $name {
            type Err = DbError;
            fn from_str(s: &str) -> Result<Self, DbError> {
                match s {
                    $($text => Ok($name::$variant),)*
                    other => Err(DbError::Invalid(format!(
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
    fn names() {
        assert!(validate_slug("acme").is_ok());
        assert!(validate_slug("acme-2").is_ok());
        for bad in [
            "",
            "Acme",
            "2acme",
            "acme-",
            "ac_me",
            "ab",
            "a-tenant-slug-that-is-longer-than-forty-characters",
        ] {
            let err = validate_slug(bad).unwrap_err().to_string();
            assert!(err.contains("tenant slug"), "{err}");
        }
        assert!(validate_env("prod").is_ok());
        assert!(validate_account_id("111111111111").is_ok());
        assert!(validate_account_id("11111111111a").is_err());
        assert_eq!(stack_name("acme", "dev"), "acme-dev");
        assert_eq!("deploy".parse::<RunKind>().unwrap(), RunKind::Deploy);
        assert_eq!(
            "nope".parse::<RunKind>().unwrap_err().to_string(),
            "invalid input: unknown RunKind \"nope\""
        );
    }
}
