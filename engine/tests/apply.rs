//! Planning and applying against the in-memory cloud: order, changes, failures, cancellation.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use byoc_engine::testing::Fault;
use byoc_engine::{
    Action, ErrorClass, Event, ExecOptions, Graph, Lifecycle, PlanError, Resource, RunStatus,
    StateStore, drift, plan, plan_destroy, refresh,
};
use common::{STACK, World, environment, fast_retry};
use serde_json::json;

/// When each resource's call of `op` finished and started, by resource.
fn call_times(
    world: &World,
    op: &str,
) -> BTreeMap<String, (std::time::Instant, std::time::Instant)> {
    world
        .cloud
        .calls()
        .into_iter()
        .filter(|c| c.op == op)
        .map(|c| (c.resource, (c.started, c.finished)))
        .collect()
}

fn with_input(
    mut resources: Vec<Resource>,
    name: &str,
    field: &str,
    value: serde_json::Value,
) -> Vec<Resource> {
    let r = resources.iter_mut().find(|r| r.name == name).unwrap();
    r.inputs[field] = value;
    resources
}

#[tokio::test]
async fn deploys_in_dependency_order_then_redeploys_as_a_no_op() {
    let world = World::new();
    let env = environment();
    let report = world.deploy(&env, "r1").await;
    assert_eq!(report.status, RunStatus::Succeeded);
    assert_eq!(world.cloud.objects().len(), env.len());
    world.assert_state_matches_cloud();

    let graph = Graph::new(env.clone()).unwrap();
    let created = call_times(&world, "create");
    for r in &env {
        for dep in graph.dependencies(&r.name) {
            assert!(
                created[dep].1 <= created[&r.name].0,
                "{} started before {dep} finished",
                r.name
            );
        }
    }
    // References resolved to the upstream's physical id.
    let state = world.store.snapshot();
    assert_eq!(
        state.resources["nat"].inputs["subnet"],
        json!(state.resources["public-a"].physical_id)
    );

    let calls = world.cloud.calls().len();
    let again = world.plan(&env, "r2").await;
    assert!(again.is_empty(), "{}", again.render());
    assert!(again.render().contains("No changes."));
    let report = world.deploy(&env, "r2").await;
    assert_eq!(report.status, RunStatus::Succeeded);
    assert_eq!(
        world.cloud.calls().len(),
        calls,
        "a no-op redeploy calls no provider"
    );
}

#[tokio::test]
async fn updates_in_place_and_replaces_with_dependents_following() {
    let world = World::new();
    world.deploy(&environment(), "r1").await;
    let old_subnet = world.store.snapshot().resources["private-a"]
        .physical_id
        .clone();

    let env = with_input(environment(), "system", "desired", json!(3));
    let p = world.plan(&env, "r2").await;
    let changed: Vec<_> = p
        .steps
        .iter()
        .filter(|s| s.action != Action::NoOp)
        .collect();
    assert_eq!(changed.len(), 1);
    assert_eq!(
        (changed[0].resource.as_str(), changed[0].action),
        ("system", Action::Update)
    );
    assert!(p.render().contains("~ desired = 2 -> 3"), "{}", p.render());
    world.deploy(&env, "r2").await;
    assert_eq!(
        world.store.snapshot().resources["system"].inputs["desired"],
        json!(3)
    );

    // A forcing field replaces the subnet, delete first; the cluster that references it
    // sees the new id.
    let env = with_input(env, "private-a", "force_cidr", json!("10.0.32.0/20"));
    let p = world.plan(&env, "r3").await;
    let text = p.render();
    assert!(
        text.contains("-/+ private-a (subnet): force_cidr forces replacement"),
        "{text}"
    );
    assert!(text.contains("# forces replacement"), "{text}");
    assert!(
        text.contains("(known after apply)"),
        "the cluster's subnet is unknown until applied:\n{text}"
    );
    let report = world.deploy(&env, "r3").await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    let state = world.store.snapshot();
    let new_subnet = &state.resources["private-a"].physical_id;
    assert_ne!(new_subnet, &old_subnet);
    assert_eq!(
        state.resources["cluster"].inputs["subnets"],
        json!([new_subnet])
    );
    world.assert_state_matches_cloud();
    let deleted = call_times(&world, "delete");
    let created = call_times(&world, "create");
    assert!(
        deleted["private-a"].1 <= created["private-a"].0,
        "delete-first replacement"
    );
}

