//! Crashes at every provider call of a deploy, an update and a destroy, then resume: no
//! duplicate, no orphan, state equal to the cloud.

mod common;

use byoc_engine::testing::Fault;
use byoc_engine::{
    ExecOptions, Graph, Operation, Outcome, Resource, RunStatus, Snapshot, StateStore, plan,
    plan_destroy,
};
use common::{STACK, World, environment, fast_retry};
use serde_json::json;

/// Runs `plan` with `fault` injected until the fault fires, then drops the run as a killed
/// process would (its in-flight steps are aborted wherever they are).
async fn run_until_crash(world: &World, p: &byoc_engine::Plan, snapshot: &Snapshot, fault: Fault) {
    world.cloud.inject(fault.clone());
    let options = ExecOptions {
        retry: fast_retry(),
        ..Default::default()
    };
    let executor = world.executor(options);
    tokio::select! {
        report = executor.apply(p, snapshot) => panic!("{fault:?} never fired: {report:?}"),
        () = world.cloud.crashed.notified() => {}
    }
    world.cloud.clear_faults();
}

fn crash_points(op: &'static str, resource: &str) -> [Fault; 2] {
    [
        Fault::CrashBefore {
            op,
            resource: resource.to_string(),
        },
        Fault::Crash {
            op,
            resource: resource.to_string(),
        },
    ]
}

fn assert_one_object_each(world: &World, env: &[Resource]) {
    let objects = world.cloud.objects();
    for r in env {
        let n = objects.values().filter(|o| o.resource == r.name).count();
        assert_eq!(n, 1, "{} has {n} objects", r.name);
    }
    assert_eq!(objects.len(), env.len());
}

#[tokio::test]
async fn crash_at_every_create_then_resume() {
    let env = environment();
    let mut tried = 0;
    for target in &env {
        for fault in crash_points("create", &target.name) {
            // The same run resumed by the next worker, or a new run after it: both finish.
            for resume_run in ["r1", "r2"] {
                let world = World::new();
                let snapshot = world.store.load().await.unwrap();
                let p = world.plan(&env, "r1").await;
                run_until_crash(&world, &p, &snapshot, fault.clone()).await;
                let report = world.deploy(&env, resume_run).await;
                assert_eq!(report.status, RunStatus::Succeeded, "{fault:?}: {report:?}");
                assert_one_object_each(&world, &env);
                world.assert_state_matches_cloud();
                assert!(
                    world.store.snapshot().pending.is_empty(),
                    "{fault:?} left pending intents"
                );
                tried += 1;
            }
        }
    }
    assert_eq!(tried, env.len() * 4);
}

#[tokio::test]
async fn crash_during_update_and_replace_then_resume() {
    for (name, field, value) in [
        ("system", "desired", json!(4)),
        ("private-a", "force_cidr", json!("10.0.64.0/20")),
    ] {
        for op in ["update", "create", "delete"] {
            if (name == "system") != (op == "update") {
                continue;
            }
            for fault in crash_points(op, name) {
                let world = World::new();
                world.deploy(&environment(), "r1").await;
                let mut env = environment();
                env.iter_mut().find(|r| r.name == name).unwrap().inputs[field] = value.clone();
                let snapshot = world.store.load().await.unwrap();
                let p = world.plan(&env, "r2").await;
                run_until_crash(&world, &p, &snapshot, fault.clone()).await;
                let report = world.deploy(&env, "r2").await;
                assert_eq!(report.status, RunStatus::Succeeded, "{fault:?}: {report:?}");
                assert_one_object_each(&world, &env);
                world.assert_state_matches_cloud();
                assert_eq!(world.store.snapshot().resources[name].inputs[field], value);
                assert!(
                    world.store.snapshot().pending.is_empty(),
                    "{fault:?} left pending intents"
                );
            }
        }
    }
}

#[tokio::test]
async fn an_update_cut_off_after_it_landed_is_settled_from_what_a_refresh_sees() {
    let world = World::new();
    world.deploy(&environment(), "r1").await;
    let mut env = environment();
    env.iter_mut().find(|r| r.name == "system").unwrap().inputs["desired"] = json!(4);
    let snapshot = world.store.load().await.unwrap();
    let p = world.plan(&env, "r2").await;
    let fault = Fault::Crash {
        op: "update",
        resource: "system".into(),
    };
    run_until_crash(&world, &p, &snapshot, fault).await;
    assert_eq!(
        world.store.snapshot().resources["system"].inputs["desired"],
        2
    );

    // The object already has what the config says: no second update, the state catches up
    // and the interrupted intent is closed.
    let (p, snapshot) = world.refreshed_plan(&env, "r3").await;
    let step = p.steps.iter().find(|s| s.resource == "system").unwrap();
    assert_eq!(step.action, byoc_engine::Action::NoOp, "{}", p.render());
    assert!(step.settle.is_some());
    let updates = |w: &World| w.cloud.calls().iter().filter(|c| c.op == "update").count();
    let before = updates(&world);
    let report = world.apply(&p, &snapshot).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    assert_eq!(updates(&world), before, "no provider call");
    assert_eq!(
        world.store.snapshot().resources["system"].inputs["desired"],
        4
    );
    assert!(world.store.snapshot().pending.is_empty());
    world.assert_state_matches_cloud();
    let (p, _) = world.refreshed_plan(&env, "r4").await;
    assert!(
        p.steps
            .iter()
            .all(|s| s.settle.is_none() && s.action == byoc_engine::Action::NoOp)
    );
}

