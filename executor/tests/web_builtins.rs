//! The sandbox's web built-ins (`URL`, `URLSearchParams`, `TextEncoder`/`TextDecoder`, `atob`/`btoa`,
//! `structuredClone`, `crypto`, `DOMException`, `Event`/`EventTarget`, `AbortController`/`AbortSignal`,
//! the `console` methods) against Node: every case of `web_builtins/cases.js` must return (or throw, or
//! print) what Node does, as recorded in `web_builtins/expected.json` by `node_expect.mjs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod node_table;

use common::{fast_limits, sandbox};
use serde_json::{Value, json};

const CASES: &str = include_str!("web_builtins/cases.js");
const EXPECTED: &str = include_str!("web_builtins/expected.json");

fn cases() -> Vec<(String, String)> {
    node_table::cases(CASES)
}

/// `console.time` reports elapsed time, which differs by nature (and in the sandbox the clock stands
/// still while code runs): `t: 0.039ms` and `t: 0ms` both read `t: <elapsed>`.
fn elapsed(line: &str) -> String {
    match line.rsplit_once(": ") {
        Some((label, t)) if t.ends_with("ms") && t.trim_end_matches("ms").parse::<f64>().is_ok() => {
            format!("{label}: <elapsed>")
        }
        _ => line.to_string(),
    }
}

fn normalized(mut entry: Value) -> Value {
    if let Some(lines) = entry["console"].as_array_mut() {
        for l in lines {
            if let Some(text) = l[1].as_str() {
                l[1] = Value::String(elapsed(text));
            }
        }
    }
    entry
}

/// What the sandbox did, in the shape `node_expect.mjs` records.
fn observed(outcome: &mcp_guard_sandbox::outcome::Outcome) -> Value {
    node_table::observed(outcome, elapsed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_builtins_behave_as_on_node() {
    let expected: Value = serde_json::from_str(EXPECTED).unwrap();
    let cases = cases();
    assert!(cases.len() >= 45, "the table lost cases: {}", cases.len());
    let mut failures = Vec::new();
    for (name, body) in &cases {
        let want = normalized(expected["cases"][name].clone());
        assert!(!want.is_null(), "{name}: not in expected.json: run node_expect.mjs");
        let code = format!("async () => {{\n{body}\n}}");
        let outcome = sandbox().run(&code, &fast_limits()).await;
        let got = observed(&outcome);
        if got != want {
            failures.push(format!("{name}:\n  node:    {want}\n  sandbox: {got}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from Node:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// The built-ins reach the host only through functions the prelude keeps to itself: nothing reachable
/// from the globals or the built-ins' own properties and prototypes leads to them, and an
/// oversized input is refused before the host copies it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_behind_the_builtins_is_out_of_reach() {
    // Unvalidated: the validator refuses `globalThis` as a value, and the runtime must hold without it.
    let body = r#"
        const names = ["URL", "URLSearchParams", "TextEncoder", "TextDecoder", "atob", "btoa", "structuredClone",
                       "crypto", "DOMException", "AbortController", "AbortSignal", "Event", "EventTarget"];
        const seen = new Set();
        const found = [];
        const walk = (v, path, depth) => {
            if (v === null || (typeof v !== "object" && typeof v !== "function") || seen.has(v) || depth > 4) return;
            seen.add(v);
            for (const k of Reflect.ownKeys(v)) {
                let d;
                try { d = Object.getOwnPropertyDescriptor(v, k); } catch (e) { continue; }
                for (const x of [d.value, d.get, d.set]) {
                    if (typeof x === "function" && ["url", "web", "setTimer", "setQuery", "attach", "reparse", "fire"].includes(x.name)) {
                        found.push(`${path}.${String(k)}`);
                    }
                    walk(x, `${path}.${String(k)}`, depth + 1);
                }
            }
            walk(Object.getPrototypeOf(v), `${path}.__proto__`, depth + 1);
        };
        for (const n of names) {
            walk(globalThis[n], n, 0);
            walk(Object.getOwnPropertyDescriptor(globalThis, n).get, `get ${n}`, 0);
        }
        walk(new URL("https://a.example/?q=1"), "url", 0);
        walk(new URL("https://a.example/?q=1").searchParams, "params", 0);
        walk(new AbortController(), "controller", 0);
        let big = "";
        try { new URL("https://a.example/" + "a".repeat(2 << 20)); } catch (e) { big = `${e.name}: ${e.message}`; }
        return { found, big };
    "#;
    let outcome = common::run_unvalidated(body, &fast_limits()).await;
    let result = common::completed(&outcome);
    assert_eq!(result["found"], json!([]), "{result}");
    if common::on_v8() {
        // V8's URL is native to its isolate: no host copy to bound, and 2 MiB parses.
        assert_eq!(result["big"], json!(""), "{result}");
    } else {
        assert!(result["big"].as_str().unwrap().starts_with("RangeError: URL input too large"), "{result}");
    }
}
