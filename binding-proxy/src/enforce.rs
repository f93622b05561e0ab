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

use crate::{BindingProxy, audit, convert, redact::Redactor, upstream::UpstreamError};

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

pub(crate) fn limiter(rate: &Option<Rate>) -> Option<KeyedLimiter> {
    let rate = rate.as_ref()?;
    let burst = NonZeroU32::new(rate.requests)?;
    let period = rate.per.duration().checked_div(rate.requests)?;
    let quota = Quota::with_period(period)?.allow_burst(burst);
    Some(RateLimiter::keyed(quota))
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
        let started = Instant::now();
        let arguments: Result<Value, _> = serde_json::from_str(arguments_json);
        let shape = arguments.as_ref().map(audit::shape).unwrap_or(Value::Null);
        let (caller, result) =
            self.call_checked(execution_id, server, tool, arguments, arguments_json.len()).await;
        let (outcome, error, result_bytes) = match &result {
            Ok((_, bytes)) => ("ok", None, *bytes),
            Err(f) => (f.kind.as_str(), Some(f.message.clone()), 0),
        };
        let mut record = json!({
            "execution": execution_id, "caller": caller, "policy": self.config.policy, "server": server, "tool": tool,
            "argumentShape": shape, "argumentBytes": arguments_json.len(), "resultBytes": result_bytes,
            "durationMs": started.elapsed().as_secs_f64() * 1000.0, "outcome": outcome, "error": error,
        });
        if self.config.binding.audit.include_arguments
            && let Ok(mut args) = serde_json::from_str::<Value>(arguments_json)
        {
            self.redactor.redact_json(&mut args);
            record["arguments"] = args;
        }
        self.audit.record("tool_call", record);
        result.map(|(v, _)| v)
    }

    async fn call_checked(
        &self,
        execution_id: &str,
        server: &str,
        tool: &str,
        arguments: Result<Value, serde_json::Error>,
        argument_bytes: usize,
    ) -> (String, Result<(Value, u64), Failure>) {
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
            e.calls += 1;
            e.argument_bytes += argument_bytes as u64;
            (caller, e.deadline.saturating_duration_since(Instant::now()))
        };
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

fn upstream_failure(e: UpstreamError, redactor: &Redactor) -> Failure {
    let message = redactor.redact(&e.to_string()).into_owned();
    match e {
        UpstreamError::Timeout(_) => Failure::new(Kind::Timeout, message),
        UpstreamError::AddressRefused(_) => Failure::new(Kind::AddressRefused, message),
        UpstreamError::Unavailable(_) => Failure::new(Kind::Unavailable, message),
    }
}