#[tokio::test]
async fn create_before_destroy_creates_the_new_object_first() {
    let world = World::new();
    let cbd = Lifecycle {
        create_before_destroy: true,
        ..Lifecycle::default()
    };
    let env: Vec<Resource> = environment()
        .into_iter()
        .map(|r| {
            if r.name == "public-a" {
                r.lifecycle(cbd)
            } else {
                r
            }
        })
        .collect();
    world.deploy(&env, "r1").await;
    let env = with_input(env, "public-a", "force_cidr", json!("10.0.48.0/20"));
    let p = world.plan(&env, "r2").await;
    assert!(p.render().contains("+/- public-a"), "{}", p.render());
    let report = world.deploy(&env, "r2").await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    let created = call_times(&world, "create");
    let deleted = call_times(&world, "delete");
    assert!(
        created["public-a"].1 <= deleted["public-a"].0,
        "new object before the old one goes"
    );
    // The NAT moved to the new subnet before the old subnet was deleted.
    assert!(call_times(&world, "update")["nat"].1 <= deleted["public-a"].0);
    assert!(
        world
            .store
            .snapshot()
            .resources
            .keys()
            .all(|k| !k.contains('~'))
    );
    world.assert_state_matches_cloud();
}

#[tokio::test]
async fn removed_resources_are_deleted_dependents_first() {
    let world = World::new();
    world.deploy(&environment(), "r1").await;
    let env: Vec<Resource> = environment()
        .into_iter()
        .filter(|r| !["nat", "private-rt", "nat-eip", "system"].contains(&r.name.as_str()))
        .collect();
    let p = world.plan(&env, "r2").await;
    assert_eq!(p.summary().delete, 4, "{}", p.render());
    assert!(p.render().contains("- nat (nat): no longer in the config"));
    world.deploy(&env, "r2").await;
    let deleted = call_times(&world, "delete");
    assert!(deleted["private-rt"].1 <= deleted["nat"].0);
    assert!(deleted["nat"].1 <= deleted["nat-eip"].0);
    world.assert_state_matches_cloud();
}

#[tokio::test]
async fn destroy_deletes_in_reverse_order_and_respects_protect() {
    let world = World::new();
    let env = environment();
    world.deploy(&env, "r1").await;
    let report = world.destroy("r2").await;
    assert_eq!(report.status, RunStatus::Succeeded);
    assert!(world.cloud.objects().is_empty());
    assert!(world.store.snapshot().resources.is_empty());
    let graph = Graph::new(env.clone()).unwrap();
    let deleted = call_times(&world, "delete");
    for r in &env {
        for dep in graph.dependencies(&r.name) {
            assert!(
                deleted[&r.name].1 <= deleted[dep].0,
                "{dep} deleted before its dependent {}",
                r.name
            );
        }
    }

    let protect = Lifecycle {
        protect: true,
        ..Lifecycle::default()
    };
    let env: Vec<Resource> = environment()
        .into_iter()
        .map(|r| {
            if r.name == "vpc" || r.name == "cluster" {
                r.lifecycle(protect)
            } else {
                r
            }
        })
        .collect();
    world.deploy(&env, "r3").await;
    let snapshot = world.store.load().await.unwrap();
    let err = plan_destroy(STACK, "r4", &snapshot).unwrap_err();
    assert_eq!(
        err,
        PlanError::Protected(vec!["cluster".into(), "vpc".into()])
    );
    assert!(
        err.to_string()
            .contains("protected resource(s) cluster, vpc"),
        "{err}"
    );
    // Replacing a protected resource is a delete too.
    let replaced = with_input(env, "vpc", "force_x", json!(1));
    let err = plan(
        STACK,
        "r5",
        &Graph::new(replaced).unwrap(),
        &snapshot,
        &world.providers,
        None,
    )
    .unwrap_err();
    assert_eq!(err, PlanError::Protected(vec!["vpc".into()]));
}

