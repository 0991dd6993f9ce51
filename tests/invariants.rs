//! The crate invariants of ARCHITECTURE.md, held against `cargo metadata`: the table under
//! "Invariants" there is what this test reads, so the document and the check cannot part.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::process::Command;

use anyhow::{Context, bail};
use serde_json::Value;

/// crate -> the package name prefixes it must never depend on, from ARCHITECTURE.md.
fn invariants() -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/ARCHITECTURE.md"))?;
    let section = doc
        .split("\n### Invariants")
        .nth(1)
        .context("ARCHITECTURE.md has no '### Invariants' section")?;
    let mut out = BTreeMap::new();
    for line in section.lines().skip_while(|l| !l.starts_with('|')) {
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let [krate, forbidden] = cells[..] else {
            bail!("an invariant row has two cells: {line}");
        };
        if krate == "crate" || krate.starts_with('-') {
            continue;
        }
        let names: Vec<String> = forbidden
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect();
        out.insert(krate.trim_matches('`').to_string(), names);
    }
    if out.len() < 6 {
        bail!("ARCHITECTURE.md's invariant table lists only {out:?}");
    }
    Ok(out)
}

/// package name -> the names of its normal (not dev, not build) dependencies, resolved.
fn graph(metadata: &Value) -> anyhow::Result<BTreeMap<String, BTreeSet<String>>> {
    let names: BTreeMap<&str, &str> = metadata["packages"]
        .as_array()
        .context("packages")?
        .iter()
        .filter_map(|p| Some((p["id"].as_str()?, p["name"].as_str()?)))
        .collect();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for node in metadata["resolve"]["nodes"].as_array().context("resolve")? {
        let from = names[node["id"].as_str().context("id")?].to_string();
        let deps = out.entry(from).or_default();
        for dep in node["deps"].as_array().into_iter().flatten() {
            let normal = dep["dep_kinds"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|k| k["kind"].is_null());
            if normal {
                deps.insert(names[dep["pkg"].as_str().context("pkg")?].to_string());
            }
        }
    }
    Ok(out)
}

/// Every broken invariant: `crate -> ... -> forbidden`, through normal dependencies.
fn violations(
    graph: &BTreeMap<String, BTreeSet<String>>,
    rules: &BTreeMap<String, Vec<String>>,
) -> Vec<String> {
    let mut found = Vec::new();
    for (krate, forbidden) in rules {
        // Breadth first, remembering how each crate was reached, for a readable path.
        let mut via: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = VecDeque::from([krate.as_str()]);
        while let Some(at) = queue.pop_front() {
            for dep in graph.get(at).into_iter().flatten() {
                if dep == krate || via.contains_key(dep.as_str()) {
                    continue;
                }
                via.insert(dep, at);
                if forbidden.iter().any(|f| dep.starts_with(f.as_str())) {
                    let mut path = vec![dep.as_str()];
                    while let Some(prev) = via.get(path.last().unwrap()) {
                        path.push(prev);
                        if *prev == krate {
                            break;
                        }
                    }
                    path.reverse();
                    found.push(path.join(" -> "));
                } else {
                    queue.push_back(dep);
                }
            }
        }
    }
    found
}

/// The resolved dependencies on this host (other platforms' crates need not be downloaded).
fn metadata() -> anyhow::Result<Value> {
    let rustc = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("-vV")
        .output()?;
    let host = String::from_utf8(rustc.stdout)?
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .context("rustc -vV names no host")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline"])
        .args(["--filter-platform", &host, "--manifest-path"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .output()?;
    if !out.status.success() {
        bail!("cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

#[test]
fn crate_dependencies_keep_the_architectures_invariants() -> anyhow::Result<()> {
    let rules = invariants()?;
    let graph = graph(&metadata()?)?;
    for krate in rules.keys() {
        assert!(
            graph.contains_key(krate),
            "no crate {krate} in the workspace"
        );
    }
    let broken = violations(&graph, &rules);
    assert!(
        broken.is_empty(),
        "crate invariants broken:\n{}",
        broken.join("\n")
    );
    Ok(())
}

/// The check can fail: sqlx in byoc-model, or byoc-components (and through it the AWS SDK)
/// in byoc-api, are each reported with the path that brings them in.
#[test]
fn a_forbidden_dependency_is_reported() -> anyhow::Result<()> {
    let rules = invariants()?;
    let clean = graph(&metadata()?)?;
    let mut broken = clean.clone();
    broken.get_mut("byoc-model").unwrap().insert("sqlx".into());
    broken
        .get_mut("byoc-api")
        .unwrap()
        .insert("byoc-components".into());
    let found = violations(&broken, &rules);
    assert!(
        found.contains(&"byoc-model -> sqlx".to_string()),
        "{found:?}"
    );
    assert!(
        found.contains(&"byoc-api -> byoc-components".to_string()),
        "{found:?}"
    );
    // Through another crate too: the model reaching the store reaches sqlx.
    let mut indirect = clean;
    indirect
        .get_mut("byoc-model")
        .unwrap()
        .insert("byoc-stacks".into());
    let found = violations(&indirect, &rules);
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("byoc-model -> byoc-stacks")),
        "{found:?}"
    );
    Ok(())
}
