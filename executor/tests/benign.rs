//! Benign code keeps working: a corpus of realistic, harmless "Code Mode" programs of the kind models
//! write against MCP tools (chained calls, `Promise.all`, error handling, classes, JSON, regular
//! expressions, dates, `Map`/`Set`, generators, both forms of the code contract), run through the whole
//! pipeline (validator → isolate → outcome) against a host with realistic tools.
//!
//! The corpus lives in `tests/benign/*.js` and `*.ts`: each program starts with `// @name <id>`,
//! followed by header lines:
//!
//! - `// @expect <json>`: the value the program returns on a mainstream runtime (Node), computed by
//!   hand and checked with Node (`node tests/benign/node_check.mjs`). Required.
//! - `// @known rejected <rule>`: a known false positive: the validator currently rejects it with
//!   `<rule>`.
//! - `// @known threw <Name>: <message substring>` with `// @gap <tag>`: a known runtime gap: it
//!   currently throws in the sandbox (where Node does not).
//! - `// @known result <json>`: it currently completes with a different value.
//! - `// @node <major>`: the Node version the program needs (`node_check.mjs` skips it on older ones).
//!
//! A program without `@known` must complete with its `@expect` value. A program with `@known` must
//! behave as recorded: when it starts working (or fails differently) the test fails, so that the note
//! is updated rather than left stale. Programs are never changed to pass.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{collections::BTreeMap, path::PathBuf, sync::Arc};

use mcp_guard_crds::Limits;
use mcp_guard_sandbox::{
    host::{ToolError, testing::ScriptedHost},
    outcome::{Outcome, Status},
    sandbox::Sandbox,
};
use serde_json::{Value, json};

const FIXTURES: &str = include_str!("benign/fixtures.json");

fn fixtures() -> Arc<Value> {
    Arc::new(serde_json::from_str(FIXTURES).expect("benign/fixtures.json is JSON"))
}

fn find<'a>(list: &'a Value, key: &str, value: &Value) -> Option<&'a Value> {
    list.as_array()?.iter().find(|item| &item[key] == value)
}

fn str_arg<'a>(args: &'a Value, key: &str, default: &'a str) -> &'a str {
    args[key].as_str().unwrap_or(default)
}

/// A host with realistic tools over `benign/fixtures.json` (mirrored by `node_check.mjs`).
fn benign_host() -> ScriptedHost {
    let data = fixtures();
    let d = |data: &Arc<Value>| Arc::clone(data);
    let mut host = ScriptedHost::new();

    let fx = d(&data);
    host = host.tool("github", "list_issues", move |args: Value| {
        let fx = Arc::clone(&fx);
        async move {
            let state = str_arg(&args, "state", "open").to_string();
            let label = args["label"].as_str().map(str::to_string);
            let issues: Vec<Value> = fx["issues"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|i| state == "all" || i["state"] == state.as_str())
                .filter(|i| {
                    label
                        .as_ref()
                        .is_none_or(|l| i["labels"].as_array().unwrap().iter().any(|x| x == l.as_str()))
                })
                .cloned()
                .collect();
            Ok(Value::Array(issues))
        }
    });
    let fx = d(&data);
    host = host.tool("github", "get_issue", move |args: Value| {
        let fx = Arc::clone(&fx);
        async move {
            find(&fx["issues"], "number", &args["number"])
                .cloned()
                .ok_or_else(|| ToolError::new(format!("issue #{} not found", args["number"])))
        }
    });
    let fx = d(&data);
    host = host.tool("github", "get_user", move |args: Value| {
        let fx = Arc::clone(&fx);
        async move {
            find(&fx["users"], "login", &args["login"])
                .cloned()
                .ok_or_else(|| ToolError::new(format!("user '{}' not found", str_arg(&args, "login", ""))))
        }
    });
    let fx = d(&data);
    host = host.tool("github", "list_pull_requests", move |args: Value| {
        let fx = Arc::clone(&fx);
        async move {
            let pulls = fx["pulls"].as_array().unwrap().iter();
            let pulls: Vec<Value> = match args["state"].as_str() {
                Some(state) => pulls.filter(|p| p["state"] == state).cloned().collect(),
                None => pulls.cloned().collect(),
            };
            Ok(Value::Array(pulls))
        }
    });
    let fx = d(&data);
    host = host.tool("github", "create_comment", move |args: Value| {
        let fx = Arc::clone(&fx);
        async move {
            let body = str_arg(&args, "body", "");
            if body.is_empty() {
                return Err(ToolError::new("body must not be empty"));
            }
            let Some(issue) = find(&fx["issues"], "number", &args["number"]) else {
                return Err(ToolError::new(format!("issue #{} not found", args["number"])));
            };
            let n = issue["number"].as_i64().unwrap();
            let id = 9000 + n;
            Ok(json!({
                "id": id,
                "issue": n,
                "body": body,
                "url": format!("https://github.com/acme/app/issues/{n}#issuecomment-{id}"),
            }))
        }
    });
    let fx = d(&data);
    host = host.tool("weather", "get_current", move |args: Value| {
        let fx = Arc::clone(&fx);
        async move {
            let city = str_arg(&args, "city", "");
            let mut entry = find(&fx["weather"], "city", &json!(city))
                .cloned()
                .ok_or_else(|| ToolError::new(format!("unknown city '{city}'")))?;
            entry.as_object_mut().unwrap().remove("forecast");
            Ok(entry)
        }
    });
    let fx = d(&data);
    host = host.tool("weather", "get_forecast", move |args: Value| {
        let fx = Arc::clone(&fx);
        async move {
            let city = str_arg(&args, "city", "");
            let entry = find(&fx["weather"], "city", &json!(city))
                .ok_or_else(|| ToolError::new(format!("unknown city '{city}'")))?;
            let days = args["days"].as_u64().unwrap_or(3) as usize;
            let forecast: Vec<Value> =
                entry["forecast"].as_array().unwrap().iter().take(days).cloned().collect();
            Ok(json!({ "city": city, "unit": "C", "days": forecast }))
        }
    });
    let fx = d(&data);
    host = host.tool("time", "get_current_time", move |args: Value| {
        let fx = Arc::clone(&fx);
        async move {
            let tz = str_arg(&args, "timezone", "UTC");
            find(&fx["times"], "timezone", &json!(tz))
                .cloned()
                .ok_or_else(|| ToolError::new(format!("unknown timezone '{tz}'")))
        }
    });
    let fx = d(&data);
    host = host.tool("shop", "list_orders", move |args: Value| {
        let fx = Arc::clone(&fx);
        async move {
            let orders = fx["orders"].as_array().unwrap().iter();
            let orders: Vec<Value> = match args["status"].as_str() {
                Some(status) => orders.filter(|o| o["status"] == status).cloned().collect(),
                None => orders.cloned().collect(),
            };
            Ok(Value::Array(orders))
        }
    });
    host = host.tool("slack", "post-message", |args: Value| async move {
        let channel = str_arg(&args, "channel", "");
        if !channel.starts_with('#') {
            return Err(ToolError::new("channel_not_found"));
        }
        Ok(json!({ "ok": true, "channel": channel, "ts": "1710513000.000100", "text": args["text"] }))
    });
    let fx = d(&data);
    host = host.tool("docs", "search", move |args: Value| {
        let fx = Arc::clone(&fx);
        async move { Ok(json!({ "query": args["query"], "results": fx["docs"] })) }
    });
    let fx = d(&data);
    host = host.tool("config", "get_value", move |args: Value| {
        let fx = Arc::clone(&fx);
        async move {
            let key = str_arg(&args, "key", "");
            Ok(json!({ "key": key, "value": fx["config"][key] }))
        }
    });
    host
}

