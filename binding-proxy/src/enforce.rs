//! Enforcement of one tool call: the execution is open and within its quota and budgets, the rate
//! limits allow it, the tool is bound and unchanged; then the call, within the remaining time, and the
//! result converted, budgeted and redacted. Every call is audited, refused or not.

use std::{
    num::NonZeroU32,
    time::{Duration, Instant},
};

use governor::{
    Quota, RateLimiter,
    clock::{Clock, DefaultClock},
    state::keyed::DefaultKeyedStateStore,
};
use mcp_guard_crds::Rate;
use mcp_guard_tools::FailureKind as Kind;
use serde_json::{Value, json};

use crate::{
    BindingProxy,
    approvals::{self, Entry, PendingCall, Recorded},
    audit, convert,
    redact::Redactor,
    upstream::UpstreamError,
};

/// A refused or failed tool call, as the sandbox will see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: Kind,
    pub message: String,
    pub retry_after: Option<Duration>,
}

impl Failure {
    pub(crate) fn new(kind: Kind, message: impl Into<String>) -> Self {
        Failure { kind, message: message.into(), retry_after: None }
    }
}

pub(crate) type KeyedLimiter = RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock>;

/// The limiter of one proxy replica out of `replicas`: each enforces `requests / replicas` (rounded
/// down) per `per`, so all replicas together never allow more than `requests`, however calls spread.
/// `Err` when the rate cannot be shared that way (fewer requests than replicas).
pub(crate) fn limiter(rate: &Option<Rate>, replicas: u32) -> Result<Option<KeyedLimiter>, String> {
    let Some(rate) = rate.as_ref() else { return Ok(None) };
    let share = rate.requests / replicas.max(1);
    let Some(burst) = NonZeroU32::new(share) else {
        return Err(format!(
            "a rate of {} requests cannot be shared by {replicas} binding-proxy replicas (each enforces \
             an equal share): allow at least {replicas} requests, or run fewer replicas",
            rate.requests
        ));
    };
    Ok(quota(rate, burst).map(RateLimiter::keyed))
}

fn quota(rate: &Rate, burst: NonZeroU32) -> Option<Quota> {
    let period = rate.per.duration().checked_div(burst.get())?;
    Some(Quota::with_period(period)?.allow_burst(burst))
}

impl BindingProxy {
    /// One tool call, checked against the policy, forwarded upstream, converted and redacted.
    pub async fn call(
        &self,
        execution_id: &str,
        server: &str,
        tool: &str,
        arguments_json: &str,
    ) -> Result<Value, Failure> {
        self.call_at(execution_id, None, server, tool, arguments_json).await
    }

    /// Like [`BindingProxy::call`], for the `sequence`-th call of the execution in issue order: how a
    /// resumed execution's calls are matched to its journal.
    pub async fn call_at(
        &self,
        execution_id: &str,
        sequence: Option<u64>,
        server: &str,
        tool: &str,
        arguments_json: &str,
    ) -> Result<Value, Failure> {
        let started = Instant::now();
        // Filled in by `call_checked` once the call is within its quota and budget: refused calls are
        // recorded without parsing their arguments, so they cannot flood the log.
        let mut seen = SeenArguments { sequence, ..SeenArguments::default() };
        let (caller, mut result) =
            self.call_checked(execution_id, server, tool, arguments_json, &mut seen).await;
        // The journal of an execution that may pause: every call that reached its upstream (or was
        // answered from the journal of the run it resumes), with its result.
        if let (Some(sequence), Some(digest), true) =
            (sequence, &seen.digest, seen.reached || seen.replayed || seen.denied)
            && self.approvals.is_some()
        {
            let recorded = match &result {
                Ok((v, _)) => Recorded::Value(v.clone()),
                Err(f) => Recorded::Failure { kind: f.kind, message: f.message.clone() },
            };
            if let Some(e) = self.executions.lock().unwrap_or_else(|p| p.into_inner()).get_mut(execution_id) {
                e.journal.push(Entry {
                    sequence,
                    server: server.to_string(),
                    tool: tool.to_string(),
                    arguments_sha256: digest.clone(),
                    result: recorded,
                });
            }
        }
        // Keys are bounded (and hashed when long) by `audit::shape`; redacted like everything else.
        if let Some(shape) = &mut seen.shape {
            self.redactor.redact_json(shape);
        }
        if let Some(args) = &mut seen.arguments {
            self.redactor.redact_json(args);
        }
        let (outcome, error, result_bytes) = match &result {
            Ok((_, bytes)) => ("ok", None, *bytes),
            Err(f) => (f.kind.as_str(), Some(f.message.clone()), 0),
        };
        let mut record = json!({
            "execution": execution_id, "caller": caller, "policy": self.config.policy, "server": server, "tool": tool,
            "argumentShape": seen.shape, "argumentBytes": arguments_json.len(), "resultBytes": result_bytes,
            "durationMs": started.elapsed().as_secs_f64() * 1000.0, "outcome": outcome, "error": error,
        });
        if let Some(args) = seen.arguments {
            record["arguments"] = args;
        }
        if seen.replayed {
            record["replayed"] = json!(true);
        }
        if let Some(sequence) = sequence {
            record["sequence"] = json!(sequence);
        }
        // Fail closed: a call that is not on record returns nothing to the sandbox (and while the log
        // cannot be written, `call_checked` refuses calls before they reach an upstream).
        if self.audit.record("tool_call", record).is_err() {
            result = Err(audit_failure());
        }
        result.map(|(v, _)| v)
    }

