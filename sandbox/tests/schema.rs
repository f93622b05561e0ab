//! The outcome's JSON schema is part of the public contract: this fails when the types drift from the
//! committed `sandbox/outcome.schema.json` (regenerate it with `make schema` and review the diff).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[test]
fn outcome_schema_matches_the_committed_file() {
    let committed: serde_json::Value =
        serde_json::from_str(include_str!("../outcome.schema.json")).expect("outcome.schema.json is JSON");
    let generated = mcp_guard_sandbox::outcome::Outcome::json_schema();
    assert!(
        committed == generated,
        "sandbox/outcome.schema.json is out of date: run `make schema`\n{}",
        serde_json::to_string_pretty(&generated).unwrap()
    );
}

#[test]
fn the_schema_names_every_outcome_kind_and_limit() {
    let schema = serde_json::to_string(&mcp_guard_sandbox::outcome::Outcome::json_schema()).unwrap();
    for kind in ["rejected", "completed", "threw", "limit_exceeded", "approval_required"] {
        assert!(schema.contains(&format!("\"{kind}\"")), "{kind} missing");
    }
    for limit in ["memory", "stack", "cpu_time", "wall_time", "output", "tool_calls", "discovery_calls"] {
        assert!(schema.contains(&format!("\"{limit}\"")), "{limit} missing");
    }
}