#[tokio::test]
async fn crash_at_every_delete_of_a_destroy_then_resume() {
    for target in environment() {
        for fault in crash_points("delete", &target.name) {
            let world = World::new();
            world.deploy(&environment(), "r1").await;
            let snapshot = world.store.load().await.unwrap();
            let p = plan_destroy(STACK, "r2", &snapshot).unwrap();
            run_until_crash(&world, &p, &snapshot, fault.clone()).await;
            let report = world.destroy("r2").await;
            assert_eq!(report.status, RunStatus::Succeeded, "{fault:?}: {report:?}");
            world.assert_empty();
        }
    }
}

/// A world whose first deploy of `env` crashed just after creating the node group.
async fn crashed_creating_system(env: &[Resource]) -> World {
    let world = World::new();
    let p = world.plan(env, "r1").await;
    let crash = crash_points("create", "system")[1].clone();
    run_until_crash(&world, &p, &Snapshot::default(), crash).await;
    world
}

#[tokio::test]
async fn objects_of_interrupted_creates_are_cleaned_up_when_no_longer_wanted() {
    // Crash while creating the node group, then destroy instead of resuming the deploy.
    let env = environment();
    let world = crashed_creating_system(&env).await;
    assert!(
        world
            .cloud
            .objects()
            .values()
            .any(|o| o.resource == "system")
    );
    let snapshot = world.store.load().await.unwrap();
    let destroy = plan_destroy(STACK, "r2", &snapshot).unwrap();
    assert!(
        destroy
            .render()
            .contains("- system~orphan (nodegroup): a create interrupted in run r1"),
        "{}",
        destroy.render()
    );
    let report = world.destroy("r2").await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    world.assert_empty();
    assert!(world.store.snapshot().pending.is_empty());

    // Or the config drops the resource before the next deploy.
    let world = crashed_creating_system(&env).await;
    let without: Vec<Resource> = env.iter().filter(|r| r.name != "system").cloned().collect();
    let report = world.deploy(&without, "r2").await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    assert_one_object_each(&world, &without);
    world.assert_state_matches_cloud();
}

#[tokio::test]
async fn every_step_run_twice_is_harmless() {
    // Apply a plan, then apply it again from the same starting point as if every outcome had
    // been lost (all creates pending): nothing is created twice, nothing changes.
    let world = World::new();
    world.deploy(&environment(), "r1").await;
    let mut env = environment();
    env.iter_mut().find(|r| r.name == "system").unwrap().inputs["desired"] = json!(6);
    env.iter_mut()
        .find(|r| r.name == "public-a")
        .unwrap()
        .inputs["force_cidr"] = json!("10.0.80.0/20");
    env.retain(|r| r.name != "private-rt");
    env.iter_mut()
        .find(|r| r.name == "system")
        .unwrap()
        .depends_on
        .clear();
    env.push(Resource::new("role", "extra", json!({"name": "x"})));

    let before = world.store.load().await.unwrap();
    let p = plan(
        STACK,
        "r2",
        &Graph::new(env.clone()).unwrap(),
        &before,
        &world.providers,
        None,
    )
    .unwrap();
    let executor = world.executor(ExecOptions::default());
    assert_eq!(
        executor.apply(&p, &before).await.unwrap().status,
        RunStatus::Succeeded
    );
    let objects = world.cloud.objects();
    let state = world.store.snapshot();

    let mut replay = before.clone();
    replay.pending = world
        .store
        .journal()
        .into_iter()
        .filter(|(i, o)| {
            i.run_id == "r2"
                && i.operation == Operation::Create
                && matches!(o, Some(Outcome::Created { .. }))
        })
        .map(|(i, _)| i)
        .collect();
    assert_eq!(replay.pending.len(), 2, "public-a and extra were created");
    for intent in &replay.pending {
        world.store.record_intent(intent).await.unwrap();
    }
    // The journal now says those creates never finished; the state keeps what they did.
    let report = executor.apply(&p, &replay).await.unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    assert_eq!(
        world.cloud.objects(),
        objects,
        "the replay changed the cloud"
    );
    assert_eq!(world.store.snapshot().resources, state.resources);
    world.assert_state_matches_cloud();
}