/// A deploy that would replace or delete a guarded resource needs an approved plan; the
/// plan names them. A destroy needs none.
#[tokio::test]
async fn guarded_replacements_and_deletions_need_approval() {
    let world = World::new();
    let guard = Lifecycle {
        guard: true,
        ..Lifecycle::default()
    };
    let env: Vec<Resource> = environment()
        .into_iter()
        .map(|r| match r.name.as_str() {
            "vpc" | "cluster" | "nat" => r.lifecycle(guard),
            _ => r,
        })
        .collect();
    world.deploy(&env, "r1").await;
    assert!(world.plan(&env, "r2").await.needs_approval.is_empty());
    // An update in place needs none.
    let updated = with_input(env.clone(), "nat", "size", json!(2));
    assert!(world.plan(&updated, "r2").await.needs_approval.is_empty());
    // A replacement of the VPC (its dependents follow) and the NAT's removal do.
    let replaced: Vec<Resource> = with_input(env.clone(), "vpc", "force_x", json!(1))
        .into_iter()
        .filter(|r| !["nat", "private-rt", "system"].contains(&r.name.as_str()))
        .collect();
    let p = world.plan(&replaced, "r3").await;
    assert_eq!(p.needs_approval, ["nat", "vpc"]);
    // Replaced new-first, a guarded resource keeps serving: no approval.
    let new_first: Vec<Resource> = with_input(env.clone(), "nat", "force_x", json!(1))
        .into_iter()
        .map(|r| match r.name.as_str() {
            "nat" => r.lifecycle(Lifecycle {
                create_before_destroy: true,
                ..guard
            }),
            _ => r,
        })
        .collect();
    let p = world.plan(&new_first, "r3").await;
    assert_eq!(p.summary().replace, 1, "{}", p.render());
    assert!(p.needs_approval.is_empty(), "{:?}", p.needs_approval);
    // New-first only because a dependent is: the guarded VPC still needs approval.
    let inherited: Vec<Resource> = with_input(env.clone(), "vpc", "force_x", json!(1))
        .into_iter()
        .map(|r| match r.name.as_str() {
            "public-a" => r.lifecycle(Lifecycle {
                create_before_destroy: true,
                ..Lifecycle::default()
            }),
            _ => r,
        })
        .collect();
    let p = world.plan(&inherited, "r3").await;
    assert!(
        p.needs_approval.contains(&"vpc".to_string()),
        "{}",
        p.render()
    );
    let snapshot = world.store.load().await.unwrap();
    assert!(
        plan_destroy(STACK, "r4", &snapshot)
            .unwrap()
            .needs_approval
            .is_empty()
    );
}

#[tokio::test]
async fn a_replacement_that_cannot_stand_beside_its_old_object_deletes_that_first() {
    let world = World::new();
    let new_first = Lifecycle {
        create_before_destroy: true,
        guard: true,
        ..Lifecycle::default()
    };
    // The cluster has a unique name and is replaced when its subnets change; its node group,
    // replaced with it, is otherwise made anew before the old one goes.
    let env: Vec<Resource> = with_input(environment(), "cluster", "name", json!("acme-dev"))
        .into_iter()
        .map(|mut r| match r.name.as_str() {
            "cluster" => {
                let subnets = r.inputs.as_object_mut().unwrap().remove("subnets").unwrap();
                r.inputs["force_subnets"] = subnets;
                r
            }
            "system" => {
                let cluster = r.inputs.as_object_mut().unwrap().remove("cluster").unwrap();
                r.inputs["force_cluster"] = cluster;
                r.lifecycle(new_first)
            }
            _ => r,
        })
        .collect();
    world.deploy(&env, "r1").await;
    let p = world
        .plan(
            &with_input(env.clone(), "system", "force_type", json!("m7i")),
            "r2",
        )
        .await;
    assert!(p.render().contains("+/- system"), "{}", p.render());
    assert!(p.needs_approval.is_empty());

    // A new subnet replaces the cluster. A second cluster of the same name cannot exist, so
    // the old one goes first, and the node group's old object (in the old cluster) before it:
    // that loses the node group, so it needs approval. The subnet can still be new-first.
    let moved = with_input(
        env.clone(),
        "private-a",
        "force_cidr",
        json!("10.0.64.0/20"),
    );
    let p = world.plan(&moved, "r2").await;
    let text = p.render();
    for line in [
        "+/- private-a",
        "-/+ cluster",
        "-/+ system",
        "the old object goes first",
    ] {
        assert!(text.contains(line), "{line}:\n{text}");
    }
    assert_eq!(p.needs_approval, ["system"]);
    let report = world.deploy(&moved, "r2").await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    let (created, deleted) = (call_times(&world, "create"), call_times(&world, "delete"));
    assert!(deleted["system"].1 <= deleted["cluster"].0);
    assert!(deleted["cluster"].1 <= created["cluster"].0);
    assert!(created["private-a"].1 <= deleted["private-a"].0);
    world.assert_state_matches_cloud();

    // Under a new name it can stand beside the old one: new-first again.
    let renamed = with_input(moved, "cluster", "force_mode", json!("auto"));
    let renamed = with_input(renamed, "cluster", "name", json!("acme-dev-2"));
    let p = world.plan(&renamed, "r3").await;
    assert!(p.render().contains("+/- cluster"), "{}", p.render());
    assert!(p.needs_approval.is_empty(), "{:?}", p.needs_approval);
}

