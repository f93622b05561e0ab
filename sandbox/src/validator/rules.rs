//! Stable rule ids reported in [`super::Rejection::rule`]. Callers may match on these strings, so
//! never rename one; add new ids instead.

/// The source is larger than `ValidateOptions::max_code_bytes`.
pub const CODE_TOO_LARGE: &str = "code-too-large";
/// The source is empty or whitespace only.
pub const EMPTY_CODE: &str = "empty-code";
/// The parser (or semantic analysis: redeclarations, strict-mode errors) rejected the source.
pub const SYNTAX_ERROR: &str = "syntax-error";
/// Nesting (or one statement without `;`/`,`) is deep enough to exhaust the parser's stack.
pub const TOO_DEEPLY_NESTED: &str = "too-deeply-nested";
/// Valid syntax we do not accept: what the nesting pre-scan cannot classify safely (a `/` right
/// after `}`, `of` or `>`, `<!--`), decorators, which the QuickJS engine does not support, and
/// computed property names, reflection arguments or timer arguments built from a constant chain too
/// long for the constant folder to check (refused rather than passed unchecked).
pub const UNSUPPORTED_SYNTAX: &str = "unsupported-syntax";
/// `eval`, referenced or reached as a property.
pub const NO_EVAL: &str = "no-eval";
/// `Function` and friends, and any `constructor` property access (which reaches it).
pub const NO_FUNCTION_CONSTRUCTOR: &str = "no-function-constructor";
/// `import`/`export` declarations, `import()`, `import.meta`.
pub const NO_IMPORT: &str = "no-import";
/// The CommonJS `require` global.
pub const NO_REQUIRE: &str = "no-require";
/// `with` statements.
pub const NO_WITH: &str = "no-with";
/// `setTimeout`/`setInterval`/`setImmediate` given code as a string.
pub const NO_STRING_TIMER: &str = "no-string-timer";
/// The Node.js `process` global.
pub const NO_PROCESS: &str = "no-process";
/// The `Deno` global.
pub const NO_DENO: &str = "no-deno";
/// The `Bun` global.
pub const NO_BUN: &str = "no-bun";
/// CommonJS module globals: `module`, `exports`, `__dirname`, `__filename`.
pub const NO_MODULE: &str = "no-module";
/// Writes through the global object, the global object used as a value, implicit globals.
///
/// Best-effort: the rule sees the global object only where the source names it (`globalThis`,
/// `window`, `self`, `global`, top-level `this` in the function form, constant computed keys). A key
/// known only at runtime (`globalThis[name]` with `name` computed) still hands the global object to
/// code. That is contained by the engine, not by this rule: every execution gets a fresh context, and
/// the global object has no `eval`, working `Function` constructor, string timers or host objects.
pub const NO_GLOBAL_WRITE: &str = "no-global-write";
/// The validator itself failed (a bug or resource exhaustion); the code was not run.
pub const INTERNAL_ERROR: &str = "internal-error";

/// Every rule id, for documentation and tests.
pub const ALL: &[&str] = &[
    CODE_TOO_LARGE,
    EMPTY_CODE,
    SYNTAX_ERROR,
    TOO_DEEPLY_NESTED,
    UNSUPPORTED_SYNTAX,
    NO_EVAL,
    NO_FUNCTION_CONSTRUCTOR,
    NO_IMPORT,
    NO_REQUIRE,
    NO_WITH,
    NO_STRING_TIMER,
    NO_PROCESS,
    NO_DENO,
    NO_BUN,
    NO_MODULE,
    NO_GLOBAL_WRITE,
    INTERNAL_ERROR,
];

/// Names of the global object. Unresolved, they may only be the object of a property read.
pub(crate) const GLOBAL_OBJECT_NAMES: &[&str] = &["globalThis", "global", "window", "self"];

/// Forbidden global names (as unresolved identifiers or as properties of the global object), with
/// the rule and a short explanation for each.
pub(crate) fn forbidden_global(name: &str) -> Option<(&'static str, &'static str)> {
    Some(match name {
        "Function" | "AsyncFunction" | "GeneratorFunction" | "AsyncGeneratorFunction" => {
            (NO_FUNCTION_CONSTRUCTOR, "the Function constructor compiles strings into code")
        }
        "require" => (NO_REQUIRE, "`require` loads host modules"),
        "process" => (NO_PROCESS, "`process` exposes the host environment"),
        "Deno" => (NO_DENO, "`Deno` exposes the host runtime"),
        "Bun" => (NO_BUN, "`Bun` exposes the host runtime"),
        "module" | "exports" | "__dirname" | "__filename" => {
            (NO_MODULE, "CommonJS module globals do not exist in the sandbox")
        }
        _ => return None,
    })
}

/// Timer functions that also accept a string of code.
pub(crate) const TIMERS: &[&str] = &["setTimeout", "setInterval", "setImmediate"];