    async fn call_checked(
        &self,
        execution_id: &str,
        server: &str,
        tool: &str,
        arguments_json: &str,
        seen: &mut SeenArguments,
    ) -> (String, Result<(Value, u64), Failure>) {
        // The size is checked once, before anything parses or copies the arguments.
        let argument_bytes = arguments_json.len();
        // 1. The execution is open and within its quota and argument budget.
        let (caller, remaining) = {
            let mut executions = self.executions.lock().unwrap_or_else(|p| p.into_inner());
            let Some(e) = executions.get_mut(execution_id) else {
                return (
                    String::new(),
                    Err(Failure::new(
                        Kind::UnknownExecution,
                        format!("execution {execution_id} is not open"),
                    )),
                );
            };
            let caller = e.caller.clone();
            // Refused calls that never reach an upstream do not use up the quota.
            let known = self.upstream(server).is_some_and(|u| u.tool(tool).is_some() || u.tools().is_empty());
            if !known {
                return (
                    caller,
                    Err(Failure::new(
                        Kind::Denied,
                        format!("tool {server}.{tool} is not bound by policy {}", self.config.policy),
                    )),
                );
            }
            if e.calls >= self.config.limits.tool_calls {
                return (
                    caller,
                    Err(Failure::new(
                        Kind::QuotaExceeded,
                        format!(
                            "the execution has used its quota of {} tool calls",
                            self.config.limits.tool_calls
                        ),
                    )),
                );
            }
            let budget = self.config.binding.argument_bytes.bytes();
            if e.argument_bytes + argument_bytes as u64 > budget {
                return (
                    caller,
                    Err(Failure::new(
                        Kind::BudgetExceeded,
                        format!(
                            "the execution's tool arguments would exceed the budget of {}",
                            self.config.binding.argument_bytes
                        ),
                    )),
                );
            }
            // While the audit log cannot be written nothing reaches an upstream (fail closed).
            if self.audit.failing() {
                return (caller, Err(audit_failure()));
            }
            e.calls += 1;
            e.argument_bytes += argument_bytes as u64;
            (caller, e.deadline.saturating_duration_since(Instant::now()))
        };
        // Within quota and budget: parse once, and shape for the audit record.
        let arguments: Result<Value, _> = serde_json::from_str(arguments_json);
        if let Ok(value) = &arguments {
            seen.shape = Some(audit::shape(value));
            if self.config.binding.audit.include_arguments {
                seen.arguments = Some(value.clone());
            }
        }
        // 1b. Approvals: a resumed execution's calls are answered from its journal, or are the decided
        //     ones; a call of a tool that needs approval pauses the execution.
        if let Some(failure_or_value) =
            self.approval_step(execution_id, server, tool, &arguments, arguments_json, seen)
        {
            return (caller, failure_or_value);
        }
        // 2. Rate limits, per caller and per tool.
        for (limiter, key, what) in [
            (&self.per_caller, caller.clone(), format!("caller {caller}")),
            (&self.per_tool, format!("{server}/{tool}"), format!("tool {server}.{tool}")),
        ] {
            if let Some(limiter) = limiter
                && let Err(not_until) = limiter.check_key(&key)
            {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let secs = wait.as_secs_f64().max(0.001);
                return (
                    caller.clone(),
                    Err(Failure {
                        kind: Kind::RateLimited,
                        message: format!("rate limited ({what}), retry after {secs:.1} s"),
                        retry_after: Some(wait),
                    }),
                );
            }
        }
        // 3. The arguments are a JSON object and the definition is still the pinned one.
        let arguments = match arguments {
            Ok(Value::Object(map)) => map,
            Ok(_) => {
                return (caller, Err(Failure::new(Kind::ToolError, "tool arguments must be a JSON object")));
            }
            Err(e) => {
                return (
                    caller,
                    Err(Failure::new(Kind::ToolError, format!("tool arguments are not valid JSON: {e}"))),
                );
            }
        };
        let Some(upstream) = self.upstream(server) else {
            return (caller, Err(Failure::new(Kind::Denied, format!("server {server} is not bound"))));
        };
        // A server that was down (or refused) at startup is connected, and its tools discovered, on use.
        if upstream.tool(tool).is_none() {
            if let Err(e) = upstream.ensure_connected().await {
                return (caller, Err(upstream_failure(e, &self.redactor)));
            }
            if upstream.tool(tool).is_none() {
                return (
                    caller,
                    Err(Failure::new(
                        Kind::Denied,
                        format!("tool {server}.{tool} is not bound by policy {}", self.config.policy),
                    )),
                );
            }
        }
        if upstream.tool(tool).is_some_and(|t| t.changed) {
            return (
                caller,
                Err(Failure::new(
                    Kind::DefinitionChanged,
                    format!(
                        "tool {server}.{tool} changed its definition after it was pinned; calls are refused until an operator reviews it"
                    ),
                )),
            );
        }
        // 4. The call, within the server's timeout and the execution's remaining time.
        if remaining.is_zero() {
            return (caller, Err(Failure::new(Kind::Timeout, "the execution has no time left")));
        }
        seen.reached = true;
        let result = match upstream.call(tool, arguments, remaining).await {
            Ok(r) => r,
            Err(e) => return (caller, Err(upstream_failure(e, &self.redactor))),
        };
        // 5. Result budget, conversion and redaction.
        if result.is_error == Some(true) {
            let message = self.redactor.redact(&convert::error_message(&result)).into_owned();
            return (caller, Err(Failure::new(Kind::ToolError, message)));
        }
        let mut value = convert::plain_value(&result);
        self.redactor.redact_json(&mut value);
        let bytes = value.to_string().len() as u64;
        let over = {
            let mut executions = self.executions.lock().unwrap_or_else(|p| p.into_inner());
            match executions.get_mut(execution_id) {
                Some(e) => {
                    e.result_bytes += bytes;
                    e.result_bytes > self.config.binding.result_bytes.bytes()
                }
                None => false,
            }
        };
        if over {
            return (
                caller,
                Err(Failure::new(
                    Kind::BudgetExceeded,
                    format!(
                        "the execution's tool results exceed the budget of {}",
                        self.config.binding.result_bytes
                    ),
                )),
            );
        }
        (caller, Ok((value, bytes)))
    }
}

