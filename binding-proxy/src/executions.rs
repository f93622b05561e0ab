//! Executions as the proxy records them: opened (audited before the executor may run anything), closed
//! with their outcome, or closed as abandoned when the executor never ends them.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::BindingProxy;

/// An open execution and what it has used.
#[derive(Debug)]
pub(crate) struct Execution {
    pub(crate) caller: String,
    pub(crate) code_sha256: String,
    pub(crate) deadline: Instant,
    pub(crate) calls: u32,
    pub(crate) argument_bytes: u64,
    pub(crate) result_bytes: u64,
}

/// How long after its wall-time limit an execution that was never ended is closed as abandoned.
const ABANDON_GRACE: Duration = Duration::from_secs(5);

/// Why an execution could not be opened or closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecutionError {
    #[error("execution_id must be 1 to 128 characters")]
    InvalidId,
    #[error("execution {0} is already open")]
    AlreadyOpen(String),
    #[error("execution {0} is not open")]
    NotOpen(String),
    /// The audit record could not be written: the execution is not opened (fail closed).
    #[error("the binding proxy cannot write its audit log")]
    AuditFailed,
}

/// How an execution ended, as the executor reports it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExecutionEnd {
    pub execution_id: String,
    /// rejected, completed, threw or limit_exceeded.
    pub outcome: String,
    /// Which limit, for limit_exceeded (else empty).
    pub limit: String,
    pub wall_ms: f64,
    pub cpu_ms: f64,
}

impl BindingProxy {
    /// Open an execution; its audit record is written before this returns.
    pub fn begin(&self, execution_id: &str, caller: &str, code_sha256: &str) -> Result<(), ExecutionError> {
        if execution_id.is_empty() || execution_id.len() > 128 {
            return Err(ExecutionError::InvalidId);
        }
        let mut executions = self.executions.lock().unwrap_or_else(|p| p.into_inner());
        if executions.contains_key(execution_id) {
            return Err(ExecutionError::AlreadyOpen(execution_id.to_string()));
        }
        // The proxy's own wall-time limit bounds the execution, whatever the executor does.
        let deadline = Instant::now() + self.config.limits.wall_time.duration();
        executions.insert(
            execution_id.to_string(),
            Execution {
                caller: caller.to_string(),
                code_sha256: code_sha256.to_string(),
                deadline,
                calls: 0,
                argument_bytes: 0,
                result_bytes: 0,
            },
        );
        // Fail closed: an execution that is not on record is not opened.
        if self.audit
            .record(
                "execution_started",
                json!({ "execution": execution_id, "caller": caller, "policy": self.config.policy, "codeSha256": code_sha256 }),
            )
            .is_err()
        {
            executions.remove(execution_id);
            return Err(ExecutionError::AuditFailed);
        }
        Ok(())
    }

    /// Close an execution with its outcome.
    pub fn end(&self, req: &ExecutionEnd) -> Result<(), ExecutionError> {
        let execution = self.executions.lock().unwrap_or_else(|p| p.into_inner()).remove(&req.execution_id);
        let Some(execution) = execution else {
            return Err(ExecutionError::NotOpen(req.execution_id.clone()));
        };
        self.audit
            .record(
                "execution_ended",
                json!({
                    "execution": req.execution_id, "caller": execution.caller, "policy": self.config.policy,
                    "codeSha256": execution.code_sha256, "outcome": req.outcome,
                    "limit": (!req.limit.is_empty()).then_some(&req.limit),
                    "wallMs": req.wall_ms, "cpuMs": req.cpu_ms, "toolCalls": execution.calls,
                    "argumentBytes": execution.argument_bytes, "resultBytes": execution.result_bytes,
                }),
            )
            .map_err(|_| ExecutionError::AuditFailed)
    }

    pub(crate) fn close_abandoned(&self) {
        let now = Instant::now();
        let mut executions = self.executions.lock().unwrap_or_else(|p| p.into_inner());
        let expired: Vec<String> = executions
            .iter()
            .filter(|(_, e)| e.deadline + ABANDON_GRACE < now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            if let Some(e) = executions.remove(&id) {
                // A failed write is logged by the audit log; there is no caller to refuse here.
                let _ = self.audit.record(
                    "execution_abandoned",
                    json!({ "execution": id, "caller": e.caller, "policy": self.config.policy, "codeSha256": e.code_sha256, "toolCalls": e.calls,
                            "reason": "the executor never ended the execution (it crashed, was killed, or lost its connection)" }),
                );
            }
        }
    }
}
