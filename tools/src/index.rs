//! The bound tools as everyone describes them: identifiers, the catalog, descriptions, schemas and
//! TypeScript declarations, searchable. The one owner of these derived facts: the binding proxy reports
//! names and schemas only ([`ServerTools`]); everything else is computed here, once per change.

use serde_json::Value;
use sha2::Digest;

use crate::{
    catalog::Catalog,
    typescript::{self, ServerDecl, ToolDecl},
};

/// One bound server as the binding proxy reports it: its state and its tools' names and schemas.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerTools {
    pub state: ServerState,
    pub tools: Vec<ToolSpec>,
}

/// One tool as its server declares it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments (empty: none declared).
    pub input_schema_json: String,
    /// JSON Schema of the structured result (empty: none declared).
    pub output_schema_json: String,
    /// sha256 of the definition when it was first seen.
    pub pinned_sha256: String,
}

/// One bound tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolEntry {
    /// The server's configured name.
    pub server: String,
    /// The tool's name on its server.
    pub name: String,
    /// How sandboxed code calls it: `mcp.<server ident>.<tool ident>`.
    pub binding: String,
    pub server_ident: String,
    pub tool_ident: String,
    pub description: String,
    pub input_schema_json: String,
    pub output_schema_json: String,
    /// The method declaration with its doc comment.
    pub typescript: String,
}

/// One bound server's state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerState {
    /// The server's configured name.
    pub name: String,
    /// Whether the binding proxy has a working session with it.
    pub connected: bool,
    /// Why the server is not connected, when it is not (redacted).
    pub error: String,
    /// The name and version the server reported in its initialize handshake (empty before one).
    pub server_name: String,
    pub server_version: String,
    /// The MCP protocol version agreed in that handshake.
    pub protocol_version: String,
    /// The credential sources the proxy cannot read now (file paths, `env:NAME`); never values.
    pub missing_credentials: Vec<String>,
}

/// All bound tools.
#[derive(Debug, Clone, Default)]
pub struct ToolIndex {
    servers: Vec<ServerState>,
    tools: Vec<ToolEntry>,
    typescript: String,
    catalog: Catalog,
}

