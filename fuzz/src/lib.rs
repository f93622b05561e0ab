//! What each fuzz target checks. Not only "no panic": every target states an invariant of the code it
//! drives, and panics (which libFuzzer reports as a crash) when the invariant breaks.
//!
//! - [`validator`]: arbitrary code through the validator; when it accepts, an independent, much simpler
//!   check of the script it produced finds none of the forms the rules forbid.
//! - [`typescript`]: the TypeScript declarations rendered from an arbitrary JSON Schema always parse.
//! - [`config`]: a configuration that parses is written and read back unchanged.
//! - [`quantity`]: a size or duration that parses is printed and read back unchanged.
//! - [`host_frames`]: the executor ⇄ isolate-host frames: decoding arbitrary bytes never panics, and
//!   encode ∘ decode is the identity on what decodes.
//! - [`proxy_messages`]: the executor ⇄ binding-proxy messages: the same, and what the proxy reports
//!   converts into the tool index without panicking.
//!
//! The targets in `fuzz_targets/` call these (`make fuzz`); `tests/corpus.rs` runs every committed
//! corpus and crash reproducer through them on stable, in `make test`.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use mcp_guard_crds::{ByteSize, DurationSpec, GuardConfig};
use mcp_guard_proto::internal;
use mcp_guard_sandbox::engine::process::protocol::{self, FromHost, ToHost};
use mcp_guard_sandbox::validator::{ValidateOptions, validate};
use mcp_guard_tools::ServerTools;
use oxc::allocator::Allocator;
use oxc::ast::ast::{BindingIdentifier, CallExpression, Expression, ImportExpression, NewExpression};
use oxc::ast_visit::{Visit, walk};
use oxc::parser::Parser;
use oxc::span::SourceType;
use prost::Message;

/// Names whose call (as an unshadowed global) the validator's rules forbid.
const FORBIDDEN_CALLEES: [&str; 3] = ["eval", "Function", "require"];

/// The validator, then an independent check of what it accepted.
pub fn validator(data: &[u8]) {
    let Ok(source) = std::str::from_utf8(data) else { return };
    let Ok(prepared) = validate(source, &ValidateOptions { max_code_bytes: 256 * 1024 }) else { return };
    let found = forbidden_forms(&prepared.script);
    assert!(found.is_empty(), "the validator accepted {found:?} in:\n{source}\nas:\n{}", prepared.script);
}

/// The forbidden forms a plain walk of the script finds: a call or `new` of `eval`, `Function` or
/// `require` that no declaration in the script shadows, a call of a `.constructor` property, and
/// dynamic `import()`. It shares nothing with the validator but the parser.
pub fn forbidden_forms(script: &str) -> Vec<String> {
    let allocator = Allocator::default();
    let parsed = Parser::new(&allocator, script, SourceType::cjs()).parse();
    assert!(
        !parsed.panicked && !parsed.diagnostics.has_errors(),
        "the validator produced a script that does not parse: {:?}\n{script}",
        parsed.diagnostics.errors().next()
    );
    let mut walker = Forms::default();
    walker.visit_program(&parsed.program);
    let declared = walker.declared;
    walker
        .found
        .into_iter()
        .filter(|(name, form)| form != "call" || !declared.contains(name))
        .map(|(name, form)| format!("{form} of {name}"))
        .collect()
}

#[derive(Default)]
struct Forms {
    declared: BTreeSet<String>,
    found: Vec<(String, String)>,
}

impl Forms {
    fn callee(&mut self, callee: &Expression<'_>) {
        match callee {
            Expression::Identifier(id) if FORBIDDEN_CALLEES.contains(&id.name.as_str()) => {
                self.found.push((id.name.to_string(), "call".into()));
            }
            Expression::StaticMemberExpression(m) if m.property.name == "constructor" => {
                self.found.push(("constructor".into(), "constructor call".into()));
            }
            Expression::ParenthesizedExpression(p) => self.callee(&p.expression),
            _ => {}
        }
    }
}

impl<'a> Visit<'a> for Forms {
    fn visit_binding_identifier(&mut self, it: &BindingIdentifier<'a>) {
        self.declared.insert(it.name.to_string());
    }

    fn visit_call_expression(&mut self, it: &CallExpression<'a>) {
        self.callee(&it.callee);
        walk::walk_call_expression(self, it);
    }

    fn visit_new_expression(&mut self, it: &NewExpression<'a>) {
        self.callee(&it.callee);
        walk::walk_new_expression(self, it);
    }

    fn visit_import_expression(&mut self, it: &ImportExpression<'a>) {
        self.found.push(("import".into(), "dynamic import".into()));
        walk::walk_import_expression(self, it);
    }
}

