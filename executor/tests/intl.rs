//! The sandbox's `Intl` (DateTimeFormat with IANA time zones, NumberFormat, Collator, PluralRules,
//! ListFormat, RelativeTimeFormat, locale lists) and the locale-aware methods of Date, Number and String,
//! against Node: every case of `intl/cases.js` must return (or throw) what Node 20 does, as recorded in
//! `intl/expected.json` by `intl/node_expect.mjs`. `KNOWN` lists the cases that differ, each with why.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod node_table;

use common::{fast_limits, sandbox};
use serde_json::{Value, json};

const CASES: &str = include_str!("intl/cases.js");
const EXPECTED: &str = include_str!("intl/expected.json");

/// Cases where the sandbox knowingly differs from Node, with the reason (the README lists them too).
/// Where V8 in Deno differs from Node (20): a newer V8 and ICU than Node's, both engines' own.
const KNOWN_V8: &[(&str, &str)] = &[
    ("dtf-format-to-parts", "Deno's newer ICU/CLDR splits the formatted parts differently from Node 20's"),
    (
        "dtf-invalid-locale",
        "V8 15 says `Invalid language tag: en_US` where Node 20's V8 11 says `Incorrect locale information provided`",
    ),
    ("canonical-locales-invalid", "the same V8 message change as dtf-invalid-locale"),
    (
        "dtf-style-with-components",
        "V8 15 says `Invalid option : option` where Node 20's V8 says `Can't set option year when dateStyle is used`",
    ),
];

const KNOWN: &[(&str, &str)] = &[
    (
        "dtf-kolkata-in-en-in",
        "ICU4X's en-IN medium date pads the day and its day period is upper case (`05 Jan 2024, 8:34 PM`); \
         ICU4C (Node) writes `5 Jan 2024, 8:34 pm`: the same CLDR release, derived differently",
    ),
    (
        "dtf-long-date-in-many-locales",
        "Hindi's long date in ICU4X's data has a comma (`5 जनवरी, 2024`), ICU4C's does not; every other \
         locale of the case matches",
    ),
];

fn cases() -> Vec<(String, String)> {
    node_table::cases(CASES)
}

/// What the sandbox did, in the shape `node_expect.mjs` records.
fn observed(outcome: &mcp_guard_sandbox::outcome::Outcome) -> Value {
    node_table::observed(outcome, str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intl_behaves_as_on_node() {
    let expected: Value = serde_json::from_str(EXPECTED).unwrap();
    let cases = cases();
    assert!(cases.len() >= 40, "the table lost cases: {}", cases.len());
    let mut failures = Vec::new();
    let mut matched = 0;
    for (name, body) in &cases {
        let want = expected["cases"][name].clone();
        assert!(!want.is_null(), "{name}: not in expected.json: run node_expect.mjs");
        let code = format!("async () => {{\n{body}\n}}");
        let outcome = sandbox().run(&code, &fast_limits()).await;
        let got = observed(&outcome);
        // QuickJS's Intl is ICU4X in the host; V8's is its own ICU, newer than Node 20's.
        let known = if common::on_v8() { KNOWN_V8 } else { KNOWN }.iter().any(|(n, _)| n == name);
        if got == want {
            matched += 1;
            assert!(!known, "{name}: listed in KNOWN but now matches Node: remove it from KNOWN");
        } else if !known {
            failures.push(format!("{name}:\n  node:    {want}\n  sandbox: {got}"));
        }
    }
    eprintln!("{matched} of {} cases match Node; {} known differences", cases.len(), KNOWN.len());
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from Node:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Intl reaches the host only through functions the prelude keeps to itself, oversized input is refused
/// before the host copies it, and guest values that are not what the options expect are exceptions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_behind_intl_is_out_of_reach() {
    // Unvalidated: the validator refuses `globalThis` as a value, and the runtime must hold without it.
    let body = r#"
        const seen = new Set();
        const found = [];
        const walk = (v, path, depth) => {
            if (v === null || (typeof v !== "object" && typeof v !== "function") || seen.has(v) || depth > 5) return;
            seen.add(v);
            for (const k of Reflect.ownKeys(v)) {
                let d;
                try { d = Object.getOwnPropertyDescriptor(v, k); } catch (e) { continue; }
                for (const x of [d.value, d.get, d.set]) {
                    if (typeof x === "function" && ["intl", "intlModule", "hostIntl", "host", "hostJson"].includes(x.name)) {
                        found.push(`${path}.${String(k)}`);
                    }
                    walk(x, `${path}.${String(k)}`, depth + 1);
                }
            }
            walk(Object.getPrototypeOf(v), `${path}.__proto__`, depth + 1);
        };
        walk(Intl, "Intl", 0);
        walk(Object.getOwnPropertyDescriptor(globalThis, "Intl").get, "get Intl", 0);
        walk(new Intl.DateTimeFormat(), "dtf", 0);
        walk(new Intl.NumberFormat().format, "nf.format", 0);
        walk(Date.prototype.toLocaleString, "toLocaleString", 0);
        walk(String.prototype.localeCompare, "localeCompare", 0);
        const errors = [];
        const attempt = (f) => { try { f(); errors.push("no error"); } catch (e) { errors.push(`${e.name}: ${e.message}`.slice(0, 40)); } };
        attempt(() => "a".localeCompare("x".repeat(2 << 20)));
        attempt(() => new Intl.ListFormat("en").format(Array(300000).fill("abcd")));
        attempt(() => new Intl.DateTimeFormat(Array(2000).fill("en")));
        attempt(() => new Intl.DateTimeFormat("en", { timeZone: "x".repeat(100000) }));
        attempt(() => Intl.DateTimeFormat.prototype.format.call({}));
        attempt(() => new Intl.NumberFormat("en").format(1e308));
        attempt(() => new Intl.DateTimeFormat("en").format(8.64e15 + 1));
        // Many distinct formatters: the host's cache is bounded, and every one still works.
        let last = "";
        for (let i = 0; i < 600; i++) last = new Intl.NumberFormat("en", { minimumIntegerDigits: 1 + (i % 21), maximumFractionDigits: i % 20 }).format(i);
        return { found, errors, last };
    "#;
    let outcome = common::run_unvalidated(body, &fast_limits()).await;
    let result = common::completed(&outcome);
    assert_eq!(result["found"], json!([]), "{result}");
    assert_eq!(result["last"], json!("000,000,000,599"), "{result}");
    if common::on_v8() {
        // V8's Intl is native to its isolate: there is no host copy to bound.
        return;
    }
    let errors: Vec<&str> =
        result["errors"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(errors[0].starts_with("RangeError: Intl input too large"), "{result}");
    assert!(errors[1].starts_with("RangeError: Intl input too large"), "{result}");
    assert!(errors[2].starts_with("RangeError: Incorrect locale"), "{result}");
    assert!(errors[3].starts_with("RangeError: Invalid time zone specified"), "{result}");
    assert!(errors[4].starts_with("TypeError: Method get Intl.DateTimeFor"), "{result}");
    assert_eq!(errors[5], "no error", "{result}");
    assert!(errors[6].starts_with("RangeError: Invalid time value"), "{result}");
    assert_eq!(result["last"], json!("000,000,000,599"), "{result}");
}
