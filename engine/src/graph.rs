//! The desired resource graph: edges from references and `depends_on`, validated once.

use std::collections::BTreeMap;
use std::time::Duration;

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::model::{Resource, references};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    #[error("resource name {0:?} is used more than once")]
    DuplicateName(String),
    #[error(
        "resource name {0:?} is invalid: use letters, digits, '-', '_' and '/' (no '.' or '~')"
    )]
    InvalidName(String),
    #[error("{resource} references {reference}, but there is no resource {target:?}")]
    UnknownReference {
        resource: String,
        reference: String,
        target: String,
    },
    #[error("{resource} depends on {target:?}, which is not a resource of this stack")]
    UnknownDependency { resource: String, target: String },
    #[error("dependency cycle between {}", .0.join(", "))]
    Cycle(Vec<String>),
}

/// A validated, acyclic set of resources. Resources are kept sorted by name, so the graph
/// (and every plan made from it) does not depend on the order they were given in.
#[derive(Debug, Clone)]
pub struct Graph {
    resources: Vec<Resource>,
    index: BTreeMap<String, usize>,
    /// For each resource, the resources it depends on (sorted, deduplicated).
    deps: Vec<Vec<usize>>,
    /// For each resource, the resources that depend on it (sorted).
    dependents: Vec<Vec<usize>>,
    /// A topological order: dependencies first.
    order: Vec<usize>,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/'))
}

impl Graph {
    pub fn new(mut resources: Vec<Resource>) -> Result<Graph, GraphError> {
        resources.sort_by(|a, b| a.name.cmp(&b.name));
        let mut index = BTreeMap::new();
        for (i, r) in resources.iter().enumerate() {
            if !valid_name(&r.name) {
                return Err(GraphError::InvalidName(r.name.clone()));
            }
            if index.insert(r.name.clone(), i).is_some() {
                return Err(GraphError::DuplicateName(r.name.clone()));
            }
        }
        let mut deps = Vec::with_capacity(resources.len());
        for r in &resources {
            let mut d = Vec::new();
            for (target, path) in references(&r.inputs) {
                let &i = index
                    .get(target)
                    .ok_or_else(|| GraphError::UnknownReference {
                        resource: r.name.clone(),
                        reference: format!("{target}.{path}"),
                        target: target.to_string(),
                    })?;
                d.push(i);
            }
            for target in &r.depends_on {
                let &i = index
                    .get(target)
                    .ok_or_else(|| GraphError::UnknownDependency {
                        resource: r.name.clone(),
                        target: target.clone(),
                    })?;
                d.push(i);
            }
            d.sort_unstable();
            d.dedup();
            deps.push(d);
        }
        let order = topological_order(&resources, &deps)?;
        let mut dependents = vec![Vec::new(); resources.len()];
        for (i, d) in deps.iter().enumerate() {
            for &j in d {
                dependents[j].push(i);
            }
        }
        Ok(Graph {
            resources,
            index,
            deps,
            dependents,
            order,
        })
    }

    pub fn resources(&self) -> &[Resource] {
        &self.resources
    }

    pub fn get(&self, name: &str) -> Option<&Resource> {
        self.index.get(name).map(|&i| &self.resources[i])
    }