impl BindingProxy {
    /// The approval step of a call within quota and budget. `Some` answers the call here: from the
    /// journal of a resumed run, refused as diverged or denied, or paused for approval. `None`: go on
    /// (no approvals, a free tool, or the approved call of a resume).
    fn approval_step(
        &self,
        execution_id: &str,
        server: &str,
        tool: &str,
        arguments: &Result<Value, serde_json::Error>,
        arguments_json: &str,
        seen: &mut SeenArguments,
    ) -> Option<Result<(Value, u64), Failure>> {
        self.approvals.as_ref()?;
        let digest = match arguments {
            Ok(v) => approvals::digest(v),
            Err(_) => approvals::digest(&Value::String(arguments_json.to_string())),
        };
        seen.digest = Some(digest.clone());
        let needs_approval = self.upstream(server).is_some_and(|u| u.config.tools.needs_approval(tool));
        let Some(sequence) = seen.sequence else {
            // Without its position a call cannot pause (or be matched): fail closed.
            return needs_approval.then(|| {
                Err(Failure::new(
                    Kind::Denied,
                    format!(
                        "{server}.{tool} needs approval, and the executor did not give the call's position"
                    ),
                ))
            });
        };
        let mut executions = self.executions.lock().unwrap_or_else(|p| p.into_inner());
        let e = executions.get_mut(execution_id)?;
        if let Some(replay) = &mut e.replay {
            let describe =
                |s: &str, t: &str, d: &str| format!("{s}.{t} (arguments sha256:{})", &d[..d.len().min(12)]);
            let diverged = |expected: String| {
                Failure::new(
                    Kind::ReplayDiverged,
                    format!(
                        "call #{sequence} of the resumed run is {}, but call #{sequence} of the first run was {expected}: the code took another path (is it deterministic?); nothing was sent upstream",
                        describe(server, tool, &digest)
                    ),
                )
            };
            if let Some(entry) = replay.entries.get(&sequence) {
                if entry.server != server || entry.tool != tool || entry.arguments_sha256 != digest {
                    let f = diverged(describe(&entry.server, &entry.tool, &entry.arguments_sha256));
                    self.record_divergence(execution_id, &e.caller, &replay.approval, sequence, &f.message);
                    return Some(Err(f));
                }
                seen.replayed = true;
                return Some(match &entry.result {
                    Recorded::Value(v) => {
                        let bytes = v.to_string().len() as u64;
                        e.result_bytes += bytes;
                        Ok((v.clone(), bytes))
                    }
                    Recorded::Failure { kind, message } => Err(Failure::new(*kind, message.clone())),
                });
            }
            if let Some((s, t, d)) = replay.decided.get(&sequence) {
                if s != server || t != tool || *d != digest {
                    let f = diverged(describe(s, t, d));
                    self.record_divergence(execution_id, &e.caller, &replay.approval, sequence, &f.message);
                    return Some(Err(f));
                }
                // Decided calls are taken once: the same position again is a new call.
                replay.decided.remove(&sequence);
                return match replay.verdict {
                    Some(approvals::Verdict::Approved) => None,
                    _ => {
                        // Journaled too: a later pause of this run must not ask for it again.
                        seen.denied = true;
                        let reason = if replay.reason.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", replay.reason)
                        };
                        Some(Err(Failure::new(
                            Kind::ApprovalDenied,
                            format!(
                                "the call of {server}.{tool} was denied by {}{reason}",
                                replay.decided_by
                            ),
                        )))
                    }
                };
            }
        }
        if !needs_approval {
            return None;
        }
        let mut shown =
            arguments.as_ref().cloned().unwrap_or_else(|_| Value::String(arguments_json.to_string()));
        self.redactor.redact_json(&mut shown);
        e.paused.push(PendingCall {
            sequence,
            server: server.to_string(),
            tool: tool.to_string(),
            arguments: shown,
            arguments_sha256: digest,
        });
        Some(Err(Failure::new(
            Kind::ApprovalRequired,
            format!(
                "{server}.{tool} needs approval under policy {}: the execution pauses",
                self.config.policy
            ),
        )))
    }

    fn record_divergence(
        &self,
        execution_id: &str,
        caller: &str,
        approval: &str,
        sequence: u64,
        message: &str,
    ) {
        let _ = self.audit.record(
            "replay_diverged",
            json!({ "execution": execution_id, "caller": caller, "policy": self.config.policy, "approval": approval, "sequence": sequence, "error": message }),
        );
    }
}