/// First line of `text`, at most `max` chars.
pub fn summary(text: &str, max: usize) -> String {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or_default();
    if line.chars().count() <= max {
        line.to_string()
    } else {
        let cut: String = line.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

impl ToolIndex {
    /// The index of the bound servers and their tools: identifiers without collisions, the catalog,
    /// each tool's declaration and the declarations of the whole `mcp` object.
    pub fn new(servers: Vec<ServerTools>) -> Self {
        let catalog = Catalog::new(
            servers.iter().map(|s| (s.state.name.clone(), s.tools.iter().map(|t| t.name.clone()).collect())),
        );
        let mut tools = Vec::new();
        let mut parsed = Vec::new();
        for server in &servers {
            for tool in &server.tools {
                let (server_ident, tool_ident) = idents(&catalog, &server.state.name, &tool.name);
                let input = parse_schema(&tool.input_schema_json).unwrap_or(Value::Bool(true));
                let output = parse_schema(&tool.output_schema_json);
                let typescript = typescript::tool_declaration(&ToolDecl {
                    ident: &tool_ident,
                    name: &tool.name,
                    description: non_empty(&tool.description),
                    input_schema: &input,
                    output_schema: output.as_ref(),
                });
                parsed.push((input, output));
                tools.push(ToolEntry {
                    server: server.state.name.clone(),
                    name: tool.name.clone(),
                    binding: format!("mcp.{server_ident}.{tool_ident}"),
                    server_ident,
                    tool_ident,
                    description: tool.description.clone(),
                    input_schema_json: tool.input_schema_json.clone(),
                    output_schema_json: tool.output_schema_json.clone(),
                    typescript,
                });
            }
        }
        // Every server is declared, in the order given, even one that has no tool (yet).
        let mut decls: Vec<ServerDecl<'_>> = servers
            .iter()
            .map(|s| {
                let ident =
                    catalog.servers().iter().find(|b| b.name == s.state.name).map(|b| b.ident.as_str());
                ServerDecl { ident: ident.unwrap_or_default(), name: &s.state.name, tools: Vec::new() }
            })
            .collect();
        for (t, (input, output)) in tools.iter().zip(parsed.iter()) {
            if let Some(server) = decls.iter_mut().find(|s| s.name == t.server) {
                server.tools.push(tool_decl(t, input, output.as_ref()));
            }
        }
        let typescript = typescript::declarations(&decls);
        let servers = servers.into_iter().map(|s| s.state).collect();
        ToolIndex { servers, tools, typescript, catalog }
    }

    /// An index of a catalog without schemas or descriptions (tools hosted in process): every tool takes
    /// an object, every server counts as connected.
    pub fn from_catalog(catalog: &Catalog) -> Self {
        ToolIndex::new(
            catalog
                .servers()
                .iter()
                .map(|s| ServerTools {
                    state: ServerState { name: s.name.clone(), connected: true, ..Default::default() },
                    tools: s
                        .tools
                        .iter()
                        .map(|t| ToolSpec {
                            name: t.name.clone(),
                            input_schema_json: serde_json::json!({"type": "object"}).to_string(),
                            ..Default::default()
                        })
                        .collect(),
                })
                .collect(),
        )
    }

    pub fn catalog(&self) -> Catalog {
        self.catalog.clone()
    }

    pub fn tools(&self) -> &[ToolEntry] {
        &self.tools
    }

    pub fn servers(&self) -> &[ServerState] {
        &self.servers
    }

    /// Declarations of the whole `mcp` object.
    pub fn typescript(&self) -> &str {
        &self.typescript
    }

    /// Every bound server has a working session.
    pub fn all_connected(&self) -> bool {
        self.servers.iter().all(|s| s.connected)
    }

    /// A hash of everything the sandbox and the descriptions depend on.
    pub fn fingerprint(&self) -> String {
        let mut h = sha2::Sha256::new();
        for t in &self.tools {
            for part in [&t.server, &t.name, &t.description, &t.input_schema_json, &t.output_schema_json] {
                h.update(part.as_bytes());
                h.update([0]);
            }
        }
        hex::encode(h.finalize())
    }

    /// Tools whose server, name, binding or description contains every word of `query`
    /// (case-insensitive), best matches (name hits) first; an empty query matches all, in order.
    pub fn search(&self, query: &str) -> Vec<&ToolEntry> {
        let words: Vec<String> = query.split_whitespace().map(str::to_lowercase).collect();
        if words.is_empty() {
            return self.tools.iter().collect();
        }
        let mut hits: Vec<(usize, usize, &ToolEntry)> = self
            .tools
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                let name = format!("{} {} {}", t.server, t.name, t.binding).to_lowercase();
                let description = t.description.to_lowercase();
                let mut name_hits = 0;
                for w in &words {
                    if name.contains(w.as_str()) {
                        name_hits += 1;
                    } else if !description.contains(w.as_str()) {
                        return None;
                    }
                }
                Some((name_hits, i, t))
            })
            .collect();
        hits.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        hits.into_iter().map(|(_, _, t)| t).collect()
    }

    /// Tools named `server.tool`, `mcp.server.tool` (binding), or just `tool` when unambiguous; names
    /// that match nothing are returned separately.
    pub fn by_names<'a>(&self, names: &'a [String]) -> (Vec<&ToolEntry>, Vec<&'a str>) {
        let mut found: Vec<&ToolEntry> = Vec::new();
        let mut missing = Vec::new();
        for name in names {
            let n = name.trim();
            let n = n.strip_prefix("mcp.").unwrap_or(n);
            let matches: Vec<&ToolEntry> = self
                .tools
                .iter()
                .filter(|t| {
                    format!("{}.{}", t.server, t.name) == n
                        || format!("{}.{}", t.server_ident, t.tool_ident) == n
                        || t.name == n
                        || t.tool_ident == n
                })
                .collect();
            if matches.is_empty() {
                missing.push(name.as_str());
            }
            for m in matches {
                if !found.iter().any(|f| std::ptr::eq(*f, m)) {
                    found.push(m);
                }
            }
        }
        (found, missing)
    }

    /// A compact API for prompts: one line per tool (`mcp.s.t(args: {...}): Promise<...>; // summary`),
    /// at most `budget` bytes; past it, the remaining tools are only counted.
    pub fn compact_api(&self, budget: usize) -> String {
        let mut out = String::new();
        let mut left = 0usize;
        for t in &self.tools {
            let line = compact_line(t);
            if left > 0 || out.len() + line.len() + 1 > budget {
                left += 1;
                continue;
            }
            out.push_str(&line);
            out.push('\n');
        }
        if left > 0 {
            out.push_str(&format!(
                "// ... and {left} more tools: find them with search_tools or describe_tools.\n"
            ));
        }
        if self.tools.is_empty() {
            out.push_str("// (no MCP tools are bound)\n");
        }
        out
    }
}

fn idents(catalog: &Catalog, server: &str, tool: &str) -> (String, String) {
    let bound = catalog.servers().iter().find(|s| s.name == server);
    let server_ident = bound.map(|s| s.ident.clone()).unwrap_or_else(|| crate::js_identifier(server));
    let tool_ident = bound
        .and_then(|s| s.tools.iter().find(|t| t.name == tool))
        .map(|t| t.ident.clone())
        .unwrap_or_else(|| crate::js_identifier(tool));
    (server_ident, tool_ident)
}

fn parse_schema(json: &str) -> Option<Value> {
    if json.is_empty() { None } else { serde_json::from_str(json).ok() }
}