    pub fn len(&self) -> usize {
        self.resources.len()
    }

    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }

    /// Names of the resources `name` depends on, sorted.
    pub fn dependencies(&self, name: &str) -> Vec<&str> {
        self.index
            .get(name)
            .map(|&i| {
                self.deps[i]
                    .iter()
                    .map(|&d| self.resources[d].name.as_str())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Names of the resources that depend on `name`, sorted.
    pub fn dependents(&self, name: &str) -> Vec<&str> {
        self.index
            .get(name)
            .map(|&i| {
                self.dependents[i]
                    .iter()
                    .map(|&d| self.resources[d].name.as_str())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Resources in dependency order (each after everything it depends on).
    pub fn topological(&self) -> impl Iterator<Item = &Resource> {
        self.order.iter().map(|&i| &self.resources[i])
    }

    /// The longest path through the DAG when each resource takes `duration`: no schedule
    /// can apply the graph faster.
    pub fn critical_path(&self, duration: impl Fn(&Resource) -> Duration) -> Duration {
        let mut finish = vec![Duration::ZERO; self.resources.len()];
        for &i in &self.order {
            let start = self.deps[i]
                .iter()
                .map(|&d| finish[d])
                .max()
                .unwrap_or_default();
            finish[i] = start + duration(&self.resources[i]);
        }
        finish.into_iter().max().unwrap_or_default()
    }
}

/// Kahn's algorithm over petgraph, taking ready nodes in index (= name) order so the result
/// is deterministic; a cycle is reported with the names of the resources in it.
fn topological_order(
    resources: &[Resource],
    deps: &[Vec<usize>],
) -> Result<Vec<usize>, GraphError> {
    let mut g = DiGraph::<usize, ()>::with_capacity(resources.len(), 0);
    let nodes: Vec<NodeIndex> = (0..resources.len()).map(|i| g.add_node(i)).collect();
    for (i, d) in deps.iter().enumerate() {
        for &j in d {
            g.add_edge(nodes[j], nodes[i], ());
        }
    }
    match petgraph::algo::toposort(&g, None) {
        Ok(_) => {}
        Err(_) => {
            let mut cycle = tarjan_scc(&g)
                .into_iter()
                .find(|scc| scc.len() > 1 || g.contains_edge(scc[0], scc[0]))
                .expect("toposort found a cycle, so a strongly connected component has one");
            cycle.sort();
            let names = cycle
                .iter()
                .map(|n| resources[g[*n]].name.clone())
                .collect();
            return Err(GraphError::Cycle(names));
        }
    }
    let mut indegree: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut dependents = vec![Vec::new(); resources.len()];
    for (i, d) in deps.iter().enumerate() {
        for &j in d {
            dependents[j].push(i);
        }
    }
    let mut ready: std::collections::BTreeSet<usize> =
        (0..resources.len()).filter(|&i| indegree[i] == 0).collect();
    let mut order = Vec::with_capacity(resources.len());
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &k in &dependents[i] {
            indegree[k] -= 1;
            if indegree[k] == 0 {
                ready.insert(k);
            }
        }
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::reference;
    use serde_json::json;

    fn r(name: &str, inputs: serde_json::Value) -> Resource {
        Resource::new("test", name, inputs)
    }

    #[test]
    fn orders_dependencies_first_regardless_of_input_order() {
        let g = Graph::new(vec![
            r("subnet", json!({"vpc": reference("vpc", "id")})),
            r("nat", json!({"subnet": reference("subnet", "id")})).depends_on("igw"),
            r("igw", json!({"vpc": reference("vpc", "id")})),
            r("vpc", json!({})),
        ])
        .unwrap();
        let order: Vec<_> = g.topological().map(|r| r.name.as_str()).collect();
        assert_eq!(order, ["vpc", "igw", "subnet", "nat"]);
        assert_eq!(g.dependencies("nat"), ["igw", "subnet"]);
    }

    #[test]
    fn clear_errors() {
        let dup = Graph::new(vec![r("a", json!({})), r("a", json!({}))]).unwrap_err();
        assert_eq!(
            dup.to_string(),
            "resource name \"a\" is used more than once"
        );

        let unknown = Graph::new(vec![r("a", json!({"x": reference("b", "id")}))]).unwrap_err();
        assert_eq!(
            unknown.to_string(),
            "a references b.id, but there is no resource \"b\""
        );

        let dep = Graph::new(vec![r("a", json!({})).depends_on("zz")]).unwrap_err();
        assert_eq!(
            dep.to_string(),
            "a depends on \"zz\", which is not a resource of this stack"
        );

        let cycle = Graph::new(vec![
            r("a", json!({"x": reference("c", "id")})),
            r("b", json!({"x": reference("a", "id")})),
            r("c", json!({"x": reference("b", "id")})),
            r("d", json!({})),
        ])
        .unwrap_err();
        assert_eq!(
            cycle,
            GraphError::Cycle(vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(cycle.to_string(), "dependency cycle between a, b, c");

        let own = Graph::new(vec![r("a", json!({})).depends_on("a")]).unwrap_err();
        assert_eq!(own.to_string(), "dependency cycle between a");

        let bad = Graph::new(vec![r("a.b", json!({}))]).unwrap_err();
        assert!(matches!(bad, GraphError::InvalidName(_)));
    }
}
