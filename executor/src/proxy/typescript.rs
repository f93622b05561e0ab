//! TypeScript declarations for the `mcp` binding object, generated from the JSON Schemas MCP tools declare.
//!
//! Agents write code against `await mcp.<server>.<tool>(args)`; the declarations produced here tell them
//! (and any type checker) what each tool takes and returns. Schemas come from upstream servers, so they
//! are untrusted: every function here is total (never panics), deterministic, and bounded in depth and
//! output size whatever the schema looks like. Text that ends up inside doc comments is sanitised so that
//! it can never close the comment early.

use serde_json::{Map, Value};

/// Deepest schema nesting rendered; anything deeper becomes `unknown`.
const MAX_DEPTH: usize = 32;
/// Most `$ref`s being expanded inside one another at once.
const MAX_REF_NESTING: usize = 16;
/// How many times one `$ref` may appear in the chain being expanded (2 = a recursive type is unrolled once).
const MAX_REF_REPEAT: usize = 2;
/// Most schema nodes rendered for one top-level schema; beyond it everything is `unknown`. This bounds the
/// output of schemas whose `$ref`s fan out exponentially.
const NODE_BUDGET: usize = 5_000;
/// Longest description (in chars) kept in a doc comment.
const MAX_DESCRIPTION_CHARS: usize = 600;
/// Longest property name (in chars) kept in an `@param` tag.
const MAX_PARAM_NAME_CHARS: usize = 100;
/// Objects without comments are written on one line when they fit in this many bytes.
const INLINE_OBJECT_WIDTH: usize = 72;
/// One-line doc comments are used for single-line text up to this many bytes.
const SINGLE_LINE_COMMENT_WIDTH: usize = 96;
const INDENT: &str = "  ";

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

/// A JSON Schema (as MCP tools declare them: a draft 2020-12 / draft-07 subset) to a TypeScript type.
///
/// Supported: `type` (including arrays of types), `properties`/`required` (with descriptions as doc
/// comments), `additionalProperties`/`patternProperties` (index signatures), `items`/`prefixItems`/
/// `additionalItems`, `enum`, `const`, `anyOf`/`oneOf` (unions), `allOf` (intersections), `nullable`,
/// local `$ref`s (inlined, with recursion capped). Anything else is ignored; an empty schema or `true` is
/// `unknown`, `false` is `never`. Too deep or too large schemas degrade to `unknown`.
pub fn schema_to_type(schema: &Value) -> String {
    Renderer::new(schema, false).render_root()
}

/// Whether an input schema requires at least one property (if not, the argument is optional).
fn has_required(schema: &Value) -> bool {
    schema.get("required").and_then(Value::as_array).is_some_and(|r| r.iter().any(Value::is_string))
}

/// How tightly a rendered type binds, for parenthesising.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Prec {
    Union,
    Intersection,
    Primary,
}

#[derive(Debug, Clone)]
struct Ty {
    text: String,
    prec: Prec,
    /// The operands of a union or intersection (empty for a primary type), for flattening.
    operands: Vec<Ty>,
}

impl Ty {
    fn primary(text: impl Into<String>) -> Ty {
        Ty { text: text.into(), prec: Prec::Primary, operands: Vec::new() }
    }

    fn unknown() -> Ty {
        Ty::primary("unknown")
    }

    fn never() -> Ty {
        Ty::primary("never")
    }

    fn is_unknown(&self) -> bool {
        self.text == "unknown"
    }

    fn is_never(&self) -> bool {
        self.text == "never"
    }

    /// The text, parenthesised when it binds less tightly than `min`.
    fn at_least(&self, min: Prec) -> String {
        if self.prec < min { format!("({})", self.text) } else { self.text.clone() }
    }

    /// The operands of `self` under operator `prec`: itself, or its own operands when it is that
    /// operator already (so `(A | B) | A` flattens to `A | B`).
    fn flatten(self, prec: Prec) -> Vec<Ty> {
        if self.prec == prec && !self.operands.is_empty() { self.operands } else { vec![self] }
    }
}

/// `A | B | ...`, simplified: `unknown` absorbs everything, `never` disappears, nested unions are
/// flattened and duplicates go.
fn union(members: impl IntoIterator<Item = Ty>) -> Ty {
    let mut out: Vec<Ty> = Vec::new();
    for member in members.into_iter().flat_map(|m| m.flatten(Prec::Union)) {
        if member.is_unknown() {
            return Ty::unknown();
        }
        if member.is_never() || out.iter().any(|m| m.text == member.text) {
            continue;
        }
        out.push(member);
    }
    match out.len() {
        0 => Ty::never(),
        1 => out.swap_remove(0),
        _ => Ty {
            text: out.iter().map(|m| m.text.as_str()).collect::<Vec<_>>().join(" | "),
            prec: Prec::Union,
            operands: out,
        },
    }
}

/// `A & B & ...`, simplified: `never` absorbs everything, `unknown` disappears, nested intersections are
/// flattened and duplicates go.
fn intersection(members: impl IntoIterator<Item = Ty>) -> Ty {
    let mut out: Vec<Ty> = Vec::new();
    for member in members.into_iter().flat_map(|m| m.flatten(Prec::Intersection)) {
        if member.is_never() {
            return Ty::never();
        }
        if member.is_unknown() || out.iter().any(|m| m.text == member.text) {
            continue;
        }
        out.push(member);
    }
    match out.len() {
        0 => Ty::unknown(),
        1 => out.swap_remove(0),
        _ => Ty {
            text: out.iter().map(|m| m.at_least(Prec::Intersection)).collect::<Vec<_>>().join(" & "),
            prec: Prec::Intersection,
            operands: out,
        },
    }
}

