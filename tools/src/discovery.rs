//! Search and describe over the [`ToolIndex`]: one set of answers for the MCP front door's
//! `search_tools`/`describe_tools` and for running code's `mcp.$search`/`mcp.$describe`.

use serde_json::{Value, json};

use crate::index::{ToolEntry, ToolIndex, declarations, summary};

/// How much a search tells about each match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// Bindings only.
    Names,
    /// Bindings and one-line descriptions.
    Summaries,
    /// Full TypeScript declarations.
    Full,
}

impl Detail {
    /// `names`, `summaries` (the default when absent) or `full`.
    pub fn parse(detail: Option<&str>) -> Result<Detail, String> {
        match detail {
            None | Some("summaries") => Ok(Detail::Summaries),
            Some("names") => Ok(Detail::Names),
            Some("full") => Ok(Detail::Full),
            Some(other) => Err(format!("`detail` must be names, summaries or full, not `{other}`")),
        }
    }
}

/// Longest description in a search answer, in characters.
const SUMMARY_CHARS: usize = 160;

/// One search match: `{binding, server, name, description?, typescript?}`.
pub fn search_entry(tool: &ToolEntry, detail: Detail) -> Value {
    let mut entry = json!({ "binding": tool.binding, "server": tool.server, "name": tool.name });
    if detail != Detail::Names {
        entry["description"] = json!(summary(&tool.description, SUMMARY_CHARS));
    }
    if detail == Detail::Full {
        entry["typescript"] = json!(tool.typescript);
    }
    entry
}

/// One described tool: `{binding, server, name, description, inputSchema, outputSchema}`.
pub fn describe_entry(tool: &ToolEntry) -> Value {
    json!({
        "binding": tool.binding,
        "server": tool.server,
        "name": tool.name,
        "description": tool.description,
        "inputSchema": serde_json::from_str::<Value>(&tool.input_schema_json).unwrap_or(Value::Null),
        "outputSchema": serde_json::from_str::<Value>(&tool.output_schema_json).unwrap_or(Value::Null),
    })
}

/// The one-line text of a search match at `detail` (names and summaries; full detail is declarations).
pub fn search_line(tool: &ToolEntry) -> String {
    let s = summary(&tool.description, SUMMARY_CHARS);
    if s.is_empty() { tool.binding.clone() } else { format!("{} — {s}", tool.binding) }
}

/// `mcp.$search(query, detail)`: `{query, detail}` to the list of matches.
pub fn search(index: &ToolIndex, arguments: &Value) -> Result<Value, String> {
    let query = arguments.get("query").and_then(Value::as_str).unwrap_or_default();
    let detail = Detail::parse(arguments.get("detail").and_then(Value::as_str))?;
    Ok(Value::Array(index.search(query).into_iter().map(|t| search_entry(t, detail)).collect()))
}

/// `mcp.$describe(names)`: `{names}` to `{typescript, tools, unknown}`; no names describes every tool.
pub fn describe(index: &ToolIndex, arguments: &Value) -> Result<Value, String> {
    let names: Vec<String> = arguments
        .get("names")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    let (found, missing) =
        if names.is_empty() { (index.tools().iter().collect(), Vec::new()) } else { index.by_names(&names) };
    Ok(json!({
        "typescript": declarations(&found),
        "tools": found.iter().map(|t| describe_entry(t)).collect::<Vec<_>>(),
        "unknown": missing,
    }))
}