#[tokio::test]
async fn a_change_the_type_cannot_make_is_refused_at_plan_time() {
    let world = World::new();
    let env = with_input(environment(), "system", "version", json!(3));
    world.deploy(&env, "r1").await;
    let snapshot = world.store.load().await.unwrap();
    let down = Graph::new(with_input(env, "system", "version", json!(2))).unwrap();
    let err = plan(STACK, "r2", &down, &snapshot, &world.providers, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "resource system (nodegroup): version 3 cannot go down to 2"
    );
}

#[tokio::test]
async fn plans_are_deterministic_and_render_as_text_and_json() {
    let world = World::new();
    world.deploy(&environment(), "r1").await;
    let mut env = with_input(environment(), "system", "desired", json!(5));
    env = with_input(env, "private-a", "force_cidr", json!("10.9.0.0/20"));
    env.retain(|r| r.name != "nat-eip" && r.name != "nat" && r.name != "private-rt");
    env.iter_mut()
        .find(|r| r.name == "system")
        .unwrap()
        .depends_on
        .clear();
    env.push(Resource::new(
        "role",
        "node-role",
        json!({"name": "acme-dev-node"}),
    ));
    let a = world.plan(&env, "r2").await;
    env.reverse();
    let b = world.plan(&env, "r2").await;
    assert_eq!(a.to_json(), b.to_json(), "same inputs, same plan");
    assert_eq!(a.render(), b.render());
    let text = a.render();
    for line in [
        "  + node-role (role): not yet created",
        "  ~ system (nodegroup)",
        "  -/+ private-a (subnet)",
        "  - nat (nat)",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert!(
        text.ends_with("Plan: 1 to add, 2 to change, 1 to replace, 3 to destroy, 4 unchanged.\n"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&a.to_json()).unwrap();
    assert_eq!(json["steps"][0]["token"].as_str().unwrap().len(), 16);
}

#[tokio::test]
async fn transient_errors_are_retried() {
    let world = World::new();
    world.cloud.inject(Fault::Fail {
        op: "create",
        resource: "vpc".into(),
        class: ErrorClass::Transient,
        times: 2,
    });
    let report = world.deploy(&environment(), "r1").await;
    assert_eq!(report.status, RunStatus::Succeeded);
    let retries = world
        .events
        .events()
        .into_iter()
        .filter(|e| matches!(e, Event::StepRetrying { resource, .. } if resource == "vpc"))
        .count();
    assert_eq!(retries, 2);
    world.assert_state_matches_cloud();

    // Retries are bounded: a resource that keeps failing fails the run.
    let world = World::new();
    world.cloud.inject(Fault::Fail {
        op: "create",
        resource: "vpc".into(),
        class: ErrorClass::Transient,
        times: 100,
    });
    let report = world.deploy(&environment(), "r1").await;
    assert_eq!(report.status, RunStatus::Failed);
    assert!(
        report.failed[0].1.contains("gave up after 4 attempts"),
        "{:?}",
        report.failed
    );
}

#[tokio::test]
async fn a_create_that_times_out_after_landing_is_adopted_not_duplicated() {
    let world = World::new();
    world.cloud.inject(Fault::FailAfter {
        op: "create",
        resource: "cluster".into(),
        class: ErrorClass::Transient,
    });
    let report = world.deploy(&environment(), "r1").await;
    assert_eq!(report.status, RunStatus::Succeeded);
    assert_eq!(
        world
            .cloud
            .objects()
            .values()
            .filter(|o| o.resource == "cluster")
            .count(),
        1
    );
    assert!(
        world
            .events
            .events()
            .iter()
            .any(|e| matches!(e, Event::StepAdopted { resource, .. } if resource == "cluster"))
    );
    world.assert_state_matches_cloud();
}

/// A create whose object was made but which then failed for good (a later call of it was
/// refused, its wait was cancelled): the next run adopts the object, never makes a twin; and
/// a plan that no longer wants it deletes it.
#[tokio::test]
async fn a_create_that_fails_for_good_after_landing_is_adopted_or_cleaned_up() {
    for keep in [true, false] {
        let world = World::new();
        world.cloud.inject(Fault::FailAfter {
            op: "create",
            resource: "cluster".into(),
            class: ErrorClass::Permanent,
        });
        let report = world.deploy(&environment(), "r1").await;
        assert_eq!(report.status, RunStatus::Failed);
        assert!(
            world
                .cloud
                .objects()
                .values()
                .any(|o| o.resource == "cluster")
        );
        assert!(!world.store.snapshot().resources.contains_key("cluster"));
        let desired: Vec<_> = environment()
            .into_iter()
            .filter(|r| keep || (r.name != "cluster" && r.name != "system"))
            .collect();
        let report = world.deploy(&desired, "r2").await;
        assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
        assert_eq!(world.cloud.objects().len(), desired.len());
        world.assert_state_matches_cloud();
    }
}

#[tokio::test]
async fn a_permanent_failure_at_each_step_leaves_exact_state() {
    for target in environment() {
        let world = World::new();
        world.cloud.inject(Fault::Fail {
            op: "create",
            resource: target.name.clone(),
            class: ErrorClass::Permanent,
            times: 1,
        });
        let report = world.deploy(&environment(), "r1").await;
        assert_eq!(report.status, RunStatus::Failed, "failing {}", target.name);
        assert_eq!(report.failed.len(), 1);
        assert!(
            report.failed[0].1.contains("AccessDenied"),
            "{:?}",
            report.failed
        );
        // Nothing that depends on the failed resource was attempted.
        let graph = Graph::new(environment()).unwrap();
        let created = call_times(&world, "create");
        for dependent in graph.dependents(&target.name) {
            assert!(
                !created.contains_key(dependent),
                "{dependent} created after {} failed",
                target.name
            );
        }
        world.assert_state_matches_cloud();
        // The next run finishes the job.
        let report = world.deploy(&environment(), "r2").await;
        assert_eq!(report.status, RunStatus::Succeeded);
        assert_eq!(world.cloud.objects().len(), environment().len());
        world.assert_state_matches_cloud();
    }
}

#[tokio::test]
async fn cancellation_finishes_in_flight_steps_and_schedules_nothing_more() {
    let world = World::new();
    for kind in common::KINDS {
        world.cloud.set_latency(kind, Duration::from_millis(30));
    }
    let options = ExecOptions {
        retry: fast_retry(),
        ..Default::default()
    };
    let cancel = options.cancel.clone();
    let executor = world.executor(options);
    let snapshot = world.store.load().await.unwrap();
    let p = world.plan(&environment(), "r1").await;
    let run = executor.apply(&p, &snapshot);
    let canceller = async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        cancel.cancel();
    };
    let (report, ()) = tokio::join!(run, canceller);
    let report = report.unwrap();
    assert_eq!(report.status, RunStatus::Cancelled);
    assert!(!report.succeeded.is_empty(), "in-flight steps finished");
    assert!(!report.skipped.is_empty());
    world.assert_state_matches_cloud();
}

#[tokio::test]
async fn parallelism_limit_is_respected() {
    let world = World::new();
    let many: Vec<Resource> = (0..12)
        .map(|i| Resource::new("role", format!("r{i}"), json!({})))
        .collect();
    world.cloud.set_latency("role", Duration::from_millis(20));
    let options = ExecOptions {
        parallelism: Some(3),
        ..Default::default()
    };
    let p = world.plan(&many, "r1").await;
    world
        .executor(options)
        .apply(&p, &Default::default())
        .await
        .unwrap();
    let calls = world.cloud.calls();
    let max_overlap = calls
        .iter()
        .map(|c| {
            calls
                .iter()
                .filter(|o| o.started <= c.started && c.started < o.finished)
                .count()
        })
        .max()
        .unwrap();
    assert!(max_overlap <= 3, "{max_overlap} calls overlapped");
    assert!(max_overlap >= 2, "independent steps ran in parallel");
}

#[tokio::test]
async fn refresh_reports_drift_and_the_next_plan_repairs_it() {
    let world = World::new();
    let env = environment();
    world.deploy(&env, "r1").await;
    let state = world.store.snapshot();
    world.cloud.tamper(
        &state.resources["vpc"].physical_id,
        "tags",
        json!({"env": "hacked"}),
    );
    world.cloud.remove(&state.resources["nat-eip"].physical_id);

    let observed = refresh(
        STACK,
        &state,
        &world.providers,
        None,
        &fast_retry(),
        &Default::default(),
    )
    .await
    .unwrap();
    let drifts = drift(&state, &observed, &world.providers);
    let summary: Vec<String> = drifts
        .iter()
        .map(|d| format!("{}: {:?}", d.resource, d.drift))
        .collect();
    assert_eq!(drifts.len(), 2, "{summary:?}");
    assert!(summary[0].starts_with("nat-eip: Deleted"), "{summary:?}");
    assert!(summary[1].starts_with("vpc: Changed"), "{summary:?}");

    let p = plan(
        STACK,
        "r2",
        &Graph::new(env.clone()).unwrap(),
        &state,
        &world.providers,
        Some(&observed),
    )
    .unwrap();
    let text = p.render();
    assert!(
        text.contains("~ vpc (vpc): changed outside byoc: tags"),
        "{text}"
    );
    assert!(
        text.contains("+ nat-eip (eip): deleted outside byoc"),
        "{text}"
    );
    let vpc = p.steps.iter().find(|s| s.resource == "vpc").unwrap();
    assert_eq!(
        vpc.old_inputs.as_ref().unwrap()["tags"],
        json!({"env": "hacked"}),
        "the update starts from what is there, not from what was recorded"
    );
    let report = world
        .executor(ExecOptions::default())
        .apply(&p, &state)
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Succeeded);
    world.assert_state_matches_cloud();
}

