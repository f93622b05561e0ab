//! MCP names to JavaScript identifiers: `mcp.<server>.<tool>` must be valid, unique and stable.

use std::collections::BTreeSet;

/// Property names that would change how the bindings behave (`then` makes an object awaitable) or that
/// read as prototype machinery; a tool or server with such a name gets a trailing `_`.
const RESERVED: &[&str] = &[
    "then",
    "constructor",
    "prototype",
    "__proto__",
    "toString",
    "toLocaleString",
    "valueOf",
    "toJSON",
    "hasOwnProperty",
    "isPrototypeOf",
    "propertyIsEnumerable",
    "__defineGetter__",
    "__defineSetter__",
    "__lookupGetter__",
    "__lookupSetter__",
];

/// Map an MCP name (which may contain `-`, `.`, `/`, spaces, or start with a digit) to a JavaScript
/// identifier. Names starting with `$` are reserved for MCP Guard's own helpers.
pub fn js_identifier(name: &str) -> String {
    let mut out: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    if RESERVED.contains(&out.as_str()) {
        out.push('_');
    }
    out
}

/// Give each name a unique identifier. Names are processed in sorted order so the mapping does not depend
/// on the order a server lists its tools in; a collision gets `_2`, `_3`, ... appended.
pub(crate) fn unique_idents<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<(String, String)> {
    let mut sorted: Vec<&str> = names.into_iter().collect();
    sorted.sort_unstable();
    sorted.dedup();
    // Names that are already identifiers keep them: `get_issue` stays `get_issue` even when `get-issue`
    // also exists.
    sorted.sort_by_key(|name| js_identifier(name) != *name);
    let mut used = BTreeSet::new();
    sorted
        .into_iter()
        .map(|name| {
            let base = js_identifier(name);
            let mut ident = base.clone();
            let mut n = 2;
            while !used.insert(ident.clone()) {
                ident = format!("{base}_{n}");
                n += 1;
            }
            (name.to_string(), ident)
        })
        .collect()
}