/// The type a bare `"type": "object"` (no properties at all) becomes.
const ANY_OBJECT: &str = "{ [key: string]: unknown }";

struct Member {
    comment: Vec<String>,
    text: String,
}

struct Renderer<'a> {
    root: &'a Value,
    /// The `$ref`s being expanded, innermost last.
    refs: Vec<&'a str>,
    nodes: usize,
    /// Leave the descriptions of the root object's properties out (they go into `@param` tags).
    omit_root_comments: bool,
}

impl<'a> Renderer<'a> {
    fn new(root: &'a Value, omit_root_comments: bool) -> Self {
        Renderer { root, refs: Vec::new(), nodes: 0, omit_root_comments }
    }

    fn render_root(&mut self) -> String {
        // The root counts as being expanded, so `{"$ref": "#"}` cycles unroll like any other `$ref`.
        self.refs.push("#");
        let ty = self.render(self.root, 0, 0);
        self.refs.pop();
        ty.text
    }

    /// `schema` as a type. `depth` is the schema nesting depth, `indent` the indentation level of the line
    /// the type starts on (nested object members go one level deeper).
    fn render(&mut self, schema: &'a Value, depth: usize, indent: usize) -> Ty {
        self.nodes += 1;
        if depth > MAX_DEPTH || self.nodes > NODE_BUDGET {
            return Ty::unknown();
        }
        let obj = match schema {
            Value::Bool(false) => return Ty::never(),
            Value::Object(obj) => obj,
            _ => return Ty::unknown(),
        };

        let mut parts: Vec<Ty> = Vec::new();
        let base = self.base_type(obj, depth, indent);
        if let Some(Value::String(reference)) = obj.get("$ref") {
            parts.push(self.reference(reference, depth, indent));
        }
        if let Some(Value::Array(all)) = obj.get("allOf") {
            let members: Vec<Ty> = all.iter().map(|s| self.render(s, depth + 1, indent)).collect();
            parts.push(intersection(members));
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(Value::Array(any)) = obj.get(key) {
                let members: Vec<Ty> = any.iter().map(|s| self.render(s, depth + 1, indent)).collect();
                parts.push(union(members));
            }
        }
        if let Some(base) = base {
            // A bare `type: object` adds nothing next to composed parts that say more.
            let adds_nothing = base.text == ANY_OBJECT && parts.iter().any(|p| !p.is_unknown());
            if !adds_nothing {
                parts.insert(0, base);
            }
        }
        let ty = intersection(parts);
        if obj.get("nullable") == Some(&Value::Bool(true)) { union([ty, Ty::primary("null")]) } else { ty }
    }

    /// The part of the type given by `const`, `enum` or `type` (or implied by object/array keywords).
    fn base_type(&mut self, obj: &'a Map<String, Value>, depth: usize, indent: usize) -> Option<Ty> {
        if let Some(value) = obj.get("const") {
            return Some(literal(value, 0));
        }
        if let Some(Value::Array(values)) = obj.get("enum") {
            return Some(union(values.iter().map(|v| literal(v, 0))));
        }
        match obj.get("type") {
            Some(Value::String(name)) => Some(self.typed(name, obj, depth, indent)),
            Some(Value::Array(names)) => {
                let members: Vec<Ty> = names
                    .iter()
                    .map(|n| match n.as_str() {
                        Some(name) => self.typed(name, obj, depth, indent),
                        None => Ty::unknown(),
                    })
                    .collect();
                Some(union(members))
            }
            Some(_) => None,
            None => {
                if ["properties", "additionalProperties", "patternProperties"]
                    .iter()
                    .any(|k| obj.contains_key(*k))
                {
                    Some(self.object(obj, depth, indent))
                } else if ["items", "prefixItems"].iter().any(|k| obj.contains_key(*k)) {
                    Some(self.array(obj, depth, indent))
                } else {
                    None
                }
            }
        }
    }

    fn typed(&mut self, name: &str, obj: &'a Map<String, Value>, depth: usize, indent: usize) -> Ty {
        match name {
            "string" => Ty::primary("string"),
            "number" | "integer" => Ty::primary("number"),
            "boolean" => Ty::primary("boolean"),
            "null" => Ty::primary("null"),
            "array" => self.array(obj, depth, indent),
            "object" => self.object(obj, depth, indent),
            _ => Ty::unknown(),
        }
    }

    /// A local `$ref` (`#`, `#/$defs/X`, `#/definitions/X`, any JSON pointer into the root), inlined.
    fn reference(&mut self, reference: &'a str, depth: usize, indent: usize) -> Ty {
        let Some(pointer) = reference.strip_prefix('#') else {
            return Ty::unknown();
        };
        let Some(target) = self.root.pointer(pointer) else {
            return Ty::unknown();
        };
        let repeats = self.refs.iter().filter(|r| **r == reference).count();
        if repeats >= MAX_REF_REPEAT || self.refs.len() >= MAX_REF_NESTING {
            return Ty::unknown();
        }
        self.refs.push(reference);
        let ty = self.render(target, depth + 1, indent);
        self.refs.pop();
        ty
    }