/// A provider that refuses inputs without a `size` at plan time; planning never calls more.
struct Checked;

#[async_trait::async_trait]
impl byoc_engine::Provider for Checked {
    fn check(&self, inputs: &serde_json::Value) -> Result<(), String> {
        match inputs.get("size") {
            None => Err("missing field `size`".into()),
            Some(v) if v.get(byoc_engine::UNKNOWN).is_some() || v.is_u64() => Ok(()),
            Some(v) => Err(format!("size {v} is not a number")),
        }
    }

    async fn create(
        &self,
        _: &byoc_engine::Ctx,
        _: &serde_json::Value,
    ) -> Result<byoc_engine::Created, byoc_engine::ProviderError> {
        unreachable!("planning only")
    }

    async fn read(
        &self,
        _: &byoc_engine::Ctx,
        _: &str,
        _: &serde_json::Value,
    ) -> Result<byoc_engine::Observed, byoc_engine::ProviderError> {
        unreachable!("planning only")
    }

    async fn update(
        &self,
        _: &byoc_engine::Ctx,
        _: &str,
        _: &serde_json::Value,
        _: &serde_json::Value,
    ) -> Result<serde_json::Value, byoc_engine::ProviderError> {
        unreachable!("planning only")
    }

    async fn delete(
        &self,
        _: &byoc_engine::Ctx,
        _: &str,
        _: &serde_json::Value,
    ) -> Result<(), byoc_engine::ProviderError> {
        unreachable!("planning only")
    }

