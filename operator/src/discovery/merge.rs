//! Merging what the executors report into an McpServer's status: every Ready policy that binds the
//! server is asked (`discover`), the answers are combined ([`summarize`]), and the result goes into the
//! status fields ([`merge`]), bounded because an upstream server is untrusted input.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::core::DeserializeGuard;
use mcp_guard_crds::v1alpha1::{McpGuardPolicy, McpServer, McpServerStatus, ServerInfo, ToolSummary};

use super::ServerReport;
use crate::conditions::*;
use crate::context::Context;
use crate::reconcile::RECHECK;

/// How often the tools of a server that was discovered are looked at again.
pub const DISCOVERY_REFRESH: Duration = Duration::from_secs(60);
/// How soon discovery is tried again while a binding policy's executor is unreachable or not connected.
pub const DISCOVERY_RETRY: Duration = Duration::from_secs(15);
/// An upstream server is untrusted input and a Kubernetes object has a size limit (etcd: ~1.5 MiB), so
/// the status lists at most this many tools (`toolCount` stays the real number)...
pub const MAX_STATUS_TOOLS: usize = 256;
/// ...with descriptions of at most this many characters, and names and server info cut likewise.
pub const MAX_STATUS_DESCRIPTION: usize = 256;
pub const MAX_STATUS_NAME: usize = 128;

/// The tools as the status lists them: the first [`MAX_STATUS_TOOLS`], strings cut.
pub fn bounded_tools(tools: Vec<ToolSummary>) -> Vec<ToolSummary> {
    tools
        .into_iter()
        .take(MAX_STATUS_TOOLS)
        .map(|t| ToolSummary {
            name: bounded(&t.name, MAX_STATUS_NAME),
            description: t.description.map(|d| bounded(&d, MAX_STATUS_DESCRIPTION)),
        })
        .collect()
}

/// `s` cut to at most `max` characters (on a character boundary), marked with `…` when cut.
pub fn bounded(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some(_) => {
            let cut: String = s.chars().take(max.saturating_sub(1)).collect();
            format!("{cut}…")
        }
    }
}

/// Merge what discovery found into an McpServer's `status`: `tools`, `toolCount` and `serverInfo`,
/// bounded. When this round learnt nothing, what the last handshake reported (in `last`, the status as
/// it was) stays; the Discovered condition says it may be stale.
pub fn merge(status: &mut McpServerStatus, found: Discovery, last: Option<&McpServerStatus>) {
    let (tools, server_info) = match (found.tools, last) {
        (Some(tools), _) => (Some((tools.len(), tools)), found.server_info),
        (None, Some(last)) => (
            last.tool_count.map(|n| (usize::try_from(n).unwrap_or(0), last.tools.clone())),
            last.server_info.clone(),
        ),
        (None, None) => (None, None),
    };
    if let Some((count, tools)) = tools {
        status.tool_count = Some(i32::try_from(count).unwrap_or(i32::MAX));
        status.tools = bounded_tools(tools);
    }
    status.server_info = server_info.map(|i| ServerInfo {
        name: bounded(&i.name, MAX_STATUS_NAME),
        version: i.version.map(|v| bounded(&v, MAX_STATUS_NAME)),
        protocol_version: i.protocol_version.map(|v| bounded(&v, MAX_STATUS_NAME)),
    });
}

/// What one Ready policy that binds the server answered.
#[derive(Debug, Clone)]
pub struct PolicyAnswer {
    /// The policy's name.
    pub policy: String,
    /// The server's name in that policy's executor: the binding's alias, or the McpServer's name.
    pub sandbox_name: String,
    pub result: Result<Vec<ServerReport>, String>,
}

/// The outcome of discovery for one server.
#[derive(Debug, Clone, PartialEq)]
pub struct Discovery {
    /// The `Discovered` condition.
    pub ok: bool,
    pub reason: &'static str,
    pub message: String,
    /// On success: the union of the tools, sorted by name; `None` when nothing was learnt.
    pub tools: Option<Vec<ToolSummary>>,
    pub server_info: Option<ServerInfo>,
    /// When to look again.
    pub requeue: Duration,
    /// The server's credentials a binding proxy reported it has no value for (`secret/key`, or the
    /// source), each with the policy that reported it.
    pub missing_credentials: BTreeMap<String, Vec<String>>,
}