    fn array(&mut self, obj: &'a Map<String, Value>, depth: usize, indent: usize) -> Ty {
        // 2020-12: `prefixItems` + `items` for the rest; draft-07: array-valued `items` + `additionalItems`.
        let (prefix, rest) = match (obj.get("prefixItems"), obj.get("items")) {
            (Some(Value::Array(prefix)), rest) => (Some(prefix), rest),
            (_, Some(Value::Array(prefix))) => (Some(prefix), obj.get("additionalItems")),
            (_, items) => (None, items),
        };
        let Some(prefix) = prefix else {
            let element = match rest {
                Some(items) => self.render(items, depth + 1, indent),
                None => Ty::unknown(),
            };
            if element.is_never() {
                return Ty::primary("[]");
            }
            return Ty::primary(format!("{}[]", element.at_least(Prec::Primary)));
        };
        let elements: Vec<String> = prefix.iter().map(|s| self.render(s, depth + 1, indent).text).collect();
        let rest = match rest {
            None | Some(Value::Bool(false)) => None,
            Some(schema) => Some(self.render(schema, depth + 1, indent)).filter(|t| !t.is_never()),
        };
        let mut parts = elements;
        if let Some(rest) = rest {
            parts.push(format!("...{}[]", rest.at_least(Prec::Primary)));
        }
        Ty::primary(format!("[{}]", parts.join(", ")))
    }

    fn object(&mut self, obj: &'a Map<String, Value>, depth: usize, indent: usize) -> Ty {
        let properties = obj.get("properties").and_then(Value::as_object);
        let additional = obj.get("additionalProperties");
        let patterns = obj.get("patternProperties").and_then(Value::as_object);
        let mut required: Vec<&str> = Vec::new();
        if let Some(Value::Array(names)) = obj.get("required") {
            for name in names.iter().filter_map(Value::as_str) {
                if !required.contains(&name) {
                    required.push(name);
                }
            }
        }
        let omit_comments = self.omit_root_comments
            && depth == 0
            && self.root.as_object().is_some_and(|root| std::ptr::eq(root, obj));

        let mut members: Vec<Member> = Vec::new();
        // The types an index signature must admit besides its own: TypeScript requires every named
        // property to be assignable to it (`undefined` included, for optional ones).
        let mut member_types: Vec<Ty> = Vec::new();
        if let Some(properties) = properties {
            for (name, schema) in properties {
                let ty = self.render(schema, depth + 1, indent + 1);
                let optional = !required.contains(&name.as_str());
                let comment = match description_of(schema) {
                    Some(description) if !omit_comments => doc_lines(description),
                    _ => Vec::new(),
                };
                members.push(Member {
                    comment,
                    text: format!("{}{}: {}", property_key(name), if optional { "?" } else { "" }, ty.text),
                });
                member_types.push(ty);
                if optional {
                    member_types.push(Ty::primary("undefined"));
                }
            }
        }
        for name in &required {
            if !properties.is_some_and(|p| p.contains_key(*name)) {
                members
                    .push(Member { comment: Vec::new(), text: format!("{}: unknown", property_key(name)) });
                member_types.push(Ty::unknown());
            }
        }

        let mut index: Vec<Ty> = Vec::new();
        match additional {
            None | Some(Value::Bool(false)) => {}
            Some(schema) => index.push(self.render(schema, depth + 1, indent + 1)),
        }
        for schema in patterns.iter().flat_map(|p| p.values()) {
            index.push(self.render(schema, depth + 1, indent + 1));
        }
        let index = if !index.is_empty() {
            Some(union(index))
        } else if properties.is_none() && additional.is_none() && patterns.is_none() {
            Some(Ty::unknown())
        } else if additional == Some(&Value::Bool(false)) && members.is_empty() && patterns.is_none() {
            Some(Ty::never())
        } else {
            None
        };

        let signature = match index {
            // No index signature: a closed object, or only the named properties are known.
            None => None,
            Some(index) if index.is_never() && !members.is_empty() => None,
            Some(index) => {
                // `{ a?: string; [key: string]: number }` does not type-check: widen the signature to
                // `number | string | undefined` (or, when that would repeat a multi-line type, `unknown`).
                let widened = union(std::iter::once(index).chain(member_types));
                Some(if widened.text.contains('\n') { Ty::unknown() } else { widened })
            }
        };
        if let Some(signature) = signature {
            members.push(Member { comment: Vec::new(), text: format!("[key: string]: {}", signature.text) });
        }
        Ty::primary(format_object(&members, indent))
    }
}

/// An object type literal: on one line when short and without comments, else one member per line.
fn format_object(members: &[Member], indent: usize) -> String {
    if members.is_empty() {
        return "{}".to_owned();
    }
    if members.iter().all(|m| m.comment.is_empty() && !m.text.contains('\n')) {
        let inline =
            format!("{{ {} }}", members.iter().map(|m| m.text.as_str()).collect::<Vec<_>>().join("; "));
        if inline.len() <= INLINE_OBJECT_WIDTH {
            return inline;
        }
    }
    let inner = INDENT.repeat(indent + 1);
    let mut out = String::from("{\n");
    for member in members {
        out.push_str(&doc_comment(&member.comment, indent + 1));
        out.push_str(&inner);
        out.push_str(&member.text);
        out.push_str(";\n");
    }
    out.push_str(&INDENT.repeat(indent));
    out.push('}');
    out
}

