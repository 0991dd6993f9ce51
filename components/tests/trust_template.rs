//! The customer trust template (cfn-templates/customer-iam-role.yaml): cfn-lint (pinned)
//! passes, and launched the way the customer would (CreateStack in the tenant account) it
//! makes the role with exactly the intended trust policy and its two policies.

mod common;

use aws_sdk_cloudformation::types::{Capability, Parameter};
use byoc_testkit::{Emulator, workspace_root};
use serde_json::{Value, json};

const PLATFORM: &str = "123456789012";

#[test]
fn cfn_lint_passes() -> anyhow::Result<()> {
    let lint = workspace_root().join(".venv/bin/cfn-lint");
    anyhow::ensure!(
        lint.exists(),
        "{} is missing: run tools/setup.sh",
        lint.display()
    );
    let out = std::process::Command::new(lint)
        .arg(workspace_root().join("cfn-templates/customer-iam-role.yaml"))
        .output()?;
    assert!(
        out.status.success(),
        "cfn-lint: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[tokio::test]
async fn launched_template_grants_exactly_the_intended_trust() -> anyhow::Result<()> {
    let emulator = Emulator::shared();
    let account = emulator.fresh_account();
    // The customer's own admin session in their account.
    let customer = common::assumed_account(emulator.endpoint(), &account).await?;
    let cfn = aws_sdk_cloudformation::Client::new(&customer);
    let template =
        std::fs::read_to_string(workspace_root().join("cfn-templates/customer-iam-role.yaml"))?;
    let external_id = "e".repeat(64);
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
        .parameters(param("ExternalId", &external_id))
        .send()
        .await?;
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
    assert_eq!(output("TemplateVersion").as_deref(), Some("1.0.0"));

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
        ["byoc-deployer-deprovision", "byoc-deployer-provision"]
    );
    Ok(())
}
