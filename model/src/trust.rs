//! Customer trust: where a tenant's trust stack is, what reading it found, and the
//! onboarding verdict byoc draws from that. The reading happens in a worker (it calls AWS);
//! the verdict is pure, so the API, the workers and the tests agree on it.

use serde::{Deserialize, Serialize};

use crate::names::OnboardingStatus;

/// The role the trust template creates by default (its `RoleName` parameter), which workers
/// assume unless told another (`byoc worker --role-name`).
pub const TRUST_ROLE_NAME: &str = "byoc-deployer";

/// Facts a worker learns or is configured with, recorded for the API (which calls no AWS).
pub mod facts {
    /// The account tenants' trust roles trust.
    pub const PLATFORM_ACCOUNT_ID: &str = "platform_account_id";
    /// The role name the workers assume in tenant accounts.
    pub const TRUST_ROLE_NAME: &str = "trust_role_name";
}

/// The version of `cfn-templates/customer-iam-role.yaml`, as its `TemplateVersion` output says.
pub const TRUST_TEMPLATE_VERSION: &str = "2.0.0";

/// The oldest template version whose permissions still cover everything byoc does: older
/// stacks must be updated before byoc acts in the account again. 2.0.0 makes the
/// permissions boundary byoc sets on every role it creates (and lets byoc create, or give
/// policies to, only roles under it); older templates let the platform make itself admin.
pub const MIN_TRUST_TEMPLATE_VERSION: &str = "2.0.0";

/// The permissions boundary the trust template makes beside role `role_name` (its
/// `BoundaryPolicy`, a customer managed policy of that name): byoc sets it on every role it
/// creates, and the template lets byoc's role create roles, or give them policies, only with
/// it.
pub fn boundary_policy_name(role_name: &str) -> String {
    format!("{role_name}-boundary")
}

/// The stack name the quick-create link proposes.
pub const DEFAULT_TRUST_STACK: &str = "byoc-trust";

/// Stack statuses in which the stack's role exists as the template says.
const USABLE: [&str; 3] = [
    "CREATE_COMPLETE",
    "UPDATE_COMPLETE",
    "UPDATE_ROLLBACK_COMPLETE",
];

/// What reading the trust stack in the tenant's account found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrustStackReport {
    pub region: String,
    pub stack_name: String,
    /// The role byoc assumed to read the stack.
    pub assumed_role_arn: String,
    /// CloudFormation's stack status, e.g. `CREATE_COMPLETE`.
    pub status: String,
    /// The stack's `RoleArn` output.
    pub role_arn: Option<String>,
    /// The stack's `TemplateVersion` output.
    pub template_version: Option<String>,
}

/// Why the trust stack could not be read.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum TrustProblem {
    /// The role cannot be assumed with the tenant's external id.
    #[error("{0}")]
    Denied(String),
    /// There is no trust stack where it was looked for.
    #[error("{0}")]
    NoStack(String),
    /// The check could not complete (network, throttling, ...): it says nothing about the
    /// trust, so the tenant's onboarding status stays as it was.
    #[error("{0}")]
    Unreachable(String),
}

/// The onboarding status a verification leads to, and why.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    pub status: OnboardingStatus,
    pub message: String,
    pub template_version: Option<String>,
}

impl Verdict {
    fn failed(message: String, template_version: Option<String>) -> Verdict {
        Verdict {
            status: OnboardingStatus::TrustFailed,
            message,
            template_version,
        }
    }

    /// The verdict on a verification that could not read the stack; `None` when the
    /// problem says nothing about the trust.
    pub fn of_problem(problem: &TrustProblem) -> Option<Verdict> {
        match problem {
            TrustProblem::Denied(m) | TrustProblem::NoStack(m) => {
                Some(Verdict::failed(m.clone(), None))
            }
            TrustProblem::Unreachable(_) => None,
        }
    }

