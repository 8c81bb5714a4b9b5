//! The layering check: dependency edges that must never appear, read from `cargo metadata`.
//!
//! The arrows point one way: core <- manager, core <- identity, manager <- fred adapter, manager <- redis-rs
//! adapter. Only the fred adapter (and the test kit, CLI and end-to-end tests, which drive fred) may depend on
//! fred; the redis-rs adapter never reaches fred, nor reqwest without its `identity` feature; only the identity
//! crate knows reqwest; nothing anywhere pulls openssl, native-tls or an Azure SDK crate.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// Crates each workspace crate must not reach through normal or build dependencies.
const LAYER_RULES: &[(&str, &[&str])] = &[
    ("entraid-core", &["tokio", "reqwest", "fred", "hyper"]),
    (
        "entraid-manager",
        &["reqwest", "fred", "hyper", "entraid-identity"],
    ),
    (
        "entraid-identity",
        &["fred", "entraid-manager", "entraid-fred"],
    ),
    (
        "entraid-example-custom-identity",
        &["reqwest", "hyper", "entraid-identity"],
    ),
    ("entraid-redis", &["fred", "entraid-fred"]),
    ("entraid-example-redis-rs", &["fred", "entraid-fred"]),
];

/// Crates checked once more with `--no-default-features`, and what they must not reach then (on top of their
/// [`LAYER_RULES`]): without its `identity` feature the redis-rs adapter is core + manager only, no HTTP stack.
const NO_DEFAULT_FEATURE_RULES: &[(&str, &[&str])] =
    &[("entraid-redis", &["reqwest", "hyper", "entraid-identity"])];

/// Crates that are not layer-ruled but are checked with `--no-default-features` too, and what they must not reach
/// then (what `cargo install --no-default-features`
/// gives: the production `entraid` binary has no emulator, gateway or certificate generator).
const NO_DEFAULT_RULES: &[(&str, &[&str])] = &[("entraid-cli", &["entraid-testkit", "rcgen"])];

/// The only workspace crates that may depend on `fred` directly.
const FRED_ALLOWED: &[&str] = &[
    "entraid-fred",
    "entraid-cli",
    "entraid-testkit",
    "entraid-tests",
    // An application's view: `cargo add entraid-fred fred` (fred for its command traits).
    "entraid-example-go-redis-entraid-twins",
];

/// Crates that may not appear anywhere in the graph (by exact name, or by prefix when ending in `*`).
const BANNED_EVERYWHERE: &[&str] = &[
    "openssl",
    "openssl-sys",
    "native-tls",
    "tokio-native-tls",
    "azure_*",
];

/// One dependency edge.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Edge {
    /// The dependency's package name.
    pub(crate) to: String,
    /// Whether it is only a dev-dependency (not pulled by users).
    pub(crate) dev_only: bool,
}

/// The resolved dependency graph, by package name.
#[derive(Debug, Default)]
pub(crate) struct Graph {
    members: BTreeSet<String>,
    edges: BTreeMap<String, BTreeSet<Edge>>,
}

impl Graph {
    /// Adds a workspace member (tests build graphs by hand).
    #[cfg(test)]
    pub(crate) fn member(mut self, name: &str) -> Self {
        self.members.insert(name.to_owned());
        self
    }

    /// Adds an edge (tests build graphs by hand).
    #[cfg(test)]
    pub(crate) fn edge(mut self, from: &str, to: &str, dev_only: bool) -> Self {
        self.edges.entry(from.to_owned()).or_default().insert(Edge {
            to: to.to_owned(),
            dev_only,
        });
        self
    }

    /// Workspace member names.
    pub(crate) fn members(&self) -> &BTreeSet<String> {
        &self.members
    }

