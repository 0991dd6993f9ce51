//! The customer trust template (cfn-templates/customer-iam-role.yaml): cfn-lint (pinned)
//! passes, and launched the way the customer would (CreateStack in the tenant account) it
//! makes the role with exactly the intended trust policy, its policies and the permissions
//! boundary byoc puts its roles under.

mod common;

use aws_sdk_cloudformation::types::{Capability, Parameter};
use byoc_components::RateLimits;
use byoc_components::trust::read_trust_stack;
use byoc_components::{Aws, Target};
use byoc_model::{OnboardingStatus, TRUST_TEMPLATE_VERSION, TrustProblem, Verdict};
use byoc_testkit::{Emulator, workspace_root};
use serde_json::{Value, json};
use std::sync::Arc;

const PLATFORM: &str = "123456789012";

/// Runs a program of the pinned venv (`.venv/bin/{program}`) with `args` (paths relative to
/// the workspace root): whether it succeeded, and its output.
fn venv(program: &str, args: &[&str]) -> anyhow::Result<(bool, String)> {
    let path = workspace_root().join(".venv/bin").join(program);
    anyhow::ensure!(
        path.exists(),
        "{} is missing: run tools/setup.sh",
        path.display()
    );
    let out = std::process::Command::new(path)
        .args(args.iter().map(|a| match a.starts_with('-') {
            true => a.into(),
            false => workspace_root().join(a),
        }))
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), text))
}

#[test]
fn cfn_lint_passes() -> anyhow::Result<()> {
    let (ok, out) = venv("cfn-lint", &["cfn-templates/customer-iam-role.yaml"])?;
    assert!(ok, "cfn-lint: {out}");
    Ok(())
}

/// `tools/policy/check.py` over `template` (relative to the workspace): its exit status and
/// output.
fn policy_check(template: &str) -> anyhow::Result<(bool, String)> {
    venv("python", &["tools/policy/check.py", "--template", template])
}

/// parliament and cloudsplaining (pinned IAM linters) over the rendered policies, with every
/// optional feature on and off: no privilege-escalation path of byoc's role (or of a role
/// under the boundary) is left open, and every finding of theirs is one the check accepts
/// with a reason.
#[test]
fn the_policy_linters_find_no_open_escalation_path() -> anyhow::Result<()> {
    let (ok, out) = policy_check("cfn-templates/customer-iam-role.yaml")?;
    assert!(ok, "tools/policy/check.py:\n{out}");
    Ok(())
}

/// The same check over template 1.1.0 (the last without the boundary) finds the escalation
/// issue 19 describes: a role byoc-x given any policy, then its trust.
#[test]
fn the_policy_linters_find_the_old_templates_escalation() -> anyhow::Result<()> {
    let (ok, out) = policy_check("tools/policy/fixtures/customer-iam-role-1.1.0.yaml")?;
    assert!(!ok, "template 1.1.0 passed the check:\n{out}");
    for path in [
        "escalation path cloudsplaining:AttachRolePolicy (iam:attachrolepolicy) is open",
        "escalation path cloudsplaining:PutRolePolicy (iam:putrolepolicy) is open",
        "escalation path cloudsplaining:UpdateRolePolicyToAssumeIt (iam:updateassumerolepolicy) is open",
        "no permissions boundary",
    ] {
        assert!(out.contains(path), "{path:?} not in:\n{out}");
    }
    Ok(())
}

/// CreateStack of the shipped template as the customer would, as `byoc-trust`; `version`
/// pretends it is another version of the template.
async fn launch(
    cfn: &aws_sdk_cloudformation::Client,
    external_id: &str,
    version: Option<&str>,
) -> anyhow::Result<()> {
    let mut template =
        std::fs::read_to_string(workspace_root().join("cfn-templates/customer-iam-role.yaml"))?;
    if let Some(version) = version {
        let current = format!("Value: \"{TRUST_TEMPLATE_VERSION}\"");
        anyhow::ensure!(template.contains(&current), "no {current} in the template");
        template = template.replacen(&current, &format!("Value: \"{version}\""), 1);
    }
    let param = |k: &str, v: &str| {
        Parameter::builder()
            .parameter_key(k)
            .parameter_value(v)
            .build()
    };
    cfn.create_stack()
        .stack_name("byoc-trust")
        .template_body(&template)
        .capabilities(Capability::CapabilityNamedIam)
        .parameters(param("TrustedAccountId", PLATFORM))
        .parameters(param("ExternalId", external_id))
        .parameters(param("TenantSlug", "acme"))
        .send()
        .await?;
    Ok(())
}

