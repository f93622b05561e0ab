//! JSON Schema to TypeScript types: total, deterministic, bounded in depth, `$ref` expansion and size.

use serde_json::{Map, Value};

use super::{
    INDENT, INLINE_OBJECT_WIDTH, MAX_DEPTH, MAX_REF_NESTING, MAX_REF_REPEAT, NODE_BUDGET,
    docs::{description_of, doc_comment, doc_lines},
};

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
pub(super) fn has_required(schema: &Value) -> bool {
    schema.get("required").and_then(Value::as_array).is_some_and(|r| r.iter().any(Value::is_string))
}

/// How tightly a rendered type binds, for parenthesising.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Prec {
    Union,
    Intersection,
    Primary,
}

#[derive(Debug, Clone)]
pub(super) struct Ty {
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
pub(super) fn union(members: impl IntoIterator<Item = Ty>) -> Ty {
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
pub(super) fn intersection(members: impl IntoIterator<Item = Ty>) -> Ty {
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
pub(super) const ANY_OBJECT: &str = "{ [key: string]: unknown }";

pub(super) struct Member {
    comment: Vec<String>,
    text: String,
}

pub(super) struct Renderer<'a> {
    root: &'a Value,
    /// The `$ref`s being expanded, innermost last.
    refs: Vec<&'a str>,
    nodes: usize,
    /// Leave the descriptions of the root object's properties out (they go into `@param` tags).
    omit_root_comments: bool,
}

impl<'a> Renderer<'a> {
    pub(super) fn new(root: &'a Value, omit_root_comments: bool) -> Self {
        Renderer { root, refs: Vec::new(), nodes: 0, omit_root_comments }
    }

    pub(super) fn render_root(&mut self) -> String {
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
pub(super) fn format_object(members: &[Member], indent: usize) -> String {
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
pub(super) fn literal(value: &Value, depth: usize) -> Ty {
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
pub(super) fn property_key(name: &str) -> String {
    if is_identifier(name) { name.to_owned() } else { quote(name) }
}

pub(super) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

/// A double-quoted string literal, valid in both JSON and TypeScript. `*/` is written `*\/` so that the
/// output never contains a comment closer, even inside strings.
pub(super) fn quote(s: &str) -> String {
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