    /// Reads `cargo metadata --format-version 1` output.
    pub(crate) fn from_metadata(json: &[u8]) -> Result<Self, String> {
        let meta: Value =
            serde_json::from_slice(json).map_err(|e| format!("cargo metadata output: {e}"))?;
        let name_of: BTreeMap<&str, &str> = meta["packages"]
            .as_array()
            .ok_or("cargo metadata: no packages")?
            .iter()
            .filter_map(|p| Some((p["id"].as_str()?, p["name"].as_str()?)))
            .collect();
        let mut graph = Graph::default();
        for id in meta["workspace_members"]
            .as_array()
            .ok_or("cargo metadata: no workspace_members")?
        {
            if let Some(name) = id.as_str().and_then(|id| name_of.get(id)) {
                graph.members.insert((*name).to_owned());
            }
        }
        for node in meta["resolve"]["nodes"]
            .as_array()
            .ok_or("cargo metadata: no resolve graph")?
        {
            let Some(from) = node["id"].as_str().and_then(|id| name_of.get(id)) else {
                continue;
            };
            for dep in node["deps"].as_array().into_iter().flatten() {
                let Some(to) = dep["pkg"].as_str().and_then(|id| name_of.get(id)) else {
                    continue;
                };
                let kinds: Vec<Option<&str>> = dep["dep_kinds"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|k| k["kind"].as_str())
                    .collect();
                let dev_only = !kinds.is_empty() && kinds.iter().all(|k| *k == Some("dev"));
                graph
                    .edges
                    .entry((*from).to_owned())
                    .or_default()
                    .insert(Edge {
                        to: (*to).to_owned(),
                        dev_only,
                    });
            }
        }
        Ok(graph)
    }

    /// Reads `cargo tree -p <root> -e normal,build --prefix depth --format {p}` output: the packages `root` pulls
    /// with the features a build of `root` alone resolves.
    pub(crate) fn from_cargo_tree(root: &str, output: &str) -> Self {
        let mut graph = Graph::default();
        graph.members.insert(root.to_owned());
        let mut stack: Vec<String> = Vec::new();
        for line in output.lines() {
            let digits = line.chars().take_while(char::is_ascii_digit).count();
            let Ok(depth) = line[..digits].parse::<usize>() else {
                continue;
            };
            let Some(name) = line[digits..].split_whitespace().next() else {
                continue;
            };
            stack.truncate(depth);
            if let Some(parent) = stack.last() {
                graph.edges.entry(parent.clone()).or_default().insert(Edge {
                    to: name.to_owned(),
                    dev_only: false,
                });
            }
            stack.push(name.to_owned());
        }
        graph
    }

    /// Every package `start` pulls through normal and build dependencies, with one path to each.
    fn reachable(&self, start: &str) -> BTreeMap<String, Vec<String>> {
        let mut paths: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut queue = vec![vec![start.to_owned()]];
        while let Some(path) = queue.pop() {
            let Some(last) = path.last() else { continue };
            for edge in self.edges.get(last).into_iter().flatten() {
                if edge.dev_only || paths.contains_key(&edge.to) || edge.to == start {
                    continue;
                }
                let mut next = path.clone();
                next.push(edge.to.clone());
                paths.insert(edge.to.clone(), next.clone());
                queue.push(next);
            }
        }
        paths
    }

    fn all_packages(&self) -> BTreeSet<&str> {
        self.edges
            .iter()
            .flat_map(|(from, edges)| {
                std::iter::once(from.as_str()).chain(edges.iter().map(|e| e.to.as_str()))
            })
            .chain(self.members.iter().map(String::as_str))
            .collect()
    }
}

fn banned(name: &str) -> bool {
    BANNED_EVERYWHERE.iter().any(|b| match b.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == *b,
    })
}

/// The workspace crates that have layering rules.
pub(crate) fn ruled_crates() -> impl Iterator<Item = &'static str> {
    LAYER_RULES.iter().map(|(krate, _)| *krate)
}

/// The `cargo tree` feature flags each ruled crate is checked with: default features and `--all-features`, plus
/// `--no-default-features` for the crates in [`NO_DEFAULT_FEATURE_RULES`].
pub(crate) fn feature_sets(krate: &str) -> Vec<Option<&'static str>> {
    let mut sets = vec![None, Some("--all-features")];
    if NO_DEFAULT_FEATURE_RULES.iter().any(|(k, _)| *k == krate) {
        sets.push(Some("--no-default-features"));
    }
    sets
}

