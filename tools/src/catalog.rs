//! The catalog: which servers and tools the sandbox's `mcp` object has, under which identifiers.

use std::sync::Arc;

use serde::Serialize;

use crate::ident::unique_idents;

/// One tool as the sandbox sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BoundTool {
    /// The tool's name on its server.
    pub name: String,
    /// The property name under `mcp.<server>`: a valid JavaScript identifier, unique within the server.
    pub ident: String,
}

/// One server as the sandbox sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BoundServer {
    pub name: String,
    /// The property name under `mcp`: a valid JavaScript identifier, unique among servers.
    pub ident: String,
    pub tools: Vec<BoundTool>,
}

/// The tools bound into every execution, with names mapped to identifiers without collisions.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    servers: Vec<BoundServer>,
    /// The catalog as JSON, built once and handed to every isolate.
    json: Arc<str>,
}

impl Catalog {
    /// Build a catalog from `(server, tool names)` pairs.
    pub fn new<S: AsRef<str>, T: AsRef<str>>(servers: impl IntoIterator<Item = (S, Vec<T>)>) -> Self {
        let servers: Vec<(String, Vec<String>)> = servers
            .into_iter()
            .map(|(s, tools)| {
                (s.as_ref().to_string(), tools.iter().map(|t| t.as_ref().to_string()).collect())
            })
            .collect();
        let server_idents = unique_idents(servers.iter().map(|(s, _)| s.as_str()));
        let bound: Vec<BoundServer> = server_idents
            .into_iter()
            .map(|(name, ident)| {
                let tool_names = servers
                    .iter()
                    .filter(|(s, _)| *s == name)
                    .flat_map(|(_, t)| t.iter().map(String::as_str))
                    .collect::<Vec<_>>();
                let tools = unique_idents(tool_names)
                    .into_iter()
                    .map(|(name, ident)| BoundTool { name, ident })
                    .collect();
                BoundServer { name, ident, tools }
            })
            .collect();
        let json = serde_json::to_string(&bound).unwrap_or_else(|_| "[]".to_string());
        Catalog { servers: bound, json: json.into() }
    }

    pub fn servers(&self) -> &[BoundServer] {
        &self.servers
    }

    /// The catalog as JSON (an array of servers with their tools and identifiers).
    pub fn json(&self) -> Arc<str> {
        if self.json.is_empty() { Arc::from("[]") } else { self.json.clone() }
    }

    /// Whether the catalog has this server and tool (by their MCP names).
    pub fn contains(&self, server: &str, tool: &str) -> bool {
        self.servers.iter().any(|s| s.name == server && s.tools.iter().any(|t| t.name == tool))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_valid_and_do_not_collide() {
        let c = Catalog::new([("git-hub", vec!["get-issue", "get_issue", "get.issue", "1st", "then", ""])]);
        let s = &c.servers()[0];
        assert_eq!(s.ident, "git_hub");
        let idents: Vec<(&str, &str)> = s.tools.iter().map(|t| (t.name.as_str(), t.ident.as_str())).collect();
        assert_eq!(
            idents,
            vec![
                ("get_issue", "get_issue"),
                ("", "_"),
                ("1st", "_1st"),
                ("get-issue", "get_issue_2"),
                ("get.issue", "get_issue_3"),
                ("then", "then_"),
            ]
        );
    }

    #[test]
    fn server_names_that_collide_get_distinct_identifiers() {
        let c = Catalog::new([("a-b", vec!["x"]), ("a_b", vec!["y"])]);
        let idents: Vec<&str> = c.servers().iter().map(|s| s.ident.as_str()).collect();
        assert_eq!(idents, vec!["a_b", "a_b_2"]);
        assert!(c.contains("a_b", "y") && !c.contains("a_b", "x"));
    }
}
