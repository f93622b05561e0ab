//! The crate graph is the first thing a reviewer of a sandbox reads: which code can ever touch a
//! credential, and which can ever run guest code. This test reads the workspace's resolved dependency
//! graph (`cargo metadata`, normal dependencies only, transitively) and fails when a boundary is crossed:
//! - nothing that runs guest code or faces agents (`sandbox`, `api`, `binding-client`) nor the shared
//!   pieces (`tools`, `proto`) depends on the credential holder (`binding-proxy`);
//! - the credential holder does not depend on the sandbox or the API (it never runs guest code);
//! - the shared pieces depend on no component at all.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// Every workspace package's normal (non-dev, non-build) dependencies, transitively, by package name.
fn normal_closure() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    let name_of: BTreeMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let mut direct: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for node in meta["resolve"]["nodes"].as_array().unwrap() {
        let name = name_of[node["id"].as_str().unwrap()].to_string();
        let deps = node["deps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["dep_kinds"].as_array().unwrap().iter().any(|k| k["kind"].is_null()))
            .map(|d| name_of[d["pkg"].as_str().unwrap()].to_string())
            .collect();
        direct.insert(name, deps);
    }
    let workspace: Vec<String> = meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| name_of[id.as_str().unwrap()].to_string())
        .collect();
    workspace
        .into_iter()
        .map(|root| {
            let mut seen = BTreeSet::new();
            let mut stack = vec![root.clone()];
            while let Some(n) = stack.pop() {
                for d in direct.get(&n).into_iter().flatten() {
                    if seen.insert(d.clone()) {
                        stack.push(d.clone());
                    }
                }
            }
            (root, seen)
        })
        .collect()
}

fn assert_not_reachable(graph: &BTreeMap<String, BTreeSet<String>>, from: &[&str], to: &[&str]) {
    for f in from {
        let deps = graph.get(*f).unwrap_or_else(|| panic!("{f} is not a workspace member"));
        for t in to {
            assert!(!deps.contains(*t), "{f} depends (transitively) on {t}: a trust boundary is crossed");
        }
    }
}

#[test]
fn nothing_that_runs_guest_code_or_faces_agents_can_reach_a_credential() {
    let graph = normal_closure();
    assert_not_reachable(
        &graph,
        &[
            "mcp-guard-sandbox",
            "mcp-guard-api",
            "mcp-guard-binding-client",
            "mcp-guard-tools",
            "mcp-guard-proto",
        ],
        &["mcp-guard-binding-proxy"],
    );
    // The control: the binary wires everything, so it does reach the proxy (the graph is read right).
    assert!(graph["mcp-guard"].contains("mcp-guard-binding-proxy"));
    assert!(graph["mcp-guard-api"].contains("mcp-guard-sandbox"));
}

#[test]
fn the_credential_holder_never_runs_guest_code_nor_serves_agents() {
    let graph = normal_closure();
    assert_not_reachable(
        &graph,
        &["mcp-guard-binding-proxy"],
        &["mcp-guard-sandbox", "mcp-guard-api", "mcp-guard-binding-client", "rquickjs", "oxc"],
    );
}

#[test]
fn the_shared_pieces_depend_on_no_component() {
    let graph = normal_closure();
    let components =
        ["mcp-guard-sandbox", "mcp-guard-api", "mcp-guard-binding-client", "mcp-guard-binding-proxy"];
    assert_not_reachable(&graph, &["mcp-guard-tools", "mcp-guard-proto"], &components);
    // The tool index is pure data: no network, no engine, no wire types.
    assert_not_reachable(&graph, &["mcp-guard-tools"], &["tonic", "reqwest", "rquickjs", "mcp-guard-proto"]);
}