/// [`check_layer`] for a graph built with `features` (one of [`feature_sets`]): the layer rule, and with
/// `--no-default-features` the crate's [`NO_DEFAULT_FEATURE_RULES`] too.
pub(crate) fn check_layer_with(krate: &str, features: Option<&str>, graph: &Graph) -> Vec<String> {
    let mut violations = check_layer(krate, graph);
    if features != Some("--no-default-features") || !graph.members.contains(krate) {
        return violations;
    }
    let Some((_, forbidden)) = NO_DEFAULT_FEATURE_RULES.iter().find(|(k, _)| *k == krate) else {
        return violations;
    };
    let reachable = graph.reachable(krate);
    for dep in *forbidden {
        if let Some(path) = reachable.get(*dep) {
            violations.push(format!(
                "{krate} without default features must not depend on {dep} (path: {})",
                path.join(" -> ")
            ));
        }
    }
    violations
}

/// The workspace crates that have rules for a build without default features.
pub(crate) fn no_default_ruled_crates() -> impl Iterator<Item = &'static str> {
    NO_DEFAULT_RULES.iter().map(|(krate, _)| *krate)
}

/// The no-default-features rule of `krate`, over its `cargo tree --no-default-features`.
pub(crate) fn check_no_default_layer(krate: &str, graph: &Graph) -> Vec<String> {
    let Some((_, forbidden)) = NO_DEFAULT_RULES.iter().find(|(k, _)| *k == krate) else {
        return Vec::new();
    };
    let reachable = graph.reachable(krate);
    forbidden
        .iter()
        .filter_map(|dep| {
            reachable.get(*dep).map(|path| {
                format!(
                    "{krate} without default features must not depend on {dep} (path: {})",
                    path.join(" -> ")
                )
            })
        })
        .collect()
}

/// Every violation of the layering rules in one graph (tests build one graph for everything).
#[cfg(test)]
pub(crate) fn check(graph: &Graph) -> Vec<String> {
    let mut violations: Vec<String> = ruled_crates()
        .flat_map(|krate| check_layer(krate, graph))
        .collect();
    violations.extend(check_workspace(graph));
    violations
}

/// The layer rule of `krate`, over a graph of what `krate` pulls (for real runs: its own `cargo tree`, so features
/// other workspace crates enable do not count).
pub(crate) fn check_layer(krate: &str, graph: &Graph) -> Vec<String> {
    let mut violations = Vec::new();
    let Some((_, forbidden)) = LAYER_RULES.iter().find(|(k, _)| *k == krate) else {
        return violations;
    };
    if !graph.members.contains(krate) {
        return violations;
    }
    let reachable = graph.reachable(krate);
    for dep in *forbidden {
        if let Some(path) = reachable.get(*dep) {
            violations.push(format!(
                "{krate} must not depend on {dep} (path: {})",
                path.join(" -> ")
            ));
        }
    }
    violations
}