/// What a program is currently known to do instead of returning its `@expect` value.
#[derive(Debug)]
enum Known {
    Rejected { rule: String },
    Threw { name: String, message: String, gap: String },
    Result { value: Value },
}

#[derive(Debug)]
struct Program {
    file: String,
    name: String,
    code: String,
    expect: Option<Value>,
    known: Option<Known>,
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/benign")
}

fn parse_corpus() -> Vec<Program> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("tests/benign exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "js" || e == "ts"))
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with("node_check"))
        .collect();
    files.sort();
    let mut programs: Vec<Program> = Vec::new();
    for path in files {
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut current: Option<Program> = None;
        let mut gap = String::new();
        for line in text.lines() {
            let meta = line.trim_start().strip_prefix("// @");
            match meta {
                Some(rest) if rest.starts_with("name ") => {
                    if let Some(p) = current.take() {
                        programs.push(p);
                    }
                    gap.clear();
                    let name = rest["name ".len()..].trim().to_string();
                    current = Some(Program {
                        file: file.clone(),
                        name,
                        code: String::new(),
                        expect: None,
                        known: None,
                    });
                }
                Some(rest) => {
                    let p = current.as_mut().unwrap_or_else(|| panic!("{file}: header before `// @name`"));
                    let (key, value) = rest.split_once(' ').unwrap_or((rest, ""));
                    let value = value.trim();
                    match key {
                        "expect" => {
                            p.expect = Some(
                                serde_json::from_str(value)
                                    .unwrap_or_else(|e| panic!("{file}/{}: bad @expect JSON: {e}", p.name)),
                            )
                        }
                        // The Node major version the program needs (for `node_check.mjs`).
                        "node" => {}
                        "gap" => {
                            gap = value.to_string();
                            if let Some(Known::Threw { gap: g, .. }) = &mut p.known {
                                *g = gap.clone();
                            }
                        }
                        "known" => {
                            let (kind, detail) = value.split_once(' ').unwrap_or((value, ""));
                            p.known = Some(match kind {
                                "rejected" => Known::Rejected { rule: detail.trim().to_string() },
                                "threw" => {
                                    let (name, message) = detail.split_once(": ").unwrap_or((detail, ""));
                                    Known::Threw {
                                        name: name.trim().to_string(),
                                        message: message.trim().to_string(),
                                        gap: gap.clone(),
                                    }
                                }
                                "result" => Known::Result {
                                    value: serde_json::from_str(detail).unwrap_or_else(|e| {
                                        panic!("{file}/{}: bad @known result JSON: {e}", p.name)
                                    }),
                                },
                                other => panic!("{file}/{}: unknown @known kind {other}", p.name),
                            });
                        }
                        other => panic!("{file}/{}: unknown header @{other}", p.name),
                    }
                }
                None => {
                    if let Some(p) = current.as_mut() {
                        p.code.push_str(line);
                        p.code.push('\n');
                    }
                }
            }
        }
        if let Some(p) = current.take() {
            programs.push(p);
        }
    }
    programs
}