impl Discovery {
    /// Nothing learnt, and why.
    fn failed(reason: &'static str, message: String, requeue: Duration) -> Self {
        Discovery {
            ok: false,
            reason,
            message,
            tools: None,
            server_info: None,
            requeue,
            missing_credentials: BTreeMap::new(),
        }
    }
}

/// Combine the answers of every Ready policy that binds a server (in policy-name order) into its
/// status: any connected report wins; otherwise the most telling failure, every policy named.
pub fn summarize(ns: &str, answers: &[PolicyAnswer]) -> Discovery {
    if answers.is_empty() {
        let message = format!("no Ready McpGuardPolicy in namespace {ns} binds this server");
        return Discovery::failed(REASON_NOT_BOUND, message, RECHECK);
    }
    let mut via = Vec::new();
    let mut tools: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut server_info = None;
    let (mut disconnected, mut unreachable) = (Vec::new(), Vec::new());
    let mut missing_credentials: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for answer in answers {
        let policy = &answer.policy;
        if let Ok(reports) = &answer.result {
            let report = reports.iter().filter(|r| r.name == answer.sandbox_name);
            for missing in super::missing_credentials(report) {
                missing_credentials.entry(missing).or_default().push(policy.clone());
            }
        }
        match &answer.result {
            Err(e) => unreachable.push(format!("McpGuardPolicy {policy}: {e}")),
            Ok(reports) => match reports.iter().find(|r| r.name == answer.sandbox_name) {
                None => disconnected.push(format!(
                    "McpGuardPolicy {policy}: its executor does not bind `{}` yet",
                    answer.sandbox_name
                )),
                Some(r) if !r.connected => {
                    let why = if r.error.is_empty() { "not connected yet" } else { r.error.as_str() };
                    disconnected.push(format!("McpGuardPolicy {policy}: {why}"));
                }
                Some(r) => {
                    via.push(policy.as_str());
                    for t in &r.tools {
                        let entry = tools.entry(t.name.clone()).or_insert(None);
                        if entry.is_none() {
                            entry.clone_from(&t.description);
                        }
                    }
                    if server_info.is_none() && !r.server_name.is_empty() {
                        server_info = Some(ServerInfo {
                            name: r.server_name.clone(),
                            version: Some(r.server_version.clone()).filter(|v| !v.is_empty()),
                            protocol_version: Some(r.protocol_version.clone()).filter(|v| !v.is_empty()),
                        });
                    }
                }
            },
        }
    }
    if !via.is_empty() {
        let tools: Vec<ToolSummary> =
            tools.into_iter().map(|(name, description)| ToolSummary { name, description }).collect();
        let message = match via.as_slice() {
            [one] => format!("handshake through McpGuardPolicy {one}: {} tools", tools.len()),
            [first, rest @ ..] => format!(
                "handshake through McpGuardPolicy {first} (and {}): {} tools",
                rest.join(", "),
                tools.len()
            ),
            [] => String::new(),
        };
        return Discovery {
            ok: true,
            reason: REASON_HANDSHAKE,
            message,
            tools: Some(tools),
            server_info,
            requeue: DISCOVERY_REFRESH,
            missing_credentials,
        };
    }
    let (reason, problems) = if disconnected.is_empty() {
        (REASON_UNREACHABLE, unreachable)
    } else {
        disconnected.extend(unreachable);
        (REASON_DISCONNECTED, disconnected)
    };
    Discovery { missing_credentials, ..Discovery::failed(reason, problems.join("; "), DISCOVERY_RETRY) }
}

/// Whether `policy` reports `Ready=True`.
fn policy_ready(policy: &McpGuardPolicy) -> bool {
    policy.status.as_ref().is_some_and(|s| status_of(&s.conditions, READY) == Some("True"))
}