/// What the audit record of a call may say about its arguments.
#[derive(Default)]
struct SeenArguments {
    /// The call's position in issue order, when the executor said.
    sequence: Option<u64>,
    /// The argument digest, when approvals are configured.
    digest: Option<String>,
    /// The call was sent upstream.
    reached: bool,
    /// The call was answered from a resumed run's journal.
    replayed: bool,
    /// The call was refused by a denied approval.
    denied: bool,
    /// The bounded shape, for calls within quota and budget whose arguments parse.
    shape: Option<Value>,
    /// The values, when the policy records them (`includeArguments: true`).
    arguments: Option<Value>,
}

fn audit_failure() -> Failure {
    Failure::new(
        Kind::Unavailable,
        "the binding proxy cannot write its audit log; tool calls are refused until it can",
    )
}

fn upstream_failure(e: UpstreamError, redactor: &Redactor) -> Failure {
    let message = redactor.redact(&e.to_string()).into_owned();
    match e {
        UpstreamError::Timeout(_) => Failure::new(Kind::Timeout, message),
        UpstreamError::AddressRefused(_) => Failure::new(Kind::AddressRefused, message),
        UpstreamError::Unavailable(_) => Failure::new(Kind::Unavailable, message),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::{Arc, atomic::Ordering};

    use mcp_guard_crds::GuardConfig;

    use super::*;
    use crate::audit::{AuditLog, MAX_LINE_BYTES};

    use crate::audit::tests::Sink;

    fn last_call(sink: &Sink) -> (usize, Value) {
        let line = sink.lines().into_iter().rev().find(|l| l.contains("\"tool_call\"")).unwrap();
        (line.len(), serde_json::from_str(&line).unwrap())
    }

    /// A proxy with one server that never starts (its tools are unknown, so calls pass the binding
    /// check and count against the quota, then fail as unavailable).
    fn proxy(limits: &str, sink: &Sink) -> Arc<BindingProxy> {
        let yaml = format!(
            "{limits}servers:\n  - name: s\n    command: /nonexistent/mcp-guard-test-server\n    args: [stdio]\n"
        );
        let config = GuardConfig::from_yaml(&yaml, "test").unwrap();
        BindingProxy::new(config, AuditLog::to_writer(Box::new(sink.clone())))
    }

    fn keys(n: usize, len: usize) -> String {
        let map: serde_json::Map<String, Value> =
            (0..n).map(|i| (format!("{i:04}{}", "k".repeat(len)), json!(1))).collect();
        Value::Object(map).to_string()
    }

    #[tokio::test]
    async fn over_budget_arguments_are_refused_before_parsing() {
        let sink = Sink::default();
        let p = proxy("binding:\n  argumentBytes: 1Ki\n", &sink);
        p.begin("e1", "c", "00").unwrap();
        // Not JSON at all, and over the budget: the budget answers, the parser never runs.
        let f = p.call("e1", "s", "t", &format!("{{{}", "x".repeat(4096))).await.unwrap_err();
        assert_eq!(f.kind, Kind::BudgetExceeded, "{f:?}");
        // Valid JSON over the budget: refused, and not parsed (no shape is recorded).
        let f = p.call("e1", "s", "t", &keys(64, 4096)).await.unwrap_err();
        assert_eq!(f.kind, Kind::BudgetExceeded, "{f:?}");
        let (len, record) = last_call(&sink);
        assert_eq!(record["outcome"], "budget_exceeded");
        assert!(record["argumentShape"].is_null(), "a refused call's arguments are not parsed: {len} bytes");
        assert!(len <= MAX_LINE_BYTES, "{len} bytes");
    }

    #[tokio::test]
    async fn calls_over_quota_are_recorded_without_their_keys() {
        let sink = Sink::default();
        let p = proxy("limits:\n  toolCalls: 1\nbinding:\n  argumentBytes: 8Mi\n", &sink);
        p.begin("e1", "c", "00").unwrap();
        let _ = p.call("e1", "s", "t", "{}").await;
        for _ in 0..3 {
            let f = p.call("e1", "s", "t", &keys(1000, 1000)).await.unwrap_err();
            assert_eq!(f.kind, Kind::QuotaExceeded, "{f:?}");
            let (len, record) = last_call(&sink);
            assert!(len <= MAX_LINE_BYTES, "a refused call wrote {len} bytes");
            assert!(record["argumentShape"].is_null(), "{record}");
        }
    }

    #[tokio::test]
    async fn argument_keys_are_bounded_and_long_ones_hashed_in_the_audit_line() {
        let sink = Sink::default();
        let p = proxy("binding:\n  argumentBytes: 8Mi\n", &sink);
        p.begin("e1", "c", "00").unwrap();
        let secret_key = format!("result-data-{}", "s".repeat(200));
        let mut args: serde_json::Map<String, Value> =
            (0..5000).map(|i| (format!("{i:04}{}", "k".repeat(1000)), json!({"deep": [1]}))).collect();
        args.insert(secret_key.clone(), json!("v"));
        let _ = p.call("e1", "s", "t", &Value::Object(args).to_string()).await;
        let (len, record) = last_call(&sink);
        assert!(len <= MAX_LINE_BYTES, "{len} bytes");
        let text = record.to_string();
        assert!(!text.contains("result-data-"), "long keys are hashed: {text}");
        assert!(!text.contains(&"k".repeat(100)), "long keys are hashed");
        let shape = record["argumentShape"].as_object().unwrap();
        assert!(shape.keys().any(|k| k.starts_with("sha256:") && k.len() == "sha256:".len() + 16), "{text}");
        assert!(shape.len() <= 65, "{}", shape.len());
    }

    #[tokio::test]
    async fn a_failing_audit_log_fails_begin_and_calls_closed() {
        let sink = Sink::default();
        let p = proxy("", &sink);
        p.begin("e1", "c", "00").unwrap();
        sink.1.store(true, Ordering::SeqCst);
        assert!(p.begin("e2", "c", "00").is_err(), "an execution that is not on record is not opened");
        assert!(p.call("e2", "s", "t", "{}").await.is_err(), "e2 was not opened");
        let f = p.call("e1", "s", "t", "{}").await.unwrap_err();
        assert!(f.message.contains("audit log"), "{f:?}");
        // Once the log can be written again, work resumes.
        sink.1.store(false, Ordering::SeqCst);
        let _ = p.call("e1", "s", "t", "{}").await;
        assert!(p.begin("e3", "c", "00").is_ok());
    }
}