#[tokio::test]
async fn launched_template_grants_exactly_the_intended_trust() -> anyhow::Result<()> {
    let emulator = Emulator::shared();
    let account = emulator.fresh_account();
    // The customer's own admin session in their account.
    let customer = common::assumed_account(emulator.endpoint(), &account).await?;
    let cfn = aws_sdk_cloudformation::Client::new(&customer);
    let external_id = "e".repeat(64);
    launch(&cfn, &external_id, None).await?;
    let stacks = cfn
        .describe_stacks()
        .stack_name("byoc-trust")
        .send()
        .await?;
    let stack = &stacks.stacks()[0];
    assert_eq!(
        stack.stack_status().map(|s| s.as_str()),
        Some("CREATE_COMPLETE")
    );
    let output = |key: &str| {
        stack
            .outputs()
            .iter()
            .find(|o| o.output_key() == Some(key))
            .and_then(|o| o.output_value())
            .map(str::to_string)
    };
    assert_eq!(
        output("RoleArn"),
        Some(format!("arn:aws:iam::{account}:role/byoc-deployer"))
    );
    assert_eq!(
        output("TemplateVersion").as_deref(),
        Some(TRUST_TEMPLATE_VERSION)
    );

    let iam = aws_sdk_iam::Client::new(&customer);
    let role = iam.get_role().role_name("byoc-deployer").send().await?;
    let role = role.role().unwrap();
    let trust: Value = serde_json::from_str(
        &percent_encoding::percent_decode_str(role.assume_role_policy_document().unwrap())
            .decode_utf8_lossy(),
    )?;
    assert_eq!(
        trust,
        json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"AWS": format!("arn:aws:iam::{PLATFORM}:root")},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": external_id}},
            }],
        })
    );
    assert_eq!(role.max_session_duration(), Some(3600));
    let attached = iam
        .list_attached_role_policies()
        .role_name("byoc-deployer")
        .send()
        .await?;
    let mut names: Vec<&str> = attached
        .attached_policies()
        .iter()
        .filter_map(|p| p.policy_name())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "byoc-deployer-deprovision",
            "byoc-deployer-iam",
            "byoc-deployer-karpenter",
            "byoc-deployer-provision"
        ]
    );
    // The boundary exists under the name byoc computes, and caps no one yet: it is not the
    // deployer's own (the customer's PermissionsBoundaryArn is, when given).
    let boundary = format!(
        "arn:aws:iam::{account}:policy/{}",
        byoc_model::boundary_policy_name(byoc_model::TRUST_ROLE_NAME)
    );
    assert_eq!(output("BoundaryArn"), Some(boundary.clone()));
    iam.get_policy().policy_arn(&boundary).send().await?;
    assert!(role.permissions_boundary().is_none());
    Ok(())
}

/// byoc's session in the tenant account, as a verification run opens it.
async fn byoc_session(emulator: &Emulator, account: &str) -> Arc<Aws> {
    let platform = common::env::platform(emulator.endpoint(), RateLimits::default()).await;
    platform.session(Target {
        account_id: account.to_string(),
        external_id: "e".repeat(64),
        region: common::REGION.into(),
        stack: "acme.trust".into(),
        run_id: "verify-1".into(),
    })
}

/// The customer's CloudFormation client in their (fresh) account.
async fn customer_cfn(
    emulator: &Emulator,
    account: &str,
) -> anyhow::Result<aws_sdk_cloudformation::Client> {
    let customer = common::assumed_account(emulator.endpoint(), account).await?;
    Ok(aws_sdk_cloudformation::Client::new(&customer))
}

