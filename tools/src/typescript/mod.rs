//! TypeScript declarations for the `mcp` binding object, generated from the JSON Schemas MCP tools declare.
//!
//! Agents write code against `await mcp.<server>.<tool>(args)`; the declarations produced here tell them
//! (and any type checker) what each tool takes and returns. Schemas come from upstream servers, so they
//! are untrusted: every function here is total (never panics), deterministic, and bounded in depth and
//! output size whatever the schema looks like. Text that ends up inside doc comments is sanitised so that
//! it can never close the comment early.

mod docs;
mod schema;
#[cfg(test)]
mod tests;

use serde_json::Value;

pub use self::schema::schema_to_type;
use self::{
    docs::{description_of, doc_comment, doc_lines, one_line},
    schema::{Renderer, has_required, property_key},
};

/// Deepest schema nesting rendered; anything deeper becomes `unknown`.
pub(super) const MAX_DEPTH: usize = 32;
/// Most `$ref`s being expanded inside one another at once.
pub(super) const MAX_REF_NESTING: usize = 16;
/// How many times one `$ref` may appear in the chain being expanded (2 = a recursive type is unrolled once).
pub(super) const MAX_REF_REPEAT: usize = 2;
/// Most schema nodes rendered for one top-level schema; beyond it everything is `unknown`. This bounds the
/// output of schemas whose `$ref`s fan out exponentially.
pub(super) const NODE_BUDGET: usize = 5_000;
/// Longest description (in chars) kept in a doc comment.
pub(super) const MAX_DESCRIPTION_CHARS: usize = 600;
/// Longest property name (in chars) kept in an `@param` tag.
pub(super) const MAX_PARAM_NAME_CHARS: usize = 100;
/// Objects without comments are written on one line when they fit in this many bytes.
pub(super) const INLINE_OBJECT_WIDTH: usize = 72;
/// One-line doc comments are used for single-line text up to this many bytes.
pub(super) const SINGLE_LINE_COMMENT_WIDTH: usize = 96;
pub(super) const INDENT: &str = "  ";

/// One MCP tool to declare.
#[derive(Debug, Clone, Copy)]
pub struct ToolDecl<'a> {
    /// The JavaScript identifier the tool is called by: `mcp.<server>.<ident>(...)`.
    pub ident: &'a str,
    /// The tool's MCP name.
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub input_schema: &'a Value,
    pub output_schema: Option<&'a Value>,
}

/// One MCP server and the tools it exposes to sandboxed code.
#[derive(Debug, Clone)]
pub struct ServerDecl<'a> {
    /// The JavaScript identifier of the server: `mcp.<ident>`.
    pub ident: &'a str,
    /// The server's name.
    pub name: &'a str,
    pub tools: Vec<ToolDecl<'a>>,
}

/// One tool's declaration as a method signature with a doc comment, e.g.
///
/// ```text
/// /**
///  * Echoes text back.
///  * @param args.text The text.
///  */
/// echo(args: { text: string }): Promise<unknown>;
/// ```
///
/// Descriptions of the top-level arguments go into `@param` tags rather than onto the properties. The
/// result type comes from the output schema (`unknown` without one). The argument is optional when the
/// input schema requires nothing. No trailing newline.
pub fn tool_declaration(tool: &ToolDecl<'_>) -> String {
    let mut doc: Vec<String> = tool.description.map(doc_lines).unwrap_or_default();
    if tool.ident != tool.name {
        doc.push(format!("MCP tool `{}`.", one_line(tool.name, MAX_PARAM_NAME_CHARS)));
    }
    if let Some(properties) = tool.input_schema.get("properties").and_then(Value::as_object) {
        for (name, schema) in properties {
            if let Some(description) = description_of(schema) {
                let text = one_line(description, MAX_DESCRIPTION_CHARS);
                if !text.is_empty() {
                    doc.push(format!("@param args.{} {}", one_line(name, MAX_PARAM_NAME_CHARS), text));
                }
            }
        }
    }

    let input = Renderer::new(tool.input_schema, true).render_root();
    let optional = !has_required(tool.input_schema);
    let output = match tool.output_schema {
        Some(schema) => Renderer::new(schema, false).render_root(),
        None => "unknown".to_owned(),
    };

    let mut out = doc_comment(&doc, 0);
    out.push_str(&format!(
        "{}(args{}: {}): Promise<{}>;",
        property_key(tool.ident),
        if optional { "?" } else { "" },
        input,
        output
    ));
    out
}

/// The whole API: the `McpToolError` class and `declare const mcp: { server: { ...tools } ... };`, each
/// server under a doc comment naming the MCP server. Servers and tools keep the order given.
pub fn declarations(servers: &[ServerDecl<'_>]) -> String {
    let mut out = String::new();
    out.push_str("/** The error a failed MCP tool call rejects with. */\n");
    out.push_str("declare class McpToolError extends Error {\n");
    out.push_str("  /** The server the failed call went to. */\n");
    out.push_str("  server: string;\n");
    out.push_str("  /** The tool that was called. */\n");
    out.push_str("  tool: string;\n");
    out.push_str("}\n\n");
    out.push_str(
        "/** The MCP tools this code may call, by server: `await mcp.<server>.<tool>(args)`. \
         A failed call rejects with McpToolError. */\n",
    );
    if servers.is_empty() {
        out.push_str("declare const mcp: {};\n");
        return out;
    }
    out.push_str("declare const mcp: {\n");
    for server in servers {
        out.push_str(&doc_comment(&[format!("MCP server `{}`.", one_line(server.name, 200))], 1));
        let key = property_key(server.ident);
        if server.tools.is_empty() {
            out.push_str(&format!("{INDENT}{key}: {{}};\n"));
            continue;
        }
        out.push_str(&format!("{INDENT}{key}: {{\n"));
        for tool in &server.tools {
            for line in tool_declaration(tool).lines() {
                if !line.is_empty() {
                    out.push_str(INDENT);
                    out.push_str(INDENT);
                    out.push_str(line);
                }
                out.push('\n');
            }
        }
        out.push_str(&format!("{INDENT}}};\n"));
    }
    out.push_str("};\n");
    out
}