/// Ask the executors of the Ready policies in `ns` that bind `mcp` about it.
pub(crate) async fn discover(ctx: &Context, mcp: &McpServer, ns: &str) -> Discovery {
    let name = mcp.name_any();
    // Policies that do not parse are skipped, as the watches do.
    let api: Api<DeserializeGuard<McpGuardPolicy>> = Api::namespaced(ctx.client.clone(), ns);
    let policies = match api.list(&ListParams::default()).await {
        Ok(list) => list.items,
        Err(e) => {
            let message = format!("cannot list the McpGuardPolicies of namespace {ns}: {e}");
            return Discovery::failed(REASON_UNREACHABLE, message, DISCOVERY_RETRY);
        }
    };
    let mut binding: Vec<(McpGuardPolicy, String)> = policies
        .into_iter()
        .filter_map(|g| g.0.ok())
        .filter(policy_ready)
        .filter_map(|p| {
            let b = p.spec.servers.iter().find(|b| b.name == name)?;
            let sandbox_name = b.alias.clone().unwrap_or_else(|| b.name.clone());
            Some((p, sandbox_name))
        })
        .collect();
    binding.sort_by_key(|(p, _)| p.name_any());
    let mut answers = Vec::new();
    for (policy, sandbox_name) in binding {
        let result = ctx.discovery.servers(&ctx.client, &ctx.settings, &policy).await;
        if let Err(e) = &result {
            tracing::debug!(policy = %policy.name_any(), error = %e, "discovery failed");
        }
        answers.push(PolicyAnswer { policy: policy.name_any(), sandbox_name, result });
    }
    summarize(ns, &answers)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn status_tools_are_bounded_whatever_the_upstream_sends() {
        // 5,000 tools with 10,000-character multi-byte descriptions would make a ~100 MB status.
        let tools: Vec<ToolSummary> = (0..5000)
            .map(|i| ToolSummary {
                name: format!("{i:05}{}", "n".repeat(1000)),
                description: Some("é".repeat(10_000)),
            })
            .collect();
        let listed = super::bounded_tools(tools);
        assert_eq!(listed.len(), super::MAX_STATUS_TOOLS);
        assert_eq!(listed[0].name.chars().count(), super::MAX_STATUS_NAME);
        assert!(listed[0].name.starts_with("00000") && listed[0].name.ends_with('…'));
        let d = listed[255].description.as_deref().unwrap();
        assert_eq!(d.chars().count(), super::MAX_STATUS_DESCRIPTION);
        assert!(d.ends_with('…'));
        let bytes = serde_json::to_vec(&listed).unwrap().len();
        assert!(bytes < 300 * 1024, "status tools take {bytes} bytes");
        // Short strings are untouched.
        assert_eq!(super::bounded("get_issue", 128), "get_issue");
        assert_eq!(super::bounded("", 3), "");
        assert_eq!(super::bounded("abcd", 4), "abcd");
        assert_eq!(super::bounded("abcde", 4), "abc…");
    }

    fn report(name: &str, connected: bool, tools: &[(&str, &str)]) -> ServerReport {
        ServerReport {
            name: name.into(),
            connected,
            server_name: if connected { "time-server".into() } else { String::new() },
            server_version: if connected { "2.1".into() } else { String::new() },
            protocol_version: if connected { "2025-06-18".into() } else { String::new() },
            error: if connected { String::new() } else { "connection refused".into() },
            tools: tools
                .iter()
                .map(|(n, d)| ToolSummary {
                    name: n.to_string(),
                    description: Some(d.to_string()).filter(|d| !d.is_empty()),
                })
                .collect(),
            missing_credentials: Vec::new(),
        }
    }

    #[test]
    fn missing_credentials_are_named_with_the_policies_that_report_them() {
        let mut gh = report("github", false, &[]);
        gh.missing_credentials = vec![
            "/var/run/secrets/mcp-guard/gh-token/token".into(),
            "/var/run/secrets/mcp-guard/gh-token/token".into(),
            "env:GH_TOKEN".into(),
        ];
        // Another server's missing credential is not this server's.
        let mut other = report("other", false, &[]);
        other.missing_credentials = vec!["/var/run/secrets/mcp-guard/other/key".into()];
        let d = summarize(
            "team-a",
            &[
                answer("p1", "github", Ok(vec![gh.clone(), other.clone()])),
                answer("p2", "gh", Ok(vec![gh.clone()])),
                answer("p3", "github", Ok(vec![report("github", true, &[("x", "")])])),
            ],
        );
        assert_eq!(
            d.missing_credentials,
            BTreeMap::from([
                ("env:GH_TOKEN".to_string(), vec!["p1".to_string()]),
                ("gh-token/token".to_string(), vec!["p1".to_string()]),
            ])
        );
        // It is still discovered through p3: a credential missing in one policy is that policy's problem.
        assert!(d.ok);
        let none = summarize("team-a", &[answer("p3", "github", Ok(vec![report("github", true, &[])]))]);
        assert!(none.missing_credentials.is_empty());
    }

    fn answer(policy: &str, sandbox: &str, result: Result<Vec<ServerReport>, String>) -> PolicyAnswer {
        PolicyAnswer { policy: policy.into(), sandbox_name: sandbox.into(), result }
    }

    #[test]
    fn nothing_bound_is_not_bound() {
        let d = summarize("team-a", &[]);
        assert_eq!((d.ok, d.reason, d.tools), (false, REASON_NOT_BOUND, None));
        assert!(d.message.contains("team-a"), "{}", d.message);
    }

    #[test]
    fn connected_reports_are_merged_sorted_under_the_sandbox_name() {
        let d = summarize(
            "team-a",
            &[
                answer("a", "clock", Err("timed out".into())),
                answer(
                    "b",
                    "clock",
                    Ok(vec![
                        report("other", true, &[("x", "")]),
                        report("clock", true, &[("now", "The time.")]),
                    ]),
                ),
                answer("c", "time", Ok(vec![report("time", true, &[("convert", ""), ("now", "")])])),
            ],
        );
        assert!(d.ok);
        assert_eq!(d.reason, REASON_HANDSHAKE);
        assert_eq!(d.message, "handshake through McpGuardPolicy b (and c): 2 tools");
        let tools = d.tools.unwrap();
        assert_eq!(tools.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["convert", "now"]);
        assert_eq!(tools[1].description.as_deref(), Some("The time."));
        let info = d.server_info.unwrap();
        assert_eq!((info.name.as_str(), info.version.as_deref()), ("time-server", Some("2.1")));
        assert_eq!(info.protocol_version.as_deref(), Some("2025-06-18"));
        assert_eq!(d.requeue, DISCOVERY_REFRESH);
    }

    #[test]
    fn failures_say_which_policy_and_why() {
        let d = summarize("team-a", &[answer("a", "time", Err("connect refused".into()))]);
        assert_eq!((d.ok, d.reason), (false, REASON_UNREACHABLE));
        assert_eq!(d.message, "McpGuardPolicy a: connect refused");
        assert_eq!(d.requeue, DISCOVERY_RETRY);
        let d = summarize(
            "team-a",
            &[
                answer("a", "time", Err("connect refused".into())),
                answer("b", "time", Ok(vec![report("time", false, &[])])),
                answer("c", "time", Ok(vec![])),
            ],
        );
        assert_eq!(d.reason, REASON_DISCONNECTED);
        assert_eq!(
            d.message,
            "McpGuardPolicy b: connection refused; McpGuardPolicy c: its executor does not bind `time` yet; \
             McpGuardPolicy a: connect refused"
        );
        assert!(d.tools.is_none() && d.server_info.is_none());
    }

    #[test]
    fn a_round_that_learnt_nothing_keeps_the_last_handshake() {
        let info = ServerInfo { name: "time".into(), version: None, protocol_version: None };
        let last = McpServerStatus {
            tools: vec![ToolSummary { name: "now".into(), description: None }],
            tool_count: Some(300),
            server_info: Some(info.clone()),
            ..Default::default()
        };
        let mut status = McpServerStatus::default();
        merge(&mut status, summarize("team-a", &[answer("a", "time", Err("x".into()))]), Some(&last));
        assert_eq!(
            (status.tool_count, status.tools, status.server_info),
            (Some(300), last.tools, Some(info))
        );
        // Nothing learnt, ever: nothing to report.
        let mut status = McpServerStatus::default();
        merge(&mut status, summarize("team-a", &[]), None);
        assert_eq!(status, McpServerStatus::default());
    }
}
