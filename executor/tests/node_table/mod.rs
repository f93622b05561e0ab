//! Tables of cases compared with Node (`web_builtins/`, `intl/`): the cases of a `cases.js`, and what
//! the sandbox did in the shape its `node_expect.mjs` records.
#![allow(dead_code)]

use mcp_guard_sandbox::outcome::{ConsoleLevel, Outcome, Status};
use serde_json::{Value, json};

/// `(name, body)` of each case: a `// @name <name>` line, then the body up to the next one.
pub fn cases(table: &str) -> Vec<(String, String)> {
    table
        .split("\n// @name ")
        .skip(1)
        .map(|block| {
            let (name, body) = block.split_once('\n').unwrap_or((block, ""));
            (name.trim().to_string(), body.to_string())
        })
        .collect()
}

/// The result or the thrown error, and each console line as `[stream, text]` with `text` passed
/// through `line`.
pub fn observed(outcome: &Outcome, line: impl Fn(&str) -> String) -> Value {
    let mut entry = match &outcome.status {
        Status::Completed { result } => json!({ "result": result }),
        Status::Threw { error } => json!({ "threw": { "name": error.name, "message": error.message } }),
        other => json!({ "other": format!("{other:?}") }),
    };
    let mut lines = Vec::new();
    for l in &outcome.console {
        let stream = match l.level {
            ConsoleLevel::Warn | ConsoleLevel::Error => "err",
            _ => "out",
        };
        for text in l.message.split('\n') {
            lines.push(json!([stream, line(text)]));
        }
    }
    entry["console"] = Value::Array(lines);
    entry
}
