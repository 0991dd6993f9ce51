//! The AWS blueprint: an environment config becomes the components' resource graph, with
//! providers acting in the tenant's account through its assumed role.

use byoc_components::blueprint::environment;
use byoc_components::resources::providers;
use byoc_components::{Platform, Target};
use byoc_engine::{Providers, Resource};
use byoc_stacks::EnvironmentConfig;
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

impl Blueprint for AwsBlueprint {
    fn build(
        &self,
        target: &RunTarget,
        config: &Value,
    ) -> Result<(Vec<Resource>, Providers), String> {
        let config = EnvironmentConfig::from_value(config).map_err(|e| e.to_string())?;
        let resources = environment(&target.stack, &config).map_err(|e| e.to_string())?;
        let aws = self.platform.session(Target {
            account_id: target.account_id.clone(),
            external_id: target.external_id.clone(),
            region: config.region.clone(),
            stack: target.stack.clone(),
            run_id: target.run_id.clone(),
        });
        Ok((resources, providers(&aws)))
    }
}