/// A JSON value as a literal type (`enum`/`const` members).
fn literal(value: &Value, depth: usize) -> Ty {
    if depth > MAX_DEPTH {
        return Ty::unknown();
    }
    match value {
        Value::Null => Ty::primary("null"),
        Value::Bool(b) => Ty::primary(b.to_string()),
        Value::Number(n) => {
            let text = n.to_string();
            // `-1[]` is not an array of `-1`; let callers parenthesise negative literals.
            let prec = if text.starts_with('-') { Prec::Intersection } else { Prec::Primary };
            Ty { text, prec, operands: Vec::new() }
        }
        Value::String(s) => Ty::primary(quote(s)),
        Value::Array(items) => Ty::primary(format!(
            "[{}]",
            items.iter().map(|v| literal(v, depth + 1).text).collect::<Vec<_>>().join(", ")
        )),
        Value::Object(map) if map.is_empty() => Ty::primary("{}"),
        Value::Object(map) => Ty::primary(format!(
            "{{ {} }}",
            map.iter()
                .map(|(k, v)| format!("{}: {}", property_key(k), literal(v, depth + 1).text))
                .collect::<Vec<_>>()
                .join("; ")
        )),
    }
}

/// A property (or method) name: bare when it is a plain identifier, else a quoted string.
fn property_key(name: &str) -> String {
    if is_identifier(name) { name.to_owned() } else { quote(name) }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

/// A double-quoted string literal, valid in both JSON and TypeScript. `*/` is written `*\/` so that the
/// output never contains a comment closer, even inside strings.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut previous = None;
    for c in s.chars() {
        match c {
            '/' if previous == Some('*') => out.push_str("\\/"),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
        previous = Some(c);
    }
    out.push('"');
    out
}

/// The description of a schema (its `title` when it has none).
fn description_of(schema: &Value) -> Option<&str> {
    schema
        .get("description")
        .and_then(Value::as_str)
        .filter(|d| !d.trim().is_empty())
        .or_else(|| schema.get("title").and_then(Value::as_str))
}

/// Text made safe for a doc comment: control and bidirectional-override characters removed (tabs become
/// spaces), `*/` escaped, cut to `max_chars` (with "…"), split into trimmed lines without runs of blank
/// lines or leading/trailing blank lines.
fn sanitize_doc(text: &str, max_chars: usize) -> Vec<String> {
    let mut cleaned = String::with_capacity(text.len().min(max_chars * 4));
    let mut count = 0;
    let mut cut = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let c = match c {
            '\r' if chars.peek() == Some(&'\n') => continue,
            '\r' | '\n' => '\n',
            '\t' => ' ',
            c if c.is_control() || is_bidi_control(c) => continue,
            c => c,
        };
        if count == max_chars {
            cut = true;
            break;
        }
        cleaned.push(c);
        count += 1;
    }
    if cut {
        cleaned.truncate(cleaned.trim_end().len());
        cleaned.push('…');
    }
    let cleaned = cleaned.replace("*/", "*\\/");

    let mut lines: Vec<String> = Vec::new();
    for line in cleaned.lines() {
        let line = line.trim_end();
        if line.is_empty() && lines.last().is_none_or(|l| l.is_empty()) {
            continue;
        }
        lines.push(line.to_owned());
    }
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines
}

/// Unicode bidirectional embedding/override/isolate controls (the "Trojan Source" characters).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A description as doc comment lines.
fn doc_lines(text: &str) -> Vec<String> {
    sanitize_doc(text, MAX_DESCRIPTION_CHARS)
}

