//! Parse → semantic checks → strip TypeScript → rule checks → generate the prepared script.
//! Runs on a stack big enough for the nesting `depth::scan` allowed (see `mod.rs`).

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use oxc::allocator::Allocator;
use oxc::ast::ast::{Expression, Program, Statement};
use oxc::codegen::{Codegen, CodegenOptions, CommentOptions};
use oxc::diagnostics::OxcDiagnostic;
use oxc::parser::{ParseOptions, Parser};
use oxc::semantic::{SemanticBuilder, SemanticBuilderReturn};
use oxc::span::{SourceType, Span};
use oxc::transformer::{TransformOptions, Transformer};

use super::check::{self, Violation};
use super::positions::{LineIndex, PositionMap};
use super::{Prepared, Rejection, rules};

/// Name of the source in the source map (and in transformer diagnostics).
const SOURCE_NAME: &str = "sandbox.ts";

/// Wrapper of the default form: an async function body. Its first line holds `BODY_OPEN`.
const PRELUDE: &str = "\"use strict\";\n";
const BODY_OPEN: &str = "(async function () {";
const BODY_CLOSE: &str = "\n})";
/// Wrapper of the function form: the function expression itself is the completion value.
const FUNCTION_OPEN: &str = "(";
const FUNCTION_CLOSE: &str = "\n)";

/// `TransformOptions::default()` enables only the TypeScript transform (types, enums, namespaces,
/// parameter properties); every ES-version lowering in `env` is off, so async functions, classes,
/// optional chaining, `using` etc. reach QuickJS unchanged, and no runtime helper (which would be
/// imported) is ever needed. JSX is not parsed for `.ts` sources.
static TRANSFORM_OPTIONS: LazyLock<TransformOptions> = LazyLock::new(TransformOptions::default);

pub(super) fn run(source: &str) -> Result<Prepared, Rejection> {
    let reject = |v: Violation| {
        let (line, column) = LineIndex::new(source).line_col(v.offset as usize);
        Rejection { rule: v.rule.to_owned(), line, column, message: v.message }
    };

    let allocator = Allocator::default();
    // Module goal: strict mode and top-level `await`; `return` is allowed because the code is the
    // body of an async function.
    let options = ParseOptions { allow_return_outside_function: true, ..ParseOptions::default() };
    let parsed =
        Parser::new(&allocator, source, SourceType::ts().with_module(true)).with_options(options).parse();
    let mut program = parsed.program;
    if parsed.panicked || parsed.diagnostics.has_errors() {
        return Err(reject(syntax_error(&program, parsed.diagnostics.errors().next())));
    }
    if program.body.is_empty() && program.directives.is_empty() {
        let message = "the code contains no statements (only comments)".into();
        return Err(reject(Violation::new(rules::EMPTY_CODE, Span::new(0, 1), message)));
    }
    let module_violation = check::module_syntax(&program);

    // Semantic checks on the source as written: redeclarations, strict-mode errors, `with`.
    // Enum evaluation is required by the TypeScript enum transform.
    let SemanticBuilderReturn { semantic, diagnostics } =
        SemanticBuilder::new().with_check_syntax_error(true).with_enum_eval(true).build(&program);
    if diagnostics.has_errors() {
        return Err(reject(syntax_error(&program, diagnostics.errors().next())));
    }

    let transformed = Transformer::new(&allocator, Path::new(SOURCE_NAME), &TRANSFORM_OPTIONS)
        .build_with_scoping(semantic.into_scoping(), &mut program);
    if let Some(error) = transformed.diagnostics.errors().next() {
        return Err(reject(diagnostic_violation(error)));
    }

    // Fresh semantic analysis of the JavaScript that will run (nodes are needed to find `const`
    // initialisers for constant folding).
    let runtime = SemanticBuilder::new().with_build_nodes(true).build(&program).semantic;
    let function_form = is_function_form(&program);
    let violation = check::check(&program, &runtime, function_form);
    if let Some(v) = check::earliest(module_violation, violation) {
        return Err(reject(v));
    }
    drop(runtime);
    // A `#!` line is only valid at the very start of a file, not inside the wrapper.
    program.hashbang = None;

    let declared_main = single_function_declaration(&program);
    let prepared = generate(&program, source, function_form, declared_main.as_deref())
        .map_err(|message| Rejection { rule: rules::INTERNAL_ERROR.into(), line: 1, column: 1, message })?;
    reparse(&prepared.script)?;
    Ok(prepared)
}

