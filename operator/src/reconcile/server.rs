//! `McpServer` → for `deploy`: Deployment, Service, NetworkPolicy; for every server: status, including
//! its tools and `serverInfo` as the executors of the Ready policies that bind it report them (see
//! [`crate::discovery`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use mcp_guard_crds::v1alpha1::{McpGuardPolicy, McpServer, ServerInfo, ToolSummary};
use serde_json::json;
use tracing::instrument;

use super::{announce, apply, apply_status};
use crate::build::{network, server};
use crate::conditions::*;
use crate::context::{Context, Error};
use crate::discovery::ServerReport;

const RECHECK: Duration = Duration::from_secs(300);
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

/// An invalid spec: status with its conditions, an event on the transition, then wait for a change.
async fn invalid_spec(
    ctx: &Context,
    mcp: &McpServer,
    generation: Option<i64>,
    refs: Condition,
    ready: Condition,
    previous: &[Condition],
) -> Result<Action, Error> {
    apply_status(&ctx.client, mcp, json!({"conditions": [refs, ready], "observedGeneration": generation}))
        .await?;
    announce(ctx, mcp, previous, &ready).await;
    Ok(Action::await_change())
}

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

#[instrument(skip(mcp, ctx), fields(server = %mcp.name_any()))]
pub async fn reconcile(mcp: Arc<McpServer>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.duration.with_label_values(&["McpServer"]).start_timer();
    ctx.metrics.reconciliations.with_label_values(&["McpServer"]).inc();
    let ns = mcp.namespace().ok_or(Error::MissingField("metadata.namespace"))?;
    let key = format!("McpServer/{ns}/{}", mcp.name_any());
    let previous = mcp.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default();
    let generation = mcp.metadata.generation;
    let now = Timestamp::now();
    let cond = |t: &str, ok: bool, reason: &str, msg: String| {
        condition(t, ok, reason, msg, generation, &previous, now)
    };

    // Dereference: the Secrets of its headers, as metadata only.
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let names: BTreeSet<&str> =
        mcp.spec.headers.iter().filter_map(|h| h.secret_key_ref.as_ref().map(|r| r.name.as_str())).collect();
    let mut missing = Vec::new();
    for n in names {
        if secrets.get_metadata_opt(n).await?.is_none() {
            missing.push(n);
        }
    }
    let refs = if missing.is_empty() {
        cond(RESOLVED_REFS, true, REASON_RESOLVED, String::new())
    } else {
        cond(
            RESOLVED_REFS,
            false,
            REASON_SECRET_NOT_FOUND,
            format!("Secret not found in namespace {ns}: {}", missing.join(", ")),
        )
    };
    let resolved = missing.is_empty();

    let (url, mut conditions, ready) = match (&mcp.spec.url, &mcp.spec.deploy) {
        (Some(url), None) => {
            let ready = if resolved {
                cond(READY, true, REASON_REMOTE, "remote server; the binding proxy connects to it".into())
            } else {
                cond(READY, false, &refs.reason, refs.message.clone())
            };
            (Some(url.clone()), vec![refs], ready)
        }
        (None, Some(deploy)) => {
            let owner = mcp.controller_owner_ref(&()).ok_or(Error::MissingField("metadata.uid"))?;
            match server::build(&mcp, deploy, &owner) {
                Err(invalid) => {
                    let ready = cond(READY, false, REASON_INVALID_SPEC, invalid.to_string());
                    return invalid_spec(&ctx, &mcp, generation, refs, ready, &previous).await;
                }
                Ok(objects) => {
                    apply(&ctx.client, &network::server_policy(&mcp, deploy.port, &owner)).await?;
                    let svc = apply(&ctx.client, &objects.service).await?;
                    let dep = apply(&ctx.client, &objects.deployment).await?;
                    let ip = svc.spec.as_ref().and_then(|s| s.cluster_ip.clone());
                    let url = server::server_url(&mcp, deploy, ip.as_deref());
                    let ready_replicas = dep.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0);
                    let ok = ready_replicas >= deploy.replicas.min(1);
                    let msg = format!("{ready_replicas} of {} server pods ready", deploy.replicas);
                    let available = if ok {
                        cond(AVAILABLE, true, REASON_AVAILABLE, msg)
                    } else {
                        cond(AVAILABLE, false, REASON_UNAVAILABLE, msg)
                    };
                    let ready = if !resolved {
                        cond(READY, false, &refs.reason, refs.message.clone())
                    } else if ok {
                        cond(READY, true, REASON_READY, "the server is running".into())
                    } else {
                        cond(READY, false, REASON_PENDING, "waiting for server pods".into())
                    };
                    (Some(url), vec![refs, available], ready)
                }
            }
        }
        _ => {
            let ready = cond(READY, false, REASON_INVALID_SPEC, "set exactly one of url or deploy".into());
            return invalid_spec(&ctx, &mcp, generation, refs, ready, &previous).await;
        }
    };
    conditions.push(ready.clone());

    // Discovery: informational, never a reason for Ready=False, never a reconcile error.
    let found = discover(&ctx, &mcp, &ns).await;
    conditions.push(cond(DISCOVERED, found.ok, found.reason, found.message.clone()));
    let mut status = json!({"conditions": conditions, "observedGeneration": generation, "url": url});
    // A failed discovery keeps what the last handshake reported; the condition says it may be stale.
    let last = mcp.status.as_ref();
    let (tools, server_info) = match found.tools {
        Some(tools) => (Some((tools.len(), tools)), found.server_info),
        None => match last.and_then(|s| s.tool_count.map(|n| (n, s))) {
            Some((n, s)) => (Some((usize::try_from(n).unwrap_or(0), s.tools.clone())), s.server_info.clone()),
            None => (None, last.and_then(|s| s.server_info.clone())),
        },
    };
    if let Some((count, tools)) = tools {
        status["toolCount"] = json!(count);
        status["tools"] = serde_json::to_value(bounded_tools(tools))?;
    }
    let server_info = server_info.map(|i| ServerInfo {
        name: bounded(&i.name, MAX_STATUS_NAME),
        version: i.version.map(|v| bounded(&v, MAX_STATUS_NAME)),
        protocol_version: i.protocol_version.map(|v| bounded(&v, MAX_STATUS_NAME)),
    });
    if let Some(info) = server_info {
        status["serverInfo"] = serde_json::to_value(info)?;
    }
    apply_status(&ctx.client, mcp.as_ref(), status).await?;
    announce(&ctx, mcp.as_ref(), &previous, &ready).await;
    ctx.succeeded(&key);
    Ok(Action::requeue(found.requeue.min(RECHECK)))
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
}