    /// The verdict on a trust stack that was read; `slug` names the tenant in the advice.
    pub fn of_report(report: &TrustStackReport, slug: &str) -> Verdict {
        let stack = format!("trust stack {} in {}", report.stack_name, report.region);
        let relaunch = format!(
            "launch the current template (`byoc tenant trust-template {slug}`) and verify again"
        );
        let version = report.template_version.clone();
        if !USABLE.contains(&report.status.as_str()) {
            let advice = if report.status.ends_with("_IN_PROGRESS") {
                "wait for it to finish, then verify again".to_string()
            } else {
                format!("delete it, {relaunch}")
            };
            return Verdict::failed(format!("{stack} is {}: {advice}", report.status), version);
        }
        let (Some(role_arn), Some(found)) = (&report.role_arn, &version) else {
            return Verdict::failed(
                format!(
                    "{stack} is not a byoc trust stack: it has no RoleArn and TemplateVersion outputs; {relaunch}"
                ),
                version,
            );
        };
        if *role_arn != report.assumed_role_arn {
            return Verdict::failed(
                format!(
                    "{stack} made the role {role_arn}, but byoc assumes {}: launch it with RoleName set to the role byoc assumes",
                    report.assumed_role_arn
                ),
                version,
            );
        }
        let Ok(parsed) = semver::Version::parse(found) else {
            return Verdict::failed(
                format!(
                    "{stack} has TemplateVersion {found:?}, which is not a version; {relaunch}"
                ),
                version,
            );
        };
        let min = semver::Version::parse(MIN_TRUST_TEMPLATE_VERSION).expect("a version");
        let current = semver::Version::parse(TRUST_TEMPLATE_VERSION).expect("a version");
        let update = format!(
            "update the stack with the current template (`byoc tenant trust-template {slug}`)"
        );
        let message = if parsed < min {
            return Verdict::failed(
                format!(
                    "{stack} has template version {found}, older than {MIN_TRUST_TEMPLATE_VERSION}, whose permissions byoc needs: an upgrade is needed; {update} and verify again"
                ),
                version,
            );
        } else if parsed < current {
            format!(
                "{stack} (template {found}) grants byoc's role; template {TRUST_TEMPLATE_VERSION} is available: {update} when convenient"
            )
        } else {
            format!("{stack} (template {found}) grants byoc's role {role_arn}")
        };
        Verdict {
            status: OnboardingStatus::Trusted,
            message,
            template_version: version,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(status: &str, version: Option<&str>) -> TrustStackReport {
        TrustStackReport {
            region: "eu-west-1".into(),
            stack_name: "byoc-trust".into(),
            assumed_role_arn: "arn:aws:iam::111111111111:role/byoc-deployer".into(),
            status: status.into(),
            role_arn: Some("arn:aws:iam::111111111111:role/byoc-deployer".into()),
            template_version: version.map(str::to_string),
        }
    }

    #[test]
    fn the_shipped_template_is_the_current_version() {
        let template = include_str!("../../cfn-templates/customer-iam-role.yaml");
        let mapping = format!("Version:\n      Value: \"{TRUST_TEMPLATE_VERSION}\"");
        assert!(
            template.contains(&mapping),
            "expected {mapping:?} in the template"
        );
    }

    #[test]
    fn the_boundary_is_named_after_the_role_as_the_template_names_it() {
        assert_eq!(
            boundary_policy_name(TRUST_ROLE_NAME),
            "byoc-deployer-boundary"
        );
        let template = include_str!("../../cfn-templates/customer-iam-role.yaml");
        assert!(
            template.contains("ManagedPolicyName: !Sub \"${RoleName}-boundary\""),
            "the template's BoundaryPolicy is not named {{RoleName}}-boundary"
        );
    }

    #[test]
    fn a_complete_current_stack_is_trusted() {
        for status in USABLE {
            let v = Verdict::of_report(&report(status, Some(TRUST_TEMPLATE_VERSION)), "acme");
            assert_eq!(v.status, OnboardingStatus::Trusted, "{status}: {v:?}");
            assert_eq!(v.template_version.as_deref(), Some(TRUST_TEMPLATE_VERSION));
        }
        // A newer template than this byoc knows still grants what it needs.
        let v = Verdict::of_report(&report("CREATE_COMPLETE", Some("2.9.0")), "acme");
        assert_eq!(v.status, OnboardingStatus::Trusted);
    }

    #[test]
    fn a_template_without_the_boundary_needs_an_upgrade() {
        // 1.1.0 let byoc's role attach any policy to a byoc-* role it made: no longer enough.
        let v = Verdict::of_report(&report("CREATE_COMPLETE", Some("1.1.0")), "acme");
        assert_eq!(v.status, OnboardingStatus::TrustFailed);
        assert!(
            v.message
                .contains("template version 1.1.0, older than 2.0.0")
                && v.message.contains("upgrade is needed"),
            "{}",
            v.message
        );
    }

    #[test]
    fn an_old_template_needs_an_upgrade() {
        let v = Verdict::of_report(&report("CREATE_COMPLETE", Some("0.9.0")), "acme");
        assert_eq!(v.status, OnboardingStatus::TrustFailed);
        assert!(v.message.contains("0.9.0"), "{}", v.message);
        assert!(v.message.contains("upgrade is needed"), "{}", v.message);
        assert!(
            v.message.contains("byoc tenant trust-template acme"),
            "{}",
            v.message
        );
        assert_eq!(v.template_version.as_deref(), Some("0.9.0"));
    }

    #[test]
    fn unusable_stacks_fail_with_advice() {
        let v = Verdict::of_report(&report("UPDATE_IN_PROGRESS", Some("1.0.0")), "acme");
        assert_eq!(v.status, OnboardingStatus::TrustFailed);
        assert!(
            v.message.contains("UPDATE_IN_PROGRESS: wait"),
            "{}",
            v.message
        );
        let v = Verdict::of_report(&report("ROLLBACK_COMPLETE", Some("1.0.0")), "acme");
        assert!(
            v.message.contains("ROLLBACK_COMPLETE: delete it"),
            "{}",
            v.message
        );

        let v = Verdict::of_report(&report("CREATE_COMPLETE", None), "acme");
        assert!(
            v.message.contains("not a byoc trust stack"),
            "{}",
            v.message
        );
        let v = Verdict::of_report(&report("CREATE_COMPLETE", Some("latest")), "acme");
        assert!(
            v.message.contains("\"latest\", which is not a version"),
            "{}",
            v.message
        );

        let mut other = report("CREATE_COMPLETE", Some("1.0.0"));
        other.role_arn = Some("arn:aws:iam::111111111111:role/other".into());
        let v = Verdict::of_report(&other, "acme");
        assert_eq!(v.status, OnboardingStatus::TrustFailed);
        assert!(
            v.message.contains("role/other, but byoc assumes"),
            "{}",
            v.message
        );
    }

    #[test]
    fn only_unreachable_leaves_the_status_alone() {
        let denied = TrustProblem::Denied("cannot assume".into());
        assert_eq!(
            Verdict::of_problem(&denied).map(|v| v.status),
            Some(OnboardingStatus::TrustFailed)
        );
        let none = TrustProblem::NoStack("no stack".into());
        assert_eq!(
            Verdict::of_problem(&none).map(|v| v.message),
            Some("no stack".into())
        );
        assert_eq!(
            Verdict::of_problem(&TrustProblem::Unreachable("timeout".into())),
            None
        );
    }
}