/// A fresh tenant account in which the customer launched the template (as `version`).
async fn launched(version: Option<&str>) -> anyhow::Result<(&'static Emulator, String)> {
    let emulator = Emulator::shared();
    let account = emulator.fresh_account();
    launch(
        &customer_cfn(emulator, &account).await?,
        &"e".repeat(64),
        version,
    )
    .await?;
    Ok((emulator, account))
}

#[tokio::test]
async fn verify_reads_the_launched_stack_and_trusts_it() -> anyhow::Result<()> {
    let (emulator, account) = launched(None).await?;
    let aws = byoc_session(emulator, &account).await;
    let report = read_trust_stack(&aws, "byoc-trust").await?;
    let role = format!("arn:aws:iam::{account}:role/byoc-deployer");
    assert_eq!(report.status, "CREATE_COMPLETE");
    assert_eq!(report.role_arn.as_deref(), Some(role.as_str()));
    assert_eq!(report.assumed_role_arn, role);
    assert_eq!(
        report.template_version.as_deref(),
        Some(TRUST_TEMPLATE_VERSION)
    );
    let verdict = Verdict::of_report(&report, "acme");
    assert_eq!(verdict.status, OnboardingStatus::Trusted, "{verdict:?}");
    // The stack was read through the tenant's role, assumed with the external id.
    let sts = emulator.requests("sts")?;
    assert!(
        sts.contains(&role.replace(':', "%3A").replace('/', "%2F")),
        "{sts}"
    );
    Ok(())
}

/// A stack of an older template than byoc needs (0.9.0, and 1.1.0, the last one without the
/// permissions boundary) fails verification, saying it needs an upgrade and how.
#[tokio::test]
async fn verify_of_an_old_template_says_an_upgrade_is_needed() -> anyhow::Result<()> {
    for old in ["0.9.0", "1.1.0"] {
        let (emulator, account) = launched(Some(old)).await?;
        let report =
            read_trust_stack(&*byoc_session(emulator, &account).await, "byoc-trust").await?;
        assert_eq!(report.template_version.as_deref(), Some(old));
        let verdict = Verdict::of_report(&report, "acme");
        assert_eq!(verdict.status, OnboardingStatus::TrustFailed);
        let expected = format!(
            "has template version {old}, older than {}, whose permissions byoc needs: an upgrade is needed; update the stack with the current template (`byoc tenant trust-template acme`)",
            byoc_model::MIN_TRUST_TEMPLATE_VERSION
        );
        assert!(verdict.message.contains(&expected), "{}", verdict.message);
    }
    Ok(())
}

#[tokio::test]
async fn verify_without_a_stack_says_where_it_looked() -> anyhow::Result<()> {
    let emulator = Emulator::shared();
    let account = emulator.fresh_account();
    let aws = byoc_session(emulator, &account).await;
    let problem = read_trust_stack(&aws, "byoc-trust").await.unwrap_err();
    let TrustProblem::NoStack(message) = &problem else {
        panic!("expected NoStack, got {problem:?}");
    };
    for needle in [
        "byoc-trust",
        common::REGION,
        account.as_str(),
        "trust-template",
    ] {
        assert!(
            message.contains(needle),
            "{needle:?} missing from: {message}"
        );
    }
    assert_eq!(
        Verdict::of_problem(&problem).map(|v| v.status),
        Some(OnboardingStatus::TrustFailed)
    );
    Ok(())
}

#[tokio::test]
async fn verify_when_the_role_refuses_says_what_to_check() -> anyhow::Result<()> {
    let (emulator, account) = launched(None).await?;
    let role = format!("arn:aws:iam::{account}:role/byoc-deployer");
    emulator.configure(&format!(r#"{{"deny_assume_role": ["{role}"]}}"#))?;
    let read = read_trust_stack(&*byoc_session(emulator, &account).await, "byoc-trust").await;
    emulator.configure(r#"{"deny_assume_role": []}"#)?;
    let Err(TrustProblem::Denied(message)) = &read else {
        panic!("expected Denied, got {read:?}");
    };
    assert!(
        message.contains(&role) && message.contains("ExternalId"),
        "{message}"
    );
    Ok(())
}