/// The script that will run must itself parse, as plain JavaScript. The checks above saw the AST; the
/// engine sees this text. They can only differ where the parser recovered from an error without
/// reporting it (oxc 0.146 loses lexer errors inside TypeScript's speculative parses: `a<\<0t` prints
/// the invalid literal `0t`); such code is refused here rather than handed to the engine.
fn reparse(script: &str) -> Result<(), Rejection> {
    let allocator = Allocator::default();
    let parsed = Parser::new(&allocator, script, SourceType::cjs()).parse();
    if parsed.panicked || parsed.diagnostics.has_errors() {
        let detail = parsed.diagnostics.errors().next().map(|e| e.to_string()).unwrap_or_default();
        return Err(Rejection {
            rule: rules::SYNTAX_ERROR.into(),
            line: 1,
            column: 1,
            message: format!("the code does not parse as written ({detail}); check it for stray characters"),
        });
    }
    Ok(())
}

/// Exactly one expression statement whose expression is an (async) arrow function or function
/// expression, possibly parenthesised: the engine calls it with `mcp`.
fn is_function_form(program: &Program<'_>) -> bool {
    match program.body.as_slice() {
        [Statement::ExpressionStatement(statement)] if program.directives.is_empty() => matches!(
            statement.expression.without_parentheses(),
            Expression::ArrowFunctionExpression(_) | Expression::FunctionExpression(_)
        ),
        _ => false,
    }
}

/// A program that is exactly one named function declaration (`async function main(mcp) {...}`): models
/// often write that and forget the call. The body form then calls it with `mcp` and returns its result.
fn single_function_declaration(program: &Program<'_>) -> Option<String> {
    match program.body.as_slice() {
        [Statement::FunctionDeclaration(f)] => f.id.as_ref().map(|id| id.name.to_string()),
        _ => None,
    }
}

fn generate(
    program: &Program<'_>,
    source: &str,
    function_form: bool,
    declared_main: Option<&str>,
) -> Result<Prepared, String> {
    let options = CodegenOptions {
        source_map_path: Some(PathBuf::from(SOURCE_NAME)),
        // Comments are dropped: nothing in them is needed to run.
        comments: CommentOptions::disabled(),
        ..CodegenOptions::default()
    };
    let generated = Codegen::new().with_options(options).build(program);
    let code = generated.code;
    let (open, body, close) = if function_form {
        // Codegen prints the single expression statement as `<expression>;\n`.
        let expression = code
            .trim_end()
            .strip_suffix(';')
            .ok_or("generated code for the function form does not end with `;`")?;
        (FUNCTION_OPEN, expression, FUNCTION_CLOSE)
    } else {
        (BODY_OPEN, code.as_str(), BODY_CLOSE)
    };
    let call = declared_main.map(|name| format!("\nreturn await {name}(mcp);")).unwrap_or_default();
    let script = format!("{PRELUDE}{open}{body}{call}{close}");
    let positions = match &generated.map {
        // The generated code starts on script line 2, after `open`.
        Some(map) => PositionMap::new(map, source, body, 2, open.chars().count() as u32),
        None => PositionMap::default(),
    };
    Ok(Prepared { script, positions })
}

/// The rejection for a parser or semantic error: `no-with` if the program has a `with`
/// statement (strict mode forbids it; the dedicated rule is clearer), else the first error.
fn syntax_error(program: &Program<'_>, error: Option<&OxcDiagnostic>) -> Violation {
    if let Some(with) = check::find_with(program) {
        return with;
    }
    match error {
        Some(error) => diagnostic_violation(error),
        None => Violation::new(rules::SYNTAX_ERROR, Span::new(0, 1), "the code could not be parsed".into()),
    }
}

/// The error's position is its primary label, else its first label (for a redeclaration, the
/// first declaration).
fn diagnostic_violation(error: &OxcDiagnostic) -> Violation {
    let label = error.labels.iter().find(|l| l.primary()).or_else(|| error.labels.first());
    let span = label.map_or(Span::new(0, 1), |l| l.span());
    let mut message: String = error.message.split_whitespace().collect::<Vec<_>>().join(" ");
    if message.is_empty() {
        message = "syntax error".into();
    }
    Violation::new(rules::SYNTAX_ERROR, span, message)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The second net: a prepared script that does not parse is refused as a syntax error, whatever
    /// let it through.
    #[test]
    fn output_that_does_not_parse_is_refused() {
        let r = reparse("\"use strict\";\n(async function () {return 0t < 2;\n})").unwrap_err();
        assert_eq!(r.rule, rules::SYNTAX_ERROR);
        assert!(r.message.contains("does not parse as written"), "{r:?}");
        assert!(reparse("\"use strict\";\n(async function () {return 1 < 2;\n})").is_ok());
    }
}