/// Text made safe for a doc comment, on one line.
fn one_line(text: &str, max_chars: usize) -> String {
    sanitize_doc(text, max_chars)
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A doc comment (ending in a newline) for already-sanitised lines at an indentation level; empty when
/// there are no lines.
fn doc_comment(lines: &[String], indent: usize) -> String {
    let pad = INDENT.repeat(indent);
    match lines {
        [] => String::new(),
        [line] if line.len() <= SINGLE_LINE_COMMENT_WIDTH => format!("{pad}/** {line} */\n"),
        lines => {
            let mut out = format!("{pad}/**\n");
            for line in lines {
                if line.is_empty() {
                    out.push_str(&format!("{pad} *\n"));
                } else {
                    out.push_str(&format!("{pad} * {line}\n"));
                }
            }
            out.push_str(&format!("{pad} */\n"));
            out
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ty(schema: Value) -> String {
        schema_to_type(&schema)
    }

    /// `{"key": inner, ...extra}` without `json!`, which would serialise `inner` recursively.
    fn wrap(inner: Value, key: &str, extra: Value) -> Value {
        let mut map = match extra {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        map.insert(key.to_owned(), inner);
        Value::Object(map)
    }

    fn tool<'a>(ident: &'a str, description: Option<&'a str>, input: &'a Value) -> ToolDecl<'a> {
        ToolDecl { ident, name: ident, description, input_schema: input, output_schema: None }
    }

    /// Every `/**` opens a comment that its own `*/` closes: no text closes a comment early.
    fn assert_comments_well_formed(text: &str) {
        let mut rest = text;
        while let Some(start) = rest.find("/*") {
            let after = &rest[start + 2..];
            let end = after.find("*/").expect("unterminated comment");
            rest = &after[end + 2..];
        }
        assert!(!rest.contains("*/"), "stray comment closer in {rest:?}");
    }

    #[test]
    fn primitive_types() {
        assert_eq!(ty(json!({"type": "string"})), "string");
        assert_eq!(ty(json!({"type": "number"})), "number");
        assert_eq!(ty(json!({"type": "integer"})), "number");
        assert_eq!(ty(json!({"type": "boolean"})), "boolean");
        assert_eq!(ty(json!({"type": "null"})), "null");
        assert_eq!(ty(json!({"type": "string", "format": "date-time"})), "string");
    }

    #[test]
    fn type_arrays_are_unions() {
        assert_eq!(ty(json!({"type": ["string", "null"]})), "string | null");
        assert_eq!(ty(json!({"type": ["integer", "number"]})), "number");
        assert_eq!(ty(json!({"type": ["string", "wat"]})), "unknown");
        assert_eq!(ty(json!({"type": []})), "never");
    }

    #[test]
    fn empty_true_and_false_schemas() {
        assert_eq!(ty(json!({})), "unknown");
        assert_eq!(ty(json!(true)), "unknown");
        assert_eq!(ty(json!(false)), "never");
        assert_eq!(ty(json!({"description": "anything"})), "unknown");
    }

    #[test]
    fn objects_with_required_and_optional_properties() {
        let schema = json!({
            "type": "object",
            "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
            "required": ["a"]
        });
        assert_eq!(ty(schema), "{ a: string; b?: number }");
    }

    #[test]
    fn bare_and_closed_objects() {
        assert_eq!(ty(json!({"type": "object"})), "{ [key: string]: unknown }");
        assert_eq!(ty(json!({"type": "object", "properties": {}})), "{}");
        assert_eq!(ty(json!({"type": "object", "additionalProperties": false})), "{ [key: string]: never }");
        assert_eq!(
            ty(
                json!({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": false})
            ),
            "{ a?: string }"
        );
    }

    #[test]
    fn property_descriptions_become_doc_comments() {
        let schema = json!({
            "type": "object",
            "properties": {
                "a": {"type": "string", "description": "The a."},
                "b": {"type": "object", "properties": {"c": {"type": "boolean", "description": "Line one.\nLine two."}}}
            },
            "required": ["a", "b"]
        });
        let expected = "{\n  /** The a. */\n  a: string;\n  b: {\n    /**\n     * Line one.\n     * Line two.\n     */\n    c?: boolean;\n  };\n}";
        assert_eq!(ty(schema), expected);
    }

    #[test]
    fn title_is_the_fallback_description() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "string", "title": "A title"}}});
        assert_eq!(ty(schema), "{\n  /** A title */\n  a?: string;\n}");
    }

    #[test]
    fn additional_properties_become_index_signatures() {
        assert_eq!(ty(json!({"type": "object", "additionalProperties": true})), "{ [key: string]: unknown }");
        assert_eq!(
            ty(json!({"type": "object", "additionalProperties": {"type": "number"}})),
            "{ [key: string]: number }"
        );
        assert_eq!(
            ty(
                json!({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": true})
            ),
            "{ a?: string; [key: string]: unknown }"
        );
        // Named properties must fit the index signature for the type to be valid TypeScript.
        assert_eq!(
            ty(json!({
                "type": "object",
                "properties": {"a": {"type": "string"}},
                "additionalProperties": {"type": "number"}
            })),
            "{ a?: string; [key: string]: number | string | undefined }"
        );
        assert_eq!(
            ty(json!({
                "type": "object",
                "properties": {"a": {"type": "string"}},
                "required": ["a"],
                "additionalProperties": {"type": "string"}
            })),
            "{ a: string; [key: string]: string }"
        );
        assert_eq!(
            ty(json!({
                "type": "object",
                "properties": {"a": {"type": "object", "properties": {"b": {"type": "string", "description": "B."}}}},
                "additionalProperties": {"type": "number"}
            })),
            "{\n  a?: {\n    /** B. */\n    b?: string;\n  };\n  [key: string]: unknown;\n}"
        );
        assert_eq!(
            ty(json!({"type": "object", "patternProperties": {"^x-": {"type": "string"}}})),
            "{ [key: string]: string }"
        );
    }

    #[test]
    fn arrays_and_tuples() {
        assert_eq!(ty(json!({"type": "array", "items": {"type": "string"}})), "string[]");
        assert_eq!(ty(json!({"type": "array"})), "unknown[]");
        assert_eq!(
            ty(json!({"type": "array", "items": {"type": ["string", "number"]}})),
            "(string | number)[]"
        );
        assert_eq!(
            ty(json!({"type": "array", "items": {"type": "array", "items": {"type": "null"}}})),
            "null[][]"
        );
        assert_eq!(ty(json!({"type": "array", "items": false})), "[]");
        assert_eq!(
            ty(json!({"type": "array", "prefixItems": [{"type": "number"}, {"type": "string"}]})),
            "[number, string]"
        );
        assert_eq!(
            ty(json!({"type": "array", "prefixItems": [{"type": "number"}], "items": {"type": "boolean"}})),
            "[number, ...boolean[]]"
        );
        assert_eq!(
            ty(
                json!({"type": "array", "items": [{"type": "number"}], "additionalItems": {"type": "string"}})
            ),
            "[number, ...string[]]"
        );
        assert_eq!(ty(json!({"items": {"type": "number"}})), "number[]");
    }

    #[test]
    fn enums_and_consts_are_literals() {
        assert_eq!(ty(json!({"type": "string", "enum": ["a", "b\"c"]})), r#""a" | "b\"c""#);
        assert_eq!(ty(json!({"enum": [1, -2.5, true, null]})), "1 | -2.5 | true | null");
        assert_eq!(ty(json!({"const": "fixed"})), r#""fixed""#);
        assert_eq!(ty(json!({"const": {"k": [1, "x"]}})), r#"{ k: [1, "x"] }"#);
        assert_eq!(ty(json!({"enum": []})), "never");
        assert_eq!(ty(json!({"type": "array", "items": {"enum": [-1, 2]}})), "(-1 | 2)[]");
        assert_eq!(ty(json!({"type": "array", "items": {"const": -1}})), "(-1)[]");
        assert_eq!(ty(json!({"enum": ["line\nbreak", "\u{2028}"]})), r#""line\nbreak" | "\u2028""#);
    }

    #[test]
    fn any_of_one_of_and_all_of() {
        assert_eq!(ty(json!({"anyOf": [{"type": "string"}, {"type": "null"}]})), "string | null");
        assert_eq!(ty(json!({"oneOf": [{"type": "number"}, {"type": "boolean"}]})), "number | boolean");
        assert_eq!(
            ty(json!({"allOf": [
                {"type": "object", "properties": {"a": {"type": "string"}}},
                {"type": "object", "properties": {"b": {"type": "string"}}}
            ]})),
            "{ a?: string } & { b?: string }"
        );
        assert_eq!(
            ty(json!({"allOf": [{"anyOf": [{"type": "string"}, {"type": "number"}]}, {"const": 1}]})),
            "(string | number) & 1"
        );
        // Validation-only branches add nothing.
        assert_eq!(
            ty(
                json!({"type": "object", "properties": {"a": {"type": "string"}}, "anyOf": [{"required": ["a"]}, {}]})
            ),
            "{ a?: string }"
        );
        // A bare `type: object` gives way to the composed types.
        assert_eq!(
            ty(
                json!({"type": "object", "oneOf": [{"properties": {"a": {"type": "string"}}}, {"properties": {"b": {"type": "number"}}}]})
            ),
            "{ a?: string } | { b?: number }"
        );
        assert_eq!(ty(json!({"anyOf": [{"type": "string"}, {}]})), "unknown");
        assert_eq!(ty(json!({"allOf": [{"type": "string"}, false]})), "never");
    }

    #[test]
    fn nullable() {
        assert_eq!(ty(json!({"type": "string", "nullable": true})), "string | null");
        assert_eq!(ty(json!({"type": "string", "nullable": false})), "string");
        assert_eq!(ty(json!({"type": ["string", "null"], "nullable": true})), "string | null");
        assert_eq!(ty(json!({"nullable": true})), "unknown");
    }

    #[test]
    fn refs_are_inlined() {
        let schema = json!({
            "type": "object",
            "properties": {"old": {"$ref": "#/definitions/Id"}, "owner": {"$ref": "#/$defs/User"}},
            "required": ["owner"],
            "$defs": {"User": {"type": "object", "properties": {"login": {"type": "string"}}, "required": ["login"]}},
            "definitions": {"Id": {"type": "integer"}}
        });
        assert_eq!(ty(schema), "{ old?: number; owner: { login: string } }");
        assert_eq!(ty(json!({"$ref": "#/$defs/Missing"})), "unknown");
        assert_eq!(ty(json!({"$ref": "https://example.com/schema.json"})), "unknown");
        assert_eq!(ty(json!({"$ref": 7})), "unknown");
        assert_eq!(
            ty(json!({"$ref": "#/$defs/S", "nullable": true, "$defs": {"S": {"type": "string"}}})),
            "string | null"
        );
    }

    #[test]
    fn recursive_refs_are_unrolled_once_then_unknown() {
        let schema = json!({
            "$ref": "#/$defs/Node",
            "$defs": {"Node": {
                "type": "object",
                "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}},
            }}
        });
        assert_eq!(ty(schema), "{ children?: { children?: unknown[] }[] }");
        let root_recursion = json!({"type": "object", "properties": {"self": {"$ref": "#"}}});
        assert_eq!(ty(root_recursion), "{ self?: { self?: unknown } }");
        let mutual = json!({
            "$ref": "#/$defs/A",
            "$defs": {"A": {"$ref": "#/$defs/B"}, "B": {"$ref": "#/$defs/A"}}
        });
        assert_eq!(ty(mutual), "unknown");
    }

    #[test]
    fn odd_property_names_are_quoted() {
        let schema = json!({
            "type": "object",
            "properties": {"$ok_1": {"type": "string"}, "a-b": {"type": "string"}, "1x": {}, "": {}, "é": {}, "q\"": {}},
            "required": ["$ok_1", "a-b", "1x", "", "é", "q\""]
        });
        let out = ty(schema);
        for member in [
            "$ok_1: string",
            r#""a-b": string"#,
            r#""1x": unknown"#,
            r#""": unknown"#,
            r#""é": unknown"#,
            r#""q\"": unknown"#,
        ] {
            assert!(out.contains(member), "{member} missing from {out}");
        }
    }

    #[test]
    fn required_names_without_schemas_are_unknown() {
        assert_eq!(
            ty(
                json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a", "b", "b"]})
            ),
            "{ a: string; b: unknown }"
        );
    }

    #[test]
    fn descriptions_cannot_close_the_comment() {
        let schema = json!({
            "type": "object",
            "properties": {"a": {"type": "string", "description": "evil */ declare const x: 1; /*"}}
        });
        let out = ty(schema);
        assert!(out.contains(r"evil *\/ declare const x: 1; /*"), "{out}");
        assert_comments_well_formed(&out);
        // A comment closer assembled by removing control characters is still escaped.
        let out = ty(json!({"type": "object", "properties": {"a": {"description": "*\u{0}/\u{202e}x"}}}));
        assert!(out.contains(r"*\/x"), "{out}");
        assert_comments_well_formed(&out);
    }

    #[test]
    fn long_descriptions_are_truncated() {
        let long = "word ".repeat(1000);
        let out = ty(json!({"type": "object", "properties": {"a": {"description": long}}}));
        assert!(out.contains('…'));
        assert!(out.len() < 800, "{}", out.len());
        // Multi-byte text is cut on a char boundary.
        let out = ty(json!({"type": "object", "properties": {"a": {"description": "é".repeat(5000)}}}));
        assert_eq!(out.matches('é').count(), MAX_DESCRIPTION_CHARS);
    }

    #[test]
    fn deep_nesting_is_capped() {
        // (Far deeper than the cap, and than serde_json's parser allows, but not so deep that dropping
        // the recursive `Value` overflows a test thread's stack.)
        let mut schema = json!({"type": "string"});
        for _ in 0..2000 {
            schema = wrap(schema, "items", json!({"type": "array"}));
        }
        let out = ty(schema);
        assert!(out.starts_with("unknown[]"), "{out}");
        assert_eq!(out.matches("[]").count(), MAX_DEPTH + 1);

        let mut schema = json!({"type": "string"});
        for _ in 0..500 {
            let properties = wrap(schema, "x", json!({}));
            schema = wrap(properties, "properties", json!({"type": "object", "required": ["x"]}));
        }
        let out = ty(schema);
        assert!(out.contains("x: unknown"));
        assert!(out.len() < 10_000);

        let mut schema = json!({"type": "string"});
        for _ in 0..500 {
            schema = wrap(Value::Array(vec![schema, json!({"type": "null"})]), "anyOf", json!({}));
        }
        assert_eq!(ty(schema), "unknown");
    }

    #[test]
    fn exponential_refs_are_bounded() {
        let mut defs = Map::new();
        for i in 0..40 {
            let next = json!({"$ref": format!("#/$defs/L{}", i + 1)});
            defs.insert(
                format!("L{i}"),
                json!({"type": "object", "properties": {"a": next, "b": next, "c": next, "d": next}, "required": ["a", "b", "c", "d"]}),
            );
        }
        defs.insert("L40".to_owned(), json!({"type": "string"}));
        let schema = json!({"$ref": "#/$defs/L0", "$defs": defs});
        let out = ty(schema.clone());
        assert!(out.len() < 2_000_000, "{}", out.len());
        assert!(out.contains("unknown"));
        assert_eq!(out, ty(schema), "deterministic");
    }

    #[test]
    fn malformed_schemas_do_not_panic() {
        let cases = [
            json!(null),
            json!(42),
            json!("string"),
            json!([]),
            json!({"type": 42}),
            json!({"type": "object", "properties": "nope", "required": {"a": 1}}),
            json!({"type": "object", "properties": {"a": 5, "b": null, "c": []}, "required": [1, null, "a"]}),
            json!({"type": "array", "items": 3, "prefixItems": "x"}),
            json!({"enum": "not-an-array"}),
            json!({"anyOf": "x", "oneOf": {}, "allOf": 1}),
            json!({"anyOf": []}),
            json!({"allOf": []}),
            json!({"$ref": "#/$defs/\u{0}~2"}),
            json!({"$ref": "#"}),
            json!({"$ref": ""}),
            json!({"additionalProperties": 1, "patternProperties": {"x": 2}}),
        ];
        for case in cases {
            let out = schema_to_type(&case);
            assert!(!out.is_empty(), "{case}");
        }
        assert_eq!(ty(json!({"anyOf": []})), "never");
        assert_eq!(ty(json!({"allOf": []})), "unknown");
        assert_eq!(ty(json!({"$ref": "#"})), "unknown");
    }

    #[test]
    fn github_create_issue() {
        let input = json!({
            "type": "object",
            "properties": {
                "assignees": {"type": "array", "items": {"type": "string"}, "description": "Usernames to assign to this issue"},
                "body": {"type": "string", "description": "Issue body content"},
                "labels": {"type": "array", "items": {"type": "string"}, "description": "Labels to apply to this issue"},
                "milestone": {"type": "number", "description": "Milestone number"},
                "owner": {"type": "string", "description": "Repository owner"},
                "repo": {"type": "string", "description": "Repository name"},
                "title": {"type": "string", "description": "Issue title"}
            },
            "required": ["owner", "repo", "title"],
            "additionalProperties": false,
            "$schema": "http://json-schema.org/draft-07/schema#"
        });
        let decl = tool_declaration(&tool(
            "create_issue",
            Some("Create a new issue in a GitHub repository"),
            &input,
        ));
        let expected = "/**
 * Create a new issue in a GitHub repository
 * @param args.assignees Usernames to assign to this issue
 * @param args.body Issue body content
 * @param args.labels Labels to apply to this issue
 * @param args.milestone Milestone number
 * @param args.owner Repository owner
 * @param args.repo Repository name
 * @param args.title Issue title
 */
create_issue(args: {
  assignees?: string[];
  body?: string;
  labels?: string[];
  milestone?: number;
  owner: string;
  repo: string;
  title: string;
}): Promise<unknown>;";
        assert_eq!(decl, expected);
    }

    #[test]
    fn time_server_convert_time_with_output_schema() {
        let input = json!({
            "type": "object",
            "properties": {
                "source_timezone": {"type": "string", "description": "Source IANA timezone name"},
                "target_timezone": {"type": "string", "description": "Target IANA timezone name"},
                "time": {"type": "string", "description": "Time to convert in 24-hour format (HH:MM)"}
            },
            "required": ["source_timezone", "time", "target_timezone"]
        });
        let output = json!({
            "type": "object",
            "properties": {
                "difference": {"type": "string"},
                "format": {"type": "string", "enum": ["24h", "12h"], "description": "Clock format"}
            },
            "required": ["difference", "format"]
        });
        let decl = tool_declaration(&ToolDecl {
            ident: "convert_time",
            name: "convert_time",
            description: Some("Convert time between timezones"),
            input_schema: &input,
            output_schema: Some(&output),
        });
        let expected = r#"/**
 * Convert time between timezones
 * @param args.source_timezone Source IANA timezone name
 * @param args.target_timezone Target IANA timezone name
 * @param args.time Time to convert in 24-hour format (HH:MM)
 */
convert_time(args: { source_timezone: string; target_timezone: string; time: string }): Promise<{
  difference: string;
  /** Clock format */
  format: "24h" | "12h";
}>;"#;
        assert_eq!(decl, expected);
    }

    #[test]
    fn echo_declaration_and_optional_args() {
        let input = json!({"type": "object", "properties": {"text": {"type": "string", "description": "The text."}}, "required": ["text"]});
        assert_eq!(
            tool_declaration(&tool("echo", Some("Echoes text back."), &input)),
            "/**\n * Echoes text back.\n * @param args.text The text.\n */\necho(args: { text: string }): Promise<unknown>;"
        );
        let input = json!({"type": "object", "properties": {"limit": {"type": "integer"}}});
        assert_eq!(
            tool_declaration(&tool("list", None, &input)),
            "list(args?: { limit?: number }): Promise<unknown>;"
        );
        let input = json!({"type": "object"});
        assert_eq!(
            tool_declaration(&tool("ping", Some("Ping."), &input)),
            "/** Ping. */\nping(args?: { [key: string]: unknown }): Promise<unknown>;"
        );
    }

    #[test]
    fn tool_names_differing_from_idents_are_noted_and_odd_idents_quoted() {
        let input = json!({});
        let decl = tool_declaration(&ToolDecl {
            ident: "get_file",
            name: "get-file",
            description: None,
            input_schema: &input,
            output_schema: None,
        });
        assert_eq!(decl, "/** MCP tool `get-file`. */\nget_file(args?: unknown): Promise<unknown>;");
        let decl = tool_declaration(&tool("bad-ident", None, &input));
        assert_eq!(decl, "\"bad-ident\"(args?: unknown): Promise<unknown>;");
    }

    #[test]
    fn hostile_tool_text_stays_inside_comments() {
        let input = json!({
            "type": "object",
            "properties": {"x*/y": {"type": "string", "description": "a */ b\r\nc\u{7}"}},
        });
        let decl = tool_declaration(&ToolDecl {
            ident: "t",
            name: "*/ evil",
            description: Some("desc */ }; fetch('x'); /*"),
            input_schema: &input,
            output_schema: None,
        });
        assert_comments_well_formed(&decl);
        assert!(decl.contains(r"@param args.x*\/y a *\/ b c"), "{decl}");
        assert!(decl.contains(r#""x*\/y"?: string"#), "{decl}");
        let all = declarations(&[ServerDecl { ident: "s", name: "*/ server", tools: vec![] }]);
        assert_comments_well_formed(&all);
    }

    #[test]
    fn declarations_of_two_servers() {
        let echo_input =
            json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]});
        let issue_input = json!({
            "type": "object",
            "properties": {"title": {"type": "string", "description": "Issue title"}},
            "required": ["title"]
        });
        let servers = [
            ServerDecl {
                ident: "echo",
                name: "echo-server",
                tools: vec![tool("echo", Some("Echoes."), &echo_input)],
            },
            ServerDecl {
                ident: "github",
                name: "github",
                tools: vec![tool("create_issue", Some("Create an issue."), &issue_input)],
            },
            ServerDecl { ident: "empty", name: "empty", tools: vec![] },
        ];
        let out = declarations(&servers);
        let expected = "/** The error a failed MCP tool call rejects with. */
declare class McpToolError extends Error {
  /** The server the failed call went to. */
  server: string;
  /** The tool that was called. */
  tool: string;
}

/** The MCP tools this code may call, by server: `await mcp.<server>.<tool>(args)`. A failed call rejects with McpToolError. */
declare const mcp: {
  /** MCP server `echo-server`. */
  echo: {
    /** Echoes. */
    echo(args: { text: string }): Promise<unknown>;
  };
  /** MCP server `github`. */
  github: {
    /**
     * Create an issue.
     * @param args.title Issue title
     */
    create_issue(args: { title: string }): Promise<unknown>;
  };
  /** MCP server `empty`. */
  empty: {};
};
";
        assert_eq!(out, expected);
        assert!(out.contains("declare class McpToolError extends Error"));
        assert_comments_well_formed(&out);
        assert_eq!(out, declarations(&servers), "deterministic");
        assert!(declarations(&[]).contains("declare const mcp: {};"));
    }

    #[test]
    fn multi_line_args_are_reindented_inside_declarations() {
        let input = json!({
            "type": "object",
            "properties": {"a": {"type": "object", "properties": {"b": {"type": "string", "description": "B."}}}},
        });
        let out = declarations(&[ServerDecl { ident: "s", name: "s", tools: vec![tool("t", None, &input)] }]);
        assert!(out.contains("    t(args?: {\n      a?: {\n        /** B. */\n        b?: string;\n      };\n    }): Promise<unknown>;\n"), "{out}");
    }
}
