//! Layer 1 of the defence: static validation of untrusted TypeScript/JavaScript on a real syntax tree
//! (oxc), before anything runs. It also strips TypeScript types and wraps the code into the one shape the
//! engine runs. The engine never relies on this layer: everything rejected here is also unavailable at
//! runtime. See `rules.rs` for the rule ids.
//!
//! Steps: size and emptiness checks; a linear pre-scan that bounds nesting (`depth.rs`: oxc has no
//! recursion limit); then, on a stack sized for what the pre-scan allowed, parsing, semantic
//! checks, TypeScript stripping, the rule checks on the resulting JavaScript (`check.rs`, with
//! constant folding in `fold.rs`) and code generation with a source map (`pipeline.rs`,
//! `positions.rs`).

mod check;
mod depth;
#[cfg(test)]
mod depth_props;
mod fold;
mod pipeline;
mod positions;
pub mod rules;

use std::panic::{AssertUnwindSafe, catch_unwind};

use serde::{Deserialize, Serialize};

pub use positions::PositionMap;

/// Why code was rejected before it ran. Serialised into the `rejected` outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rejection {
    /// Stable rule id, for example `no-eval` or `syntax-error`.
    pub rule: String,
    /// 1-based line in the submitted source.
    pub line: u32,
    /// 1-based column (in characters) in the submitted source.
    pub column: u32,
    /// One-line, human-readable reason.
    pub message: String,
}

/// Validated code, ready for the engine.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Prepared {
    /// A strict-mode global script whose completion value is the function to call.
    /// The engine calls it with one argument, the `mcp` bindings object, and awaits the result.
    pub script: String,
    /// Maps 1-based (line, column) positions in `script` back to the submitted source.
    pub positions: PositionMap,
}

/// Validation options.
#[derive(Debug, Clone)]
pub struct ValidateOptions {
    /// Maximum size of the submitted source in bytes.
    pub max_code_bytes: usize,
}

/// Nesting estimates up to this run on the caller's stack: well under 1 MB of stack even in debug
/// builds (about 2 KB per unit, see `depth.rs`), within any Rust thread's default 2 MB. This is
/// the common case and avoids the cost of a thread (~60-100 µs) per validation.
const INLINE_NESTING: u32 = 128;
/// Stack for deeper (but accepted) input: every shape at `depth::MAX_NESTING` passes on 32 MB in
/// debug builds. Only the pages actually used are committed.
const DEEP_STACK_BYTES: usize = 64 << 20;

/// Validate `source` (TypeScript or JavaScript) and prepare it for the engine.
///
/// Two forms are accepted. By default the code is the body of an async function (top-level
/// `await`; `return value` gives the result) and the script is
/// `"use strict";\n(async function () {<code>\n})`. A program that is exactly one function or
/// arrow function expression (`async (mcp) => { … }`) is used as that function instead:
/// `"use strict";\n(<function>\n)`.
pub fn validate(source: &str, options: &ValidateOptions) -> Result<Prepared, Rejection> {
    validate_with(source, options, false)
}

/// The stack a thread needs to validate any accepted nesting inline: what [`validate`] gives its own
/// thread for deep input (every shape at `depth::MAX_NESTING` passes on half of it in debug builds).
pub const DEEP_STACK_NEEDED: usize = DEEP_STACK_BYTES;

/// [`validate`] without starting a thread, whatever the nesting: for a thread whose stack is at least
/// [`DEEP_STACK_NEEDED`] (isolate threads), in a process that may start none (a confined isolate host).
pub fn validate_on_this_thread(source: &str, options: &ValidateOptions) -> Result<Prepared, Rejection> {
    validate_with(source, options, true)
}

fn validate_with(source: &str, options: &ValidateOptions, inline: bool) -> Result<Prepared, Rejection> {
    if source.len() > options.max_code_bytes || u32::try_from(source.len()).is_err() {
        return Err(rejection(
            rules::CODE_TOO_LARGE,
            1,
            1,
            format!(
                "the code is {} bytes, more than the limit of {} bytes",
                source.len(),
                options.max_code_bytes
            ),
        ));
    }
    if source.chars().all(|c| c.is_whitespace() || c == '\u{FEFF}') {
        return Err(rejection(rules::EMPTY_CODE, 1, 1, "the code is empty".into()));
    }
    match depth::scan(source) {
        depth::Scan::Depth(depth) if inline || depth <= INLINE_NESTING => run_guarded(source),
        depth::Scan::Depth(_) => run_on_deep_stack(source),
        depth::Scan::TooDeep(offset) => {
            let (line, column) = positions::LineIndex::new(source).line_col(offset);
            let message = format!(
                "the code is nested too deeply, or one statement is too long without `;` or `,` \
                 (nesting estimate above {})",
                depth::MAX_NESTING
            );
            Err(rejection(rules::TOO_DEEPLY_NESTED, line, column, message))
        }
        depth::Scan::TooManyAngles(offset) => {
            let (line, column) = positions::LineIndex::new(source).line_col(offset);
            let message = format!(
                "one statement leaves more than {} `<` open, or opens more than {} brackets after an \
                 open `<`; TypeScript parsing of such code can take very long: end statements with `;`, \
                 or split the comparison",
                depth::MAX_OPEN_ANGLES,
                depth::MAX_BRACKETS_AFTER_ANGLE
            );
            Err(rejection(rules::UNSUPPORTED_SYNTAX, line, column, message))
        }
        depth::Scan::Ambiguous(offset, after) => {
            let (line, column) = positions::LineIndex::new(source).line_col(offset);
            let message = if after == "`<!--`" {
                "HTML-like comments (`<!--`) are not supported".to_owned()
            } else {
                format!(
                    "a `/` right after {after} could be a division or a regular expression; \
                     wrap the expression in parentheses (or end the statement with `;`)"
                )
            };
            Err(rejection(rules::UNSUPPORTED_SYNTAX, line, column, message))
        }
    }
}

fn rejection(rule: &str, line: u32, column: u32, message: String) -> Rejection {
    Rejection { rule: rule.to_owned(), line, column, message }
}

/// Runs the pipeline; a panic inside oxc becomes an `internal-error` rejection, not a crash.
fn run_guarded(source: &str) -> Result<Prepared, Rejection> {
    catch_unwind(AssertUnwindSafe(|| pipeline::run(source))).unwrap_or_else(|_| {
        Err(rejection(rules::INTERNAL_ERROR, 1, 1, "the validator failed on this code".into()))
    })
}

fn run_on_deep_stack(source: &str) -> Result<Prepared, Rejection> {
    std::thread::scope(|scope| {
        let thread = std::thread::Builder::new()
            .name("mcp-guard-validate".into())
            .stack_size(DEEP_STACK_BYTES)
            .spawn_scoped(scope, || run_guarded(source));
        match thread {
            Ok(handle) => handle.join().unwrap_or_else(|_| {
                Err(rejection(rules::INTERNAL_ERROR, 1, 1, "the validator thread failed".into()))
            }),
            Err(error) => Err(rejection(
                rules::INTERNAL_ERROR,
                1,
                1,
                format!("could not start the validator thread: {error}"),
            )),
        }
    })
}