fn describe(outcome: &Outcome) -> String {
    match &outcome.status {
        Status::Completed { result } => format!("completed with {result}"),
        Status::Rejected { rejection } => format!(
            "rejected by {} at {}:{}: {}",
            rejection.rule, rejection.line, rejection.column, rejection.message
        ),
        Status::Threw { error } => format!("threw {}: {}\n{}", error.name, error.message, error.stack),
        Status::LimitExceeded { limit, message } => format!("limit {limit:?}: {message}"),
        Status::ApprovalRequired { approval } => format!("approval required: {}", approval.id),
    }
}

/// How a program fared, for the summary.
enum Verdict {
    Pass,
    Rejected(String),
    Runtime(String),
    Differs,
}

fn judge(program: &Program, outcome: &Outcome) -> Result<Verdict, String> {
    let expect = program.expect.as_ref().ok_or("no `// @expect` line")?;
    let works = matches!(&outcome.status, Status::Completed { result } if result == expect);
    let got = describe(outcome);
    match &program.known {
        None if works => Ok(Verdict::Pass),
        None => Err(format!("expected completed with {expect}, got {got}")),
        Some(_) if works => {
            Err(format!("now works (completed with the expected value): remove its `@known` note\n({got})"))
        }
        Some(Known::Rejected { rule }) => match &outcome.status {
            Status::Rejected { rejection } if &rejection.rule == rule => Ok(Verdict::Rejected(rule.clone())),
            _ => Err(format!("known: rejected by {rule}; got {got}")),
        },
        Some(Known::Threw { name, message, gap }) => match &outcome.status {
            Status::Threw { error } if &error.name == name && error.message.contains(message.as_str()) => {
                Ok(Verdict::Runtime(if gap.is_empty() { format!("{name}: {message}") } else { gap.clone() }))
            }
            _ => Err(format!("known: threw {name}: {message}; got {got}")),
        },
        Some(Known::Result { value }) => match &outcome.status {
            Status::Completed { result } if result == value => Ok(Verdict::Differs),
            _ => Err(format!("known: completed with {value}; got {got}")),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn benign_corpus_runs_or_its_gaps_are_documented() {
    let programs = parse_corpus();
    assert!(programs.len() >= 100, "the corpus has only {} programs", programs.len());
    let mut names = std::collections::BTreeSet::new();
    for p in &programs {
        assert!(names.insert(p.name.as_str()), "duplicate program name {}", p.name);
    }

    let host = benign_host();
    // The engine the suites run on (threads, or isolate hosts with MCP_GUARD_TEST_ENGINE=process).
    let sandbox = Sandbox::with_engine(common::engine(), host.catalog(), Arc::new(host));
    let limits = Limits::default();

    let mut pass = 0;
    let mut differs = Vec::new();
    let mut rejected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut runtime: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut failures = Vec::new();
    for program in &programs {
        let outcome = sandbox.run(&program.code, &limits).await;
        match judge(program, &outcome) {
            Ok(Verdict::Pass) => pass += 1,
            Ok(Verdict::Differs) => differs.push(program.name.clone()),
            Ok(Verdict::Rejected(rule)) => rejected.entry(rule).or_default().push(program.name.clone()),
            Ok(Verdict::Runtime(reason)) => runtime.entry(reason).or_default().push(program.name.clone()),
            Err(why) => failures.push(format!("{}/{}: {why}", program.file, program.name)),
        }
    }

    let count = |m: &BTreeMap<String, Vec<String>>| m.values().map(Vec::len).sum::<usize>();
    println!("benign corpus: {} programs", programs.len());
    println!("  pass: {pass}");
    println!("  rejected (known false positives): {}", count(&rejected));
    for (rule, names) in &rejected {
        println!("    {rule}: {} ({})", names.len(), names.join(", "));
    }
    println!("  fail at runtime (known gaps): {}", count(&runtime));
    for (reason, names) in &runtime {
        println!("    {reason}: {} ({})", names.len(), names.join(", "));
    }
    println!("  complete with a different value (known): {} ({})", differs.len(), differs.join(", "));
    println!("  unexpected: {}", failures.len());
    assert!(
        failures.is_empty(),
        "{} program(s) did not behave as recorded:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