    async fn find_existing(
        &self,
        _: &byoc_engine::Ctx,
        _: &serde_json::Value,
    ) -> Result<Option<byoc_engine::Created>, byoc_engine::ProviderError> {
        unreachable!("planning only")
    }

    fn classify(&self, _: &byoc_engine::ProviderError) -> ErrorClass {
        ErrorClass::Permanent
    }
}

#[test]
fn providers_check_inputs_at_plan_time_with_unknown_outputs_marked() {
    let providers = byoc_engine::Providers::new().with("disk", std::sync::Arc::new(Checked));
    let graph = |inputs: Vec<serde_json::Value>| {
        let mut resources = vec![Resource::new("disk", "a", json!({"size": 1}))];
        for (i, inputs) in inputs.into_iter().enumerate() {
            resources.push(Resource::new("disk", format!("b{i}"), inputs));
        }
        Graph::new(resources).unwrap()
    };
    let empty = byoc_engine::Snapshot::default();
    // A reference to an output of something still to be created is a marker.
    let ok = graph(vec![json!({"size": byoc_engine::reference("a", "size")})]);
    plan(STACK, "r1", &ok, &empty, &providers, None).expect("references pass");
    let bad = graph(vec![json!({"size": 2}), json!({"sise": 2})]);
    let err = plan(STACK, "r1", &bad, &empty, &providers, None).unwrap_err();
    assert_eq!(
        err,
        PlanError::InvalidInputs {
            resource: "b1".into(),
            kind: "disk".into(),
            message: "missing field `size`".into(),
        }
    );
    assert_eq!(err.to_string(), "resource b1 (disk): missing field `size`");
}