/// Combine the answers of every Ready policy that binds a server (in policy-name order) into its
/// status: any connected report wins; otherwise the most telling failure, every policy named.
pub fn summarize(ns: &str, answers: &[PolicyAnswer]) -> Discovery {
    if answers.is_empty() {
        return Discovery {
            ok: false,
            reason: REASON_NOT_BOUND,
            message: format!("no Ready McpGuardPolicy in namespace {ns} binds this server"),
            tools: None,
            server_info: None,
            requeue: RECHECK,
        };
    }
    let mut via = Vec::new();
    let mut tools: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut server_info = None;
    let (mut disconnected, mut unreachable) = (Vec::new(), Vec::new());
    for answer in answers {
        let policy = &answer.policy;
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
        };
    }
    let (reason, problems) = if disconnected.is_empty() {
        (REASON_UNREACHABLE, unreachable)
    } else {
        disconnected.extend(unreachable);
        (REASON_DISCONNECTED, disconnected)
    };
    Discovery {
        ok: false,
        reason,
        message: problems.join("; "),
        tools: None,
        server_info: None,
        requeue: DISCOVERY_RETRY,
    }
}

/// Whether `policy` reports `Ready=True`.
fn policy_ready(policy: &McpGuardPolicy) -> bool {
    policy.status.as_ref().is_some_and(|s| status_of(&s.conditions, READY) == Some("True"))
}

/// Ask the executors of the Ready policies in `ns` that bind `mcp` about it.
async fn discover(ctx: &Context, mcp: &McpServer, ns: &str) -> Discovery {
    let name = mcp.name_any();
    // Policies that do not parse are skipped, as the watches do.
    let api: Api<DeserializeGuard<McpGuardPolicy>> = Api::namespaced(ctx.client.clone(), ns);
    let policies = match api.list(&ListParams::default()).await {
        Ok(list) => list.items,
        Err(e) => {
            return Discovery {
                ok: false,
                reason: REASON_UNREACHABLE,
                message: format!("cannot list the McpGuardPolicies of namespace {ns}: {e}"),
                tools: None,
                server_info: None,
                requeue: DISCOVERY_RETRY,
            };
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
        }
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
}
