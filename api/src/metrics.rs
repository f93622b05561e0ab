//! Prometheus metrics of the API, served as text on `/metrics`.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use mcp_guard_sandbox::{
    engine::confine,
    outcome::{Outcome, Status, ToolCallStatus},
};

use crate::Door;

/// Every metric of the API, in its own registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Executions that ran (or were rejected by validation), by door, outcome and limit.
    pub executions: IntCounterVec,
    /// Wall time of executions, by outcome.
    pub duration: HistogramVec,
    /// Tool calls made by executions, by status.
    pub tool_calls: IntCounterVec,
    /// Tool calls the binding proxy refused because of a rate limit.
    pub rate_limited: IntCounterVec,
    /// Isolates running now.
    pub active: IntGauge,
    /// Requests refused at the edge, by door and reason.
    pub refused: IntCounterVec,
    /// Authentication and authorisation failures, by door and reason.
    pub auth_failures: IntCounterVec,
    /// 1 for each confinement layer in force on isolate threads, 0 for each the kernel lacks.
    pub confinement: IntGaugeVec,
    /// Isolate-host processes started, killed at the wall-time limit, and crashed (a seccomp kill, a
    /// signal, out of memory), since the server started; and 1 when hosts run without their seccomp
    /// allow list (`--allow-weak-confinement`).
    pub isolate_hosts: IntGaugeVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, prometheus::Error> {
    let vec = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(vec.clone()))?;
    Ok(vec)
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("mcpguard".into()), None)?;
        let executions = counter(
            &registry,
            "executions_total",
            "Executions by door, outcome (rejected, completed, threw, limit_exceeded) and limit.",
            &["door", "outcome", "limit"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new("execution_duration_seconds", "Wall time of executions, by outcome.").buckets(
                vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    30.0, 60.0,
                ],
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(duration.clone()))?;
        let tool_calls =
            counter(&registry, "tool_calls_total", "Tool calls made by executions, by status.", &["status"])?;
        let rate_limited = counter(
            &registry,
            "rate_limited_tool_calls_total",
            "Tool calls refused by a rate limit of the binding proxy, by server.",
            &["server"],
        )?;
        let active = IntGauge::new("active_isolates", "Executions running in an isolate now.")?;
        registry.register(Box::new(active.clone()))?;
        let refused = counter(
            &registry,
            "refused_requests_total",
            "Execution requests refused at the edge, by door and reason.",
            &["door", "reason"],
        )?;
        let auth_failures = counter(
            &registry,
            "auth_failures_total",
            "Requests refused by authentication or authorisation, by door and reason.",
            &["door", "reason"],
        )?;
        let confinement = IntGaugeVec::new(
            Opts::new(
                "isolate_confinement",
                "1 when the layer confines the threads that run isolates, 0 when the kernel lacks it \
                 (layer: landlock_fs, landlock_net, landlock_scope, seccomp, no_new_privs).",
            ),
            &["layer"],
        )?;
        registry.register(Box::new(confinement.clone()))?;
        let isolate_hosts = IntGaugeVec::new(
            Opts::new(
                "isolate_hosts",
                "Isolate-host processes (event: started, killed at the wall-time limit, crashed) since the \
                 server started, and weak_confinement (1: hosts run without their seccomp allow list).",
            ),
            &["event"],
        )?;
        registry.register(Box::new(isolate_hosts.clone()))?;
        let report = confine::isolate_confinement().ok();
        let on = |f: fn(&confine::ConfineReport) -> bool| report.as_ref().is_some_and(f);
        for (layer, value) in [
            ("landlock_fs", on(|r| r.landlock_fs)),
            ("landlock_net", on(|r| r.landlock_net)),
            ("landlock_scope", on(|r| r.landlock_scope)),
            ("seccomp", on(|r| r.seccomp)),
            ("no_new_privs", on(|r| r.no_new_privs)),
        ] {
            confinement.with_label_values(&[layer]).set(i64::from(value));
        }
        Ok(Metrics {
            registry,
            executions,
            duration,
            tool_calls,
            rate_limited,
            active,
            refused,
            auth_failures,
            confinement,
            isolate_hosts,
        })
    }

    /// Count one finished execution.
    pub fn record_outcome(&self, door: Door, outcome: &Outcome) {
        let kind = outcome.status.kind();
        let limit = match &outcome.status {
            Status::LimitExceeded { limit, .. } => limit.as_str(),
            _ => "",
        };
        self.executions.with_label_values(&[door.as_str(), kind, limit]).inc();
        self.duration.with_label_values(&[kind]).observe(outcome.metrics.wall_ms / 1000.0);
        for call in &outcome.tool_calls {
            let status = match call.status {
                ToolCallStatus::Ok => "ok",
                ToolCallStatus::Error => "error",
                ToolCallStatus::Cancelled => "cancelled",
            };
            self.tool_calls.with_label_values(&[status]).inc();
            if call.error_code.as_deref() == Some("rate_limited") {
                self.rate_limited.with_label_values(&[call.server.as_str()]).inc();
            }
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}