/// `mcp.s.t(args: {...}): Promise<R>; // summary` on one line.
fn compact_line(t: &ToolEntry) -> String {
    let input = parse_schema(&t.input_schema_json).unwrap_or(Value::Bool(true));
    let output = parse_schema(&t.output_schema_json);
    let args = one_line_type(&typescript::schema_to_type(&input), 300);
    let result =
        output.map_or_else(|| "unknown".to_string(), |o| one_line_type(&typescript::schema_to_type(&o), 200));
    let optional = input.get("required").and_then(Value::as_array).is_none_or(|r| r.is_empty());
    let q = if optional { "?" } else { "" };
    let mut line = format!("{}(args{q}: {args}): Promise<{result}>;", t.binding);
    let s = summary(&t.description, 120);
    if !s.is_empty() {
        line.push_str(" // ");
        line.push_str(&s);
    }
    line
}

/// A type on one line; longer than `max` chars, it becomes a placeholder.
fn one_line_type(ts: &str, max: usize) -> String {
    let mut out = String::new();
    let mut in_comment = false;
    let chars: Vec<char> = ts.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if !in_comment && chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
            in_comment = true;
            i += 2;
            continue;
        }
        if in_comment {
            if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                in_comment = false;
                i += 2;
            } else {
                i += 1;
            }
            continue;
        }
        let c = if chars[i].is_whitespace() { ' ' } else { chars[i] };
        if !(c == ' ' && out.ends_with(' ')) {
            out.push(c);
        }
        i += 1;
    }
    let out = out.replace("; }", " }").trim().to_string();
    if out.chars().count() > max { "{ /* see describe_tools */ }".to_string() } else { out }
}

fn non_empty(text: &str) -> Option<&str> {
    if text.is_empty() { None } else { Some(text) }
}

fn tool_decl<'a>(t: &'a ToolEntry, input: &'a Value, output: Option<&'a Value>) -> ToolDecl<'a> {
    ToolDecl {
        ident: &t.tool_ident,
        name: &t.name,
        description: non_empty(&t.description),
        input_schema: input,
        output_schema: output,
    }
}

/// Declarations of `mcp` restricted to `tools` (grouped by server in first-seen order).
pub fn declarations(tools: &[&ToolEntry]) -> String {
    let parsed: Vec<(Value, Option<Value>)> = tools
        .iter()
        .map(|t| {
            (
                parse_schema(&t.input_schema_json).unwrap_or(Value::Bool(true)),
                parse_schema(&t.output_schema_json),
            )
        })
        .collect();
    let mut servers: Vec<ServerDecl<'_>> = Vec::new();
    for (t, (input, output)) in tools.iter().zip(parsed.iter()) {
        let decl = tool_decl(t, input, output.as_ref());
        match servers.iter_mut().find(|s| s.name == t.server) {
            Some(s) => s.tools.push(decl),
            None => servers.push(ServerDecl { ident: &t.server_ident, name: &t.server, tools: vec![decl] }),
        }
    }
    typescript::declarations(&servers)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn index() -> ToolIndex {
        let tool = |name: &str, description: &str, schema: &str| ToolSpec {
            name: name.into(),
            description: description.into(),
            input_schema_json: schema.into(),
            ..Default::default()
        };
        ToolIndex::new(vec![ServerTools {
            state: ServerState { name: "git-hub".into(), connected: true, ..Default::default() },
            tools: vec![
                tool(
                    "get-issue",
                    "Get one issue by number.\nMore text.",
                    r#"{"type":"object","properties":{"number":{"type":"integer"}},"required":["number"]}"#,
                ),
                tool("list_prs", "List pull requests.", r#"{"type":"object"}"#),
            ],
        }])
    }

    #[test]
    fn search_matches_every_word_and_ranks_names_first() {
        let i = index();
        let names = |q: &str| i.search(q).iter().map(|t| t.binding.clone()).collect::<Vec<_>>();
        assert_eq!(names(""), vec!["mcp.git_hub.get_issue", "mcp.git_hub.list_prs"]);
        assert_eq!(names("ISSUE number"), vec!["mcp.git_hub.get_issue"]);
        assert_eq!(names("pull"), vec!["mcp.git_hub.list_prs"]);
        assert!(names("nothing").is_empty());
    }

    #[test]
    fn compact_api_is_one_line_per_tool() {
        let api = index().compact_api(10_000);
        assert!(api.contains("mcp.git_hub.get_issue(args: { number: number }): Promise<unknown>; // Get one issue by number."), "{api}");
        assert!(api.contains("mcp.git_hub.list_prs(args?: "), "{api}");
        let small = index().compact_api(10);
        assert!(small.contains("and 2 more tools"), "{small}");
    }

    #[test]
    fn names_resolve_in_every_spelling() {
        let i = index();
        let names =
            vec!["git-hub.get-issue".to_string(), "mcp.git_hub.list_prs".to_string(), "nope".to_string()];
        let (found, missing) = i.by_names(&names);
        assert_eq!(found.len(), 2);
        assert_eq!(missing, vec!["nope"]);
        let ts = declarations(&found);
        assert!(ts.contains("get_issue(") && ts.contains("list_prs("), "{ts}");
    }
}
