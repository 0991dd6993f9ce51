//! Reading a tenant's trust stack: assume the tenant's role with its external id, then
//! DescribeStacks the stack the customer launched from the trust template. What the
//! reading means for onboarding is decided in byoc-stacks (`Verdict`).

use byoc_engine::{CancellationToken, ErrorClass};
use byoc_model::{TrustProblem, TrustStackReport};

use crate::aws::{ASSUME_ROLE_DENIED, Aws, classify};
use crate::limiter::Service;

/// Reads `stack_name` in the session's account and region through the tenant's role.
pub async fn read_trust_stack(
    aws: &Aws,
    stack_name: &str,
) -> Result<TrustStackReport, TrustProblem> {
    let cancel = CancellationToken::new();
    let where_ = format!("region {} of account {}", aws.region, aws.account_id);
    let out = aws
        .call(Service::Cloudformation, "DescribeStacks", &cancel, || {
            aws.cloudformation
                .describe_stacks()
                .stack_name(stack_name)
                .send()
        })
        .await
        .map_err(|e| {
            let code = e.code.as_deref().unwrap_or_default();
            if code == ASSUME_ROLE_DENIED {
                TrustProblem::Denied(e.message)
            } else if code == "ValidationError" && e.message.contains("does not exist") {
                TrustProblem::NoStack(format!(
                    "there is no trust stack {stack_name} in {where_}: the customer launches the trust template there (`byoc tenant trust-template SLUG`); if they launched it elsewhere or under another name, verify with that region and stack name"
                ))
            } else if classify(&e) == ErrorClass::Transient {
                TrustProblem::Unreachable(format!(
                    "could not read the trust stack {stack_name} in {where_}: {}",
                    e.message
                ))
            } else {
                // E.g. AccessDenied: the role may read only the stack that created it.
                TrustProblem::Denied(format!(
                    "the role {} cannot read the trust stack {stack_name} in {where_} ({}): is it the stack that created the role?",
                    aws.role_arn(),
                    e.message
                ))
            }
        })?;
    let stack = out.stacks().first().ok_or_else(|| {
        TrustProblem::NoStack(format!(
            "DescribeStacks returned no stack {stack_name} in {where_}"
        ))
    })?;
    let output = |key: &str| {
        stack
            .outputs()
            .iter()
            .find(|o| o.output_key() == Some(key))
            .and_then(|o| o.output_value())
            .map(str::to_string)
    };
    Ok(TrustStackReport {
        region: aws.region.clone(),
        stack_name: stack_name.to_string(),
        assumed_role_arn: aws.role_arn().to_string(),
        status: stack
            .stack_status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        role_arn: output("RoleArn"),
        template_version: output("TemplateVersion"),
    })
}
