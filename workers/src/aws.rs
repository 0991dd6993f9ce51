//! The AWS blueprint: an environment config becomes the components' resource graph, with
//! providers acting in the tenant's account through its assumed role.

use byoc_components::blueprint::environment_for_role;
use byoc_components::resources::providers;
use byoc_components::trust::read_trust_stack;
use byoc_components::{Platform, Target};
use byoc_engine::{Providers, Resource};
use byoc_model::{EnvironmentConfig, TrustProblem, TrustStackReport};
use serde_json::Value;

use crate::run::{Blueprint, RunTarget};

pub struct AwsBlueprint {
    platform: Platform,
}

impl AwsBlueprint {
    pub fn new(platform: Platform) -> AwsBlueprint {
        AwsBlueprint { platform }
    }
}

#[async_trait::async_trait]
impl Blueprint for AwsBlueprint {
    fn build(
        &self,
        target: &RunTarget,
        config: &Value,
    ) -> Result<(Vec<Resource>, Providers), String> {
        let config = EnvironmentConfig::from_value(config).map_err(|e| e.to_string())?;
        // The API refuses to move a deployed environment; a config saved before it did, or
        // written around it, must not send calls about its resources to another region.
        if let Some(region) = &target.region
            && region.as_str() != config.region
        {
            return Err(format!(
                "the environment is deployed in {region} but its config says {}: destroy it before moving it, or create a new environment",
                config.region
            ));
        }
        let resources =
            environment_for_role(target.stack.as_str(), &config, &self.platform.role_name)
                .map_err(|e| e.to_string())?;
        let aws = self.platform.session(Target {
            account_id: target.account_id.to_string(),
            external_id: target.external_id.clone(),
            region: config.region.clone(),
            stack: target.stack.to_string(),
            run_id: target.run_id.clone(),
        });
        Ok((resources, providers(&aws)))
    }

    async fn read_trust_stack(
        &self,
        target: &RunTarget,
        region: Option<&str>,
        stack_name: &str,
    ) -> Result<TrustStackReport, TrustProblem> {
        let region = region.or(self.platform.region()).ok_or_else(|| {
            TrustProblem::Unreachable(
                "no region to look for the trust stack in: verify with the region the customer launched it in, or set AWS_REGION for the workers".into(),
            )
        })?;
        let aws = self.platform.session(Target {
            account_id: target.account_id.to_string(),
            external_id: target.external_id.clone(),
            region: region.to_string(),
            stack: target.stack.to_string(),
            run_id: target.run_id.clone(),
        });
        read_trust_stack(&aws, stack_name).await
    }
}
