//! SDK configs pointed at the test emulator.
#![allow(dead_code)] // each test binary uses part of this module

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::Credentials;
use aws_types::region::Region;

pub const REGION: &str = "us-east-1";

/// Credentials of moto's default account (123456789012).
pub async fn default_account(endpoint: &str, retry: RetryConfig) -> SdkConfig {
    with_credentials(
        endpoint,
        Credentials::new("AKIADEFAULTACCOUNT01", "secret", None, None, "test"),
        retry,
    )
    .await
}

/// Credentials from STS AssumeRole into `byoc-deployer` in `account`: moto then acts in that
/// account, the way byoc acts in a tenant's.
pub async fn assumed_account(endpoint: &str, account: &str) -> anyhow::Result<SdkConfig> {
    let platform = default_account(endpoint, RetryConfig::standard()).await;
    let out = aws_sdk_sts::Client::new(&platform)
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/byoc-deployer"))
        .role_session_name("byoc-test")
        .external_id("test-external-id")
        .send()
        .await?;
    let c = out.credentials().expect("AssumeRole returns credentials");
    let creds = Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_string()),
        None,
        "assumed",
    );
    Ok(with_credentials(endpoint, creds, RetryConfig::standard()).await)
}

async fn with_credentials(endpoint: &str, creds: Credentials, retry: RetryConfig) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(creds)
        .retry_config(retry)
        .load()
        .await
}
pub mod env;