/// The workspace-wide rules: who may use fred directly, and crates banned everywhere (dev-dependencies included).
pub(crate) fn check_workspace(graph: &Graph) -> Vec<String> {
    let mut violations = Vec::new();
    for member in &graph.members {
        if FRED_ALLOWED.contains(&member.as_str()) {
            continue;
        }
        if graph
            .edges
            .get(member)
            .into_iter()
            .flatten()
            .any(|e| e.to == "fred")
        {
            violations.push(format!(
                "{member} must not depend on fred directly (only {} may)",
                FRED_ALLOWED.join(", ")
            ));
        }
    }
    for package in graph.all_packages() {
        if banned(package) {
            violations.push(format!("{package} must not appear in the dependency graph (no openssl, native-tls or Azure SDK)"));
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean() -> Graph {
        Graph::default()
            .member("entraid-core")
            .member("entraid-manager")
            .member("entraid-identity")
            .member("entraid-fred")
            .edge("entraid-core", "serde", false)
            .edge("entraid-core", "tokio", true) // dev-only: allowed
            .edge("entraid-manager", "entraid-core", false)
            .edge("entraid-manager", "tokio", false)
            .edge("entraid-identity", "entraid-core", false)
            .edge("entraid-identity", "reqwest", false)
            .edge("reqwest", "rustls", false)
            .edge("entraid-fred", "entraid-manager", false)
            .edge("entraid-fred", "fred", false)
            .edge("entraid-fred", "entraid-identity", false)
    }

    #[test]
    fn a_clean_graph_passes() {
        assert_eq!(check(&clean()), Vec::<String>::new());
    }

    #[test]
    fn core_on_tokio_fails() {
        let v = check(&clean().edge("entraid-core", "tokio", false));
        assert_eq!(
            v,
            vec!["entraid-core must not depend on tokio (path: entraid-core -> tokio)".to_owned()]
        );
    }

    #[test]
    fn transitive_edges_are_found_with_their_path() {
        let v = check(&clean().edge("entraid-manager", "some-http", false).edge(
            "some-http",
            "reqwest",
            false,
        ));
        assert_eq!(
            v,
            vec!["entraid-manager must not depend on reqwest (path: entraid-manager -> some-http -> reqwest)".to_owned()]
        );
    }

    #[test]
    fn identity_on_manager_or_fred_fails() {
        let v = check(&clean().edge("entraid-identity", "entraid-manager", false));
        assert_eq!(v.len(), 1, "{v:?}");
        let v = check(&clean().edge("entraid-identity", "fred", false));
        // Both the layer rule and the direct-fred rule fire.
        assert_eq!(v.len(), 2, "{v:?}");
    }

    #[test]
    fn only_allowed_crates_use_fred() {
        let v = check(
            &clean()
                .member("entraid-tests")
                .edge("entraid-tests", "fred", true),
        );
        assert!(v.is_empty(), "{v:?}");
        let v = check(&clean().member("xtask").edge("xtask", "fred", true));
        assert_eq!(v, vec!["xtask must not depend on fred directly (only entraid-fred, entraid-cli, entraid-testkit, entraid-tests, entraid-example-go-redis-entraid-twins may)".to_owned()]);
    }

    #[test]
    fn banned_crates_fail_anywhere_even_as_dev_dependencies() {
        let v = check(&clean().edge("reqwest", "native-tls", false));
        assert_eq!(v.len(), 1, "{v:?}");
        let v = check(&clean().edge("entraid-fred", "azure_identity", true));
        assert_eq!(v.len(), 1, "{v:?}");
        let v = check(&clean().edge("rustls", "openssl-sys", false));
        assert_eq!(v.len(), 1, "{v:?}");
    }

    #[test]
    fn custom_identity_example_pulls_no_reqwest() {
        let g = clean().member("entraid-example-custom-identity").edge(
            "entraid-example-custom-identity",
            "entraid-fred",
            false,
        );
        // entraid-fred reaches entraid-identity (and reqwest) in this graph: the example must not.
        let v = check(&g);
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(
            v.iter().any(|l| l.contains("must not depend on reqwest")),
            "{v:?}"
        );
    }

    fn redis_adapter() -> Graph {
        clean()
            .member("entraid-redis")
            .edge("entraid-redis", "entraid-manager", false)
            .edge("entraid-redis", "redis", false)
    }

    #[test]
    fn redis_adapter_never_reaches_fred() {
        assert_eq!(check(&redis_adapter()), Vec::<String>::new());
        let v = check(&redis_adapter().edge("entraid-redis", "entraid-fred", false));
        // Through entraid-fred it reaches both entraid-fred and fred.
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(
            v.iter()
                .all(|l| l.starts_with("entraid-redis must not depend on")),
            "{v:?}"
        );
        let v = check(&redis_adapter().edge("entraid-redis", "fred", true));
        assert_eq!(
            v,
            vec!["entraid-redis must not depend on fred directly (only entraid-fred, entraid-cli, entraid-testkit, entraid-tests, entraid-example-go-redis-entraid-twins may)".to_owned()]
        );
    }

    #[test]
    fn redis_adapter_reaches_reqwest_only_with_default_features() {
        let with_identity = redis_adapter().edge("entraid-redis", "entraid-identity", false);
        // With default (or all) features, identity and reqwest are expected.
        assert_eq!(
            check_layer_with("entraid-redis", None, &with_identity),
            Vec::<String>::new()
        );
        assert_eq!(
            check_layer_with("entraid-redis", Some("--all-features"), &with_identity),
            Vec::<String>::new()
        );
        // Without default features they are violations, with their path.
        let v = check_layer_with(
            "entraid-redis",
            Some("--no-default-features"),
            &with_identity,
        );
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(
            v.contains(&"entraid-redis without default features must not depend on reqwest (path: entraid-redis -> entraid-identity -> reqwest)".to_owned()),
            "{v:?}"
        );
        assert_eq!(
            check_layer_with(
                "entraid-redis",
                Some("--no-default-features"),
                &redis_adapter()
            ),
            Vec::<String>::new()
        );
        assert_eq!(
            feature_sets("entraid-redis"),
            vec![None, Some("--all-features"), Some("--no-default-features")]
        );
        assert_eq!(
            feature_sets("entraid-core"),
            vec![None, Some("--all-features")]
        );
    }

    #[test]
    fn reads_cargo_tree_output() {
        let output = "0entraid-example v0.1.0 (/x)\n1entraid-fred v0.1.0 (/y)\n2fred v10.1.0\n3tokio v1.0.0\n2entraid-core v0.1.0\n1tokio v1.0.0 (*)\n";
        let graph = Graph::from_cargo_tree("entraid-example", output);
        let reachable = graph.reachable("entraid-example");
        assert_eq!(
            reachable["fred"],
            vec!["entraid-example", "entraid-fred", "fred"]
        );
        assert_eq!(
            reachable["entraid-core"],
            vec!["entraid-example", "entraid-fred", "entraid-core"]
        );
        assert!(reachable.contains_key("tokio"));
        let graph = Graph::from_cargo_tree("entraid-core", "0entraid-core v0.1.0\n1tokio v1\n");
        assert_eq!(check_layer("entraid-core", &graph).len(), 1);
    }

    #[test]
    fn the_cli_without_default_features_pulls_no_testkit() {
        let clean = Graph::from_cargo_tree(
            "entraid-cli",
            "0entraid-cli v0.1.0\n1entraid-fred v0.1.0\n2fred v10.1.0\n1reqwest v0.13.0\n2hyper v1.0.0\n",
        );
        assert!(check_no_default_layer("entraid-cli", &clean).is_empty());
        let full = Graph::from_cargo_tree(
            "entraid-cli",
            "0entraid-cli v0.1.0\n1entraid-testkit v0.1.0\n2rcgen v0.14.0\n",
        );
        let violations = check_no_default_layer("entraid-cli", &full);
        assert_eq!(violations.len(), 2, "{violations:?}");
        assert!(violations[0].contains("entraid-testkit"), "{violations:?}");
    }

    #[test]
    fn reads_real_cargo_metadata() {
        let output =
            std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
                .args(["metadata", "--format-version", "1"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .output()
                .unwrap();
        assert!(output.status.success());
        let graph = Graph::from_metadata(&output.stdout).unwrap();
        assert!(graph.members().contains("entraid-core"));
        assert!(graph.members().contains("xtask"));
        assert!(graph.reachable("entraid-core").contains_key("serde"));
        // Metadata unifies features across the workspace, so only the workspace-wide rules apply to it; the layer
        // rules run on each crate's own `cargo tree` (see `main.rs`).
        assert_eq!(check_workspace(&graph), Vec::<String>::new());
    }
}