/// Declarations rendered from an arbitrary JSON Schema (as input and as output schema) parse as
/// TypeScript.
pub fn typescript(data: &[u8]) {
    let Ok(schema) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let tool = mcp_guard_tools::typescript::ToolDecl {
        ident: "tool",
        name: "tool",
        description: schema.get("description").and_then(|d| d.as_str()),
        input_schema: &schema,
        output_schema: Some(&schema),
    };
    let server =
        mcp_guard_tools::typescript::ServerDecl { ident: "server", name: "server", tools: vec![tool] };
    let text = mcp_guard_tools::typescript::declarations(&[server]);
    let allocator = Allocator::default();
    let parsed = Parser::new(&allocator, &text, SourceType::d_ts()).parse();
    assert!(
        !parsed.panicked && !parsed.diagnostics.has_errors(),
        "declarations do not parse: {:?}\nschema: {schema}\n{text}",
        parsed.diagnostics.errors().next()
    );
}

/// A configuration that parses and validates is written out and read back to the same value.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(config) = GuardConfig::from_yaml(text, "fuzz") else { return };
    let written = serde_saphyr::to_string(&config).expect("a parsed config serializes");
    let again = GuardConfig::from_yaml(&written, "written")
        .unwrap_or_else(|e| panic!("a written config does not read back: {e}\n{written}"));
    assert_eq!(again, config, "written as:\n{written}");
}

/// Sizes and durations: what parses prints as something that parses to the same value.
pub fn quantity(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(size) = text.parse::<ByteSize>() {
        let printed = size.to_string();
        assert_eq!(printed.parse::<ByteSize>().ok(), Some(size), "{text:?} printed as {printed:?}");
    }
    if let Ok(duration) = text.parse::<DurationSpec>() {
        let printed = duration.to_string();
        assert_eq!(printed.parse::<DurationSpec>().ok(), Some(duration), "{text:?} printed as {printed:?}");
    }
}

thread_local! {
    static RUNTIME: tokio::runtime::Runtime =
        tokio::runtime::Builder::new_current_thread().build().expect("a current-thread runtime");
}

/// Frames either side of the isolate-host channel reads, from arbitrary bytes: the first byte picks the
/// direction, the rest is the stream. What decodes encodes and decodes to the same JSON.
pub fn host_frames(data: &[u8]) {
    let Some((&direction, mut stream)) = data.split_first() else { return };
    RUNTIME.with(|rt| {
        rt.block_on(async {
            if direction % 2 == 0 {
                while let Ok(msg) = protocol::read_frame::<_, ToHost>(&mut stream).await {
                    round_trip(&msg).await;
                }
            } else {
                while let Ok(msg) = protocol::read_frame::<_, FromHost>(&mut stream).await {
                    round_trip(&msg).await;
                }
            }
        })
    });
}

async fn round_trip<T>(msg: &T)
where
    T: serde::Serialize + for<'de> serde::Deserialize<'de>,
{
    let mut buffer = Vec::new();
    protocol::write_frame(&mut buffer, msg).await.expect("a decoded frame encodes");
    let again: T = protocol::read_frame(&mut buffer.as_slice()).await.expect("an encoded frame decodes");
    assert_eq!(serde_json::to_value(&again).unwrap(), serde_json::to_value(msg).unwrap());
}

/// Binding-proxy messages from arbitrary bytes: each that decodes re-encodes to an equal message; a
/// proxy's tool list converts into the tool index.
pub fn proxy_messages(data: &[u8]) {
    fn check<M: Message + Default + PartialEq + std::fmt::Debug>(data: &[u8]) -> Option<M> {
        let msg = M::decode(data).ok()?;
        let encoded = msg.encode_to_vec();
        let again = M::decode(encoded.as_slice()).expect("an encoded message decodes");
        // Compared as encodings, not with `==`: a double field may hold NaN (a compromised executor can
        // send one), which is never equal to itself, yet round-trips bit for bit.
        assert_eq!(again.encode_to_vec(), encoded, "{again:?} != {msg:?}");
        Some(msg)
    }
    check::<internal::CallToolRequest>(data);
    check::<internal::CallToolResponse>(data);
    check::<internal::BeginExecutionRequest>(data);
    check::<internal::EndExecutionRequest>(data);
    if let Some(list) = check::<internal::ListToolsResponse>(data) {
        let servers: Vec<ServerTools> = list.servers.into_iter().map(ServerTools::from).collect();
        let index = mcp_guard_tools::ToolIndex::new(servers);
        for detail in ["names", "summaries", "full"] {
            let answer = mcp_guard_tools::discovery::search(
                &index,
                &serde_json::json!({"query": "a", "detail": detail}),
            );
            assert!(answer.is_ok(), "{answer:?}");
        }
    }
}
