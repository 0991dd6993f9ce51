//! Typed identities: tenant slugs, environment names, stack names, AWS account ids, regions
//! and run ids. Each is a string checked once, when it is made (`new`, `parse`, or
//! deserializing), so what holds one needs no further check; the API, the CLI and the store
//! take them at their edges.

use std::fmt;
use std::ops::Deref;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Invalid;

/// The environment name of the stack record a tenant's trust verifications run under: runs
/// are serialised per stack, and `.` is in no slug or environment name, so `{slug}.trust`
/// never collides with a `{slug}-{env}`.
pub const TRUST_ENV: &str = ".trust";

/// Defines an identity: a `String` newtype whose every value passed `$check`, with the
/// ECMA-262 `$pattern` that states the same rule in the API's schema.
macro_rules! identity {
    ($(#[$meta:meta])* $name:ident, $check:path, $pattern:expr) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// [`Self::new`]'s rule as an ECMA-262 pattern, for the API's schema.
            pub const PATTERN: &str = $pattern;

            /// The value, if it keeps the rule; the error names what is wrong.
            pub fn new(value: impl Into<String>) -> Result<Self, Invalid> {
                let value = value.into();
                $check(&value)?;
                Ok($name(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = Invalid;
            fn try_from(value: String) -> Result<Self, Invalid> {
                $name::new(value)
            }
        }

        impl FromStr for $name {
            type Err = Invalid;
            fn from_str(value: &str) -> Result<Self, Invalid> {
                $name::new(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        /// As the string's: `"acme"`, so messages read the same as with a plain string.
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                string_schema($pattern)
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

fn string_schema(pattern: &str) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .into()
}

identity!(
    /// A tenant's slug: 3 to 40 lowercase letters, digits and '-', starting with a letter and
    /// not ending with '-'.
    TenantSlug,
    check_slug,
    r"^[a-z][a-z0-9-]{1,38}[a-z0-9]$"
);

identity!(
    /// An environment's name: 1 to 21 lowercase letters, digits and '-', starting with a
    /// letter.
    EnvName,
    check_env,
    r"^[a-z][a-z0-9-]{0,20}$"
);

identity!(
    /// The name of a stack: `{slug}-{env}` for a tenant's environment, `{slug}.trust` for the
    /// record a tenant's trust verifications run under.
    StackName,
    check_stack_name,
    r"^[a-z][a-z0-9-]{1,38}[a-z0-9](-[a-z][a-z0-9-]{0,20}|\.trust)$"
);

identity!(
    /// An AWS account id: 12 digits.
    AccountId,
    check_account_id,
    r"^[0-9]{12}$"
);

identity!(
    /// An AWS region name such as `eu-west-1`, `us-gov-west-1` or `eusc-de-east-1`.
    Region,
    check_region,
    r"^(us|eu|ap|sa|ca|me|af|il|mx|cn|us-gov|us-iso|us-isob|eusc|eusc-[a-z]{2})-(north|south|east|west|central|northeast|northwest|southeast|southwest)-[1-9][0-9]?$"
);

identity!(
    /// A run's id: a UUID, lowercase and hyphenated.
    RunId,
    check_run_id,
    r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
);

impl StackName {
    /// The stack of a tenant's environment.
    pub fn of(slug: &TenantSlug, env: &EnvName) -> StackName {
        StackName(format!("{slug}-{env}"))
    }

    /// The stack record of a tenant's trust verifications.
    pub fn trust(slug: &TenantSlug) -> StackName {
        StackName(format!("{slug}{TRUST_ENV}"))
    }
}

/// Lowercase letters, digits and '-', starting with a letter, `min..=max` long, and (for
/// slugs) not ending with '-'.
fn check_name(
    what: &str,
    value: &str,
    min: usize,
    max: usize,
    dash_end: bool,
) -> Result<(), Invalid> {
    if is_name(value, min, max, dash_end) {
        return Ok(());
    }
    let end = if dash_end {
        ""
    } else {
        " and not ending with '-'"
    };
    Err(Invalid(format!(
        "{what} {value:?} is invalid: use {min} to {max} lowercase letters, digits and '-', starting with a letter{end}"
    )))
}

fn is_name(value: &str, min: usize, max: usize, dash_end: bool) -> bool {
    (min..=max).contains(&value.len())
        && value.starts_with(|c: char| c.is_ascii_lowercase())
        && (dash_end || !value.ends_with('-'))
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn check_slug(value: &str) -> Result<(), Invalid> {
    check_name("tenant slug", value, 3, 40, false)
}

fn check_env(value: &str) -> Result<(), Invalid> {
    check_name("environment name", value, 1, 21, true)
}

fn check_stack_name(value: &str) -> Result<(), Invalid> {
    let slug_ok = |slug: &str| check_slug(slug).is_ok();
    let ok = match value.strip_suffix(TRUST_ENV) {
        Some(slug) => slug_ok(slug),
        // A slug may hold '-' too: some split must give a slug and an environment name.
        None => value
            .match_indices('-')
            .any(|(at, _)| slug_ok(&value[..at]) && check_env(&value[at + 1..]).is_ok()),
    };
    if ok {
        Ok(())
    } else {
        Err(Invalid(format!(
            "stack name {value:?} is invalid: it is `{{slug}}-{{env}}`, a tenant slug and an environment name (or `{{slug}}{TRUST_ENV}`)"
        )))
    }
}

fn check_account_id(value: &str) -> Result<(), Invalid> {
    if value.len() == 12 && value.chars().all(|c| c.is_ascii_digit()) {
        Ok(())
    } else {
        Err(Invalid(format!(
            "AWS account id {value:?} is invalid: it has exactly 12 digits"
        )))
    }
}

fn check_region(value: &str) -> Result<(), Invalid> {
    if is_region(value) {
        Ok(())
    } else {
        Err(Invalid(format!(
            "region {value:?} is not an AWS region name such as eu-west-1"
        )))
    }
}

fn is_region(name: &str) -> bool {
    const AREAS: [&str; 14] = [
        "us", "eu", "ap", "sa", "ca", "me", "af", "il", "mx", "cn", "us-gov", "us-iso", "us-isob",
        "eusc",
    ];
    const DIRECTIONS: [&str; 9] = [
        "north",
        "south",
        "east",
        "west",
        "central",
        "northeast",
        "northwest",
        "southeast",
        "southwest",
    ];
    let Some((rest, number)) = name.rsplit_once('-') else {
        return false;
    };
    let Some((area, direction)) = rest.rsplit_once('-') else {
        return false;
    };
    let number_ok = matches!(
        number.as_bytes(),
        [b'1'..=b'9'] | [b'1'..=b'9', b'0'..=b'9']
    );
    // The European Sovereign Cloud names a country as well: `eusc-de-east-1`.
    let area_ok = AREAS.contains(&area)
        || area
            .strip_prefix("eusc-")
            .is_some_and(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_lowercase()));
    number_ok && area_ok && DIRECTIONS.contains(&direction)
}

fn check_run_id(value: &str) -> Result<(), Invalid> {
    let groups: Vec<&str> = value.split('-').collect();
    let ok = groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
    if ok {
        Ok(())
    } else {
        Err(Invalid(format!(
            "run id {value:?} is invalid: it is a lowercase hyphenated UUID (8-4-4-4-12 hex digits)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `T::new` rejects each of `bad` with a message that starts with `starts`, and the
    /// same from deserializing; `good` round-trips through JSON unchanged.
    fn check<T>(good: &[&str], bad: &[&str], starts: &str)
    where
        T: FromStr<Err = Invalid> + Serialize + serde::de::DeserializeOwned + fmt::Debug,
        T: PartialEq<str> + fmt::Display,
    {
        for good in good {
            let id: T = good.parse().unwrap_or_else(|e| panic!("{good}: {e}"));
            assert_eq!(&id, *good);
            assert_eq!(id.to_string(), *good);
            let json = serde_json::to_value(&id).unwrap();
            assert_eq!(json, serde_json::json!(good));
            let back: T = serde_json::from_value(json).unwrap();
            assert_eq!(&back, *good);
        }
        for bad in bad {
            let Invalid(message) = bad.parse::<T>().unwrap_err();
            assert!(message.starts_with(starts), "{bad}: {message}");
            assert!(message.contains(&format!("{bad:?}")), "{message}");
            let from_json = serde_json::from_value::<T>(serde_json::json!(bad)).unwrap_err();
            assert_eq!(from_json.to_string(), message);
        }
    }

    #[test]
    fn tenant_slugs() {
        check::<TenantSlug>(
            &["acme", "acme-2", "a-b", &"a".repeat(40)],
            &[
                "",
                "Acme",
                "2acme",
                "acme-",
                "ac_me",
                "ab",
                "a-tenant-slug-that-is-longer-than-forty-characters",
            ],
            "tenant slug ",
        );
        assert_eq!(
            TenantSlug::new("Acme").unwrap_err().0,
            "tenant slug \"Acme\" is invalid: use 3 to 40 lowercase letters, digits and '-', starting with a letter and not ending with '-'"
        );
    }

    #[test]
    fn env_names() {
        check::<EnvName>(
            &["prod", "d", "dev-", "eu-1", &"e".repeat(21)],
            &["", "Dev", "1dev", "de v", &"e".repeat(22)],
            "environment name ",
        );
    }

    #[test]
    fn account_ids() {
        check::<AccountId>(
            &["111111111111", "000000000000"],
            &["", "11111111111a", "1111", "1111111111111", " 111111111111"],
            "AWS account id ",
        );
    }

    #[test]
    fn run_ids() {
        check::<RunId>(
            &[
                "00000000-0000-4000-8000-000000000000",
                "0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d",
            ],
            &[
                "",
                "x",
                "00000000-0000-4000-8000-00000000000",
                "00000000-0000-4000-8000-0000000000000",
                "0A1B2C3D-4E5F-4A6B-8C7D-8E9F0A1B2C3D",
                "00000000000040008000000000000000",
                "00000000-0000-4000-8000-00000000000g",
                "00000000_0000-4000-8000-000000000000",
            ],
            "run id ",
        );
    }

    #[test]
    fn stack_names() {
        let slug = TenantSlug::new("co1-prod").unwrap();
        let env = EnvName::new("eu").unwrap();
        assert_eq!(StackName::of(&slug, &env), "co1-prod-eu");
        assert_eq!(StackName::trust(&slug), "co1-prod.trust");
        check::<StackName>(
            &["acme-dev", "co1-prod-eu", "acme.trust", "abc-d-", "a-b-c-d"],
            &[
                "",
                "acme",
                "acme-",
                "acme-Dev",
                "ab-dev",
                "acme.dev",
                "acme-.trust",
                "ab.trust",
                "-acme-dev",
                "acme--x",
            ],
            "stack name ",
        );
        // The pattern and the rule agree on what a name holds.
        assert_eq!(
            StackName::PATTERN,
            format!(
                "{}(-{}|\\.trust)$",
                TenantSlug::PATTERN.trim_end_matches('$'),
                EnvName::PATTERN
                    .trim_start_matches('^')
                    .trim_end_matches('$')
            )
        );
    }

    #[test]
    fn regions() {
        let good = [
            "eu-west-1",
            "us-east-1",
            "us-gov-west-1",
            "us-iso-east-1",
            "us-isob-east-1",
            "ap-southeast-5",
            "ap-northeast-3",
            "il-central-1",
            "mx-central-1",
            "cn-northwest-1",
            "eusc-de-east-1",
            "eusc-east-1",
            "ca-west-1",
            "us-east-10",
            "us-east-99",
        ];
        let bad = [
            "",
            "Mars",
            "mars-north-1",
            "eu-west-0",
            "eu-west-01",
            "eu-west-100",
            "eu-west",
            "eu-west-",
            "EU-WEST-1",
            "eu-up-1",
            "eu-west-1a",
            "us-gov-1",
            "eusc-d-east-1",
            "eusc-deu-east-1",
            "eu-de-east-1",
            " eu-west-1",
        ];
        check::<Region>(&good, &bad, "region ");
    }

    #[test]
    fn in_records_and_schemas() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Body {
            slug: TenantSlug,
            region: Option<Region>,
        }
        let err = serde_json::from_value::<Body>(serde_json::json!({"slug": "Acme"})).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("tenant slug \"Acme\" is invalid"),
            "{err}"
        );
        let ok: Body = serde_json::from_value(serde_json::json!({"slug": "acme"})).unwrap();
        assert_eq!(ok.slug, "acme");
        assert_eq!(ok.region, None);

        let schema = serde_json::to_value(<TenantSlug as utoipa::PartialSchema>::schema()).unwrap();
        assert_eq!(
            schema,
            serde_json::json!({"type": "string", "pattern": TenantSlug::PATTERN})
        );
        assert_eq!(<RunId as utoipa::ToSchema>::name(), "RunId");
    }
}
