//! Executions as the proxy records them: opened (audited before the executor may run anything), closed
//! with their outcome, or closed as abandoned when the executor never ends them.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::{
    BindingProxy,
    approvals::{
        ApprovalRecord, ApprovalState, Entry, Journal, PendingCall, Replay, ResumeError, StoreError, Verdict,
        new_id, rfc3339,
    },
};

/// Sealed journals larger than this are not kept: a Kubernetes object holds at most about 1.5 MiB, and
/// the sealed bytes travel base64-encoded.
pub const MAX_SEALED_JOURNAL_BYTES: usize = 1024 * 1024;

/// What a resumed execution runs: the first run's code, seed and clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumedRun {
    pub code: String,
    pub seed: u64,
    pub clock_ms: u64,
}

/// An open execution and what it has used.
#[derive(Debug)]
pub(crate) struct Execution {
    pub(crate) caller: String,
    pub(crate) code_sha256: String,
    pub(crate) deadline: Instant,
    pub(crate) calls: u32,
    pub(crate) argument_bytes: u64,
    pub(crate) result_bytes: u64,
    /// Seed and clock of the isolate (recorded in the journal of an approval).
    pub(crate) seed: u64,
    pub(crate) clock_ms: u64,
    /// The calls that reached an upstream, with their results (only when approvals are configured).
    pub(crate) journal: Vec<Entry>,
    /// Calls refused for approval, to gather into one approval when the execution ends.
    pub(crate) paused: Vec<PendingCall>,
    /// A resumed execution's journal and decision.
    pub(crate) replay: Option<Replay>,
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
        self.begin_with(execution_id, caller, code_sha256, 0, 0)
    }

    /// Open an execution whose isolate uses `seed` and starts its clock at `clock_ms`.
    pub fn begin_with(
        &self,
        execution_id: &str,
        caller: &str,
        code_sha256: &str,
        seed: u64,
        clock_ms: u64,
    ) -> Result<(), ExecutionError> {
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
                seed,
                clock_ms,
                journal: Vec::new(),
                paused: Vec::new(),
                replay: None,
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

    /// Resume the execution paused for `approval_id` as `execution_id`: only for the caller that asked,
    /// once it is decided, and once (the store marks it used atomically). The execution is open when
    /// this returns, with the journal to replay.
    pub async fn resume(
        &self,
        execution_id: &str,
        caller: &str,
        approval_id: &str,
    ) -> Result<ResumedRun, ResumeError> {
        let refuse = |reason: &str, error: ResumeError| {
            let _ = self.audit.record(
                "approval_resume_refused",
                json!({ "approval": approval_id, "execution": execution_id, "caller": caller, "policy": self.config.policy, "reason": reason, "error": error.to_string() }),
            );
            error
        };
        let Some(approvals) = &self.approvals else {
            return Err(ResumeError::NotFound(format!(
                "{approval_id} (policy {} keeps no approvals)",
                self.config.policy
            )));
        };
        let store = approvals.store().map_err(ResumeError::Unavailable)?;
        let record = match store.get(approval_id).await {
            Ok(r) if r.policy == self.config.policy => r,
            Ok(_) | Err(StoreError::NotFound(_)) => {
                return Err(ResumeError::NotFound(approval_id.to_string()));
            }
            Err(e) => return Err(ResumeError::Unavailable(e.to_string())),
        };
        if record.requester != caller {
            return Err(refuse("another caller", ResumeError::OtherCaller(approval_id.to_string())));
        }
        let now = std::time::SystemTime::now();
        match &record.state {
            ApprovalState::Pending if record.expired_at(now) => {}
            ApprovalState::Pending => {
                return Err(ResumeError::NotResumable(format!(
                    "approval {approval_id} is waiting for a decision (it can be decided until {})",
                    record.expires_at
                )));
            }
            ApprovalState::Used { execution, .. } => {
                return Err(refuse(
                    "already used",
                    ResumeError::NotResumable(format!(
                        "approval {approval_id} was already resumed by execution {execution}"
                    )),
                ));
            }
            ApprovalState::Expired | ApprovalState::Approved { .. } | ApprovalState::Denied { .. } => {}
        }
        if matches!(record.state, ApprovalState::Pending | ApprovalState::Expired) {
            let _ = self.audit.record(
                "approval_expired",
                json!({ "approval": approval_id, "caller": caller, "policy": self.config.policy, "expiresAt": record.expires_at }),
            );
            return Err(ResumeError::NotResumable(format!(
                "approval {approval_id} expired at {} without a decision; run the code again to ask anew",
                record.expires_at
            )));
        }
        if record.resumable_until().is_none_or(|until| now > until) {
            return Err(refuse(
                "too late",
                ResumeError::NotResumable(format!(
                    "approval {approval_id} was decided, but it is too late to resume it (resumes are taken for one time-to-live after {})",
                    record.expires_at
                )),
            ));
        }
        let sealed = store.journal(approval_id).await.map_err(|e| ResumeError::Unavailable(e.to_string()))?;
        let journal: Journal = approvals
            .sealer()
            .and_then(|s| s.open(approval_id, &self.config.policy, &sealed))
            .and_then(|plain| {
                serde_json::from_slice(&plain).map_err(|e| format!("the journal is malformed: {e}"))
            })
            .map_err(|e| refuse("journal", ResumeError::Unavailable(e)))?;
        if journal.approval != approval_id || journal.caller != caller {
            return Err(refuse(
                "journal",
                ResumeError::Unavailable(format!(
                    "the journal of approval {approval_id} does not belong to it"
                )),
            ));
        }
        self.begin_with(execution_id, caller, &journal.code_sha256, journal.seed, journal.clock_ms)
            .map_err(|e| ResumeError::Unavailable(e.to_string()))?;
        // Used exactly once: of concurrent resumes, one gets here.
        let decided = match store.mark_used(approval_id, execution_id).await {
            Ok(state) => state,
            Err(e) => {
                self.executions.lock().unwrap_or_else(|p| p.into_inner()).remove(execution_id);
                let _ = self.audit.record(
                    "execution_ended",
                    json!({ "execution": execution_id, "caller": caller, "policy": self.config.policy, "codeSha256": journal.code_sha256, "outcome": "resume_refused", "approval": approval_id }),
                );
                return Err(match e {
                    StoreError::Conflict(m) => refuse("already used", ResumeError::NotResumable(m)),
                    other => ResumeError::Unavailable(other.to_string()),
                });
            }
        };
        let (verdict, by, reason) = match &decided {
            ApprovalState::Approved { by } => (Verdict::Approved, by.clone(), String::new()),
            ApprovalState::Denied { by, reason } => (Verdict::Denied, by.clone(), reason.clone()),
            _ => (Verdict::Denied, String::new(), "the approval was not decided".into()),
        };
        let replay = Replay {
            approval: approval_id.to_string(),
            entries: journal.entries.iter().map(|e| (e.sequence, e.clone())).collect(),
            decided: journal
                .paused
                .iter()
                .map(|(seq, s, t, d)| (*seq, (s.clone(), t.clone(), d.clone())))
                .collect(),
            verdict: Some(verdict),
            decided_by: by.clone(),
            reason,
        };
        if let Some(e) = self.executions.lock().unwrap_or_else(|p| p.into_inner()).get_mut(execution_id) {
            e.replay = Some(replay);
        }
        let _ = self.audit.record(
            "approval_resumed",
            json!({ "approval": approval_id, "execution": execution_id, "caller": caller, "policy": self.config.policy,
                    "verdict": verdict, "decidedBy": by, "journaledCalls": journal.entries.len() }),
        );
        Ok(ResumedRun { code: journal.code, seed: journal.seed, clock_ms: journal.clock_ms })
    }

    /// Close an execution that ended as `approval_required`: record one approval for the calls it
    /// paused, with its sealed journal (which keeps `code` for the resume). Nothing is recorded unless
    /// the execution really paused calls, and `code` is the code it opened with.
    pub async fn end_paused(&self, req: &ExecutionEnd, code: &str) -> Result<ApprovalRecord, String> {
        let execution = self.executions.lock().unwrap_or_else(|p| p.into_inner()).remove(&req.execution_id);
        let Some(execution) = execution else {
            return Err(ExecutionError::NotOpen(req.execution_id.clone()).to_string());
        };
        let result = self.record_approval(req, &execution, code).await;
        let (outcome, approval, error) = match &result {
            Ok(r) => ("approval_required", Some(r.id.clone()), None),
            Err(e) => ("approval_failed", None, Some(e.clone())),
        };
        self.audit
            .record(
                "execution_ended",
                json!({
                    "execution": req.execution_id, "caller": execution.caller, "policy": self.config.policy,
                    "codeSha256": execution.code_sha256, "outcome": outcome, "approval": approval, "error": error,
                    "wallMs": req.wall_ms, "cpuMs": req.cpu_ms, "toolCalls": execution.calls,
                    "argumentBytes": execution.argument_bytes, "resultBytes": execution.result_bytes,
                }),
            )
            .map_err(|_| ExecutionError::AuditFailed.to_string())?;
        result
    }

    async fn record_approval(
        &self,
        req: &ExecutionEnd,
        execution: &Execution,
        code: &str,
    ) -> Result<ApprovalRecord, String> {
        use sha2::Digest;
        let Some(approvals) = &self.approvals else {
            return Err(format!("policy {} has no approvals configured", self.config.policy));
        };
        if execution.paused.is_empty() {
            return Err("the execution paused no call for approval".into());
        }
        if hex::encode(sha2::Sha256::digest(code.as_bytes())) != execution.code_sha256 {
            return Err("the code is not the code the execution began with".into());
        }
        let store = approvals.store()?;
        let sealer = approvals.sealer()?;
        let mut paused = execution.paused.clone();
        paused.sort_by_key(|p| p.sequence);
        let now = std::time::SystemTime::now();
        let id = new_id();
        let record = ApprovalRecord {
            id: id.clone(),
            policy: self.config.policy.clone(),
            execution_id: req.execution_id.clone(),
            requester: execution.caller.clone(),
            calls: paused,
            created_at: rfc3339(now),
            expires_at: rfc3339(now + approvals.ttl()),
            allow_self_approval: approvals.settings.allow_self_approval,
            approvers: approvals.settings.approvers.clone(),
            state: ApprovalState::Pending,
        };
        let journal = Journal {
            approval: id.clone(),
            policy: self.config.policy.clone(),
            caller: execution.caller.clone(),
            code: code.to_string(),
            code_sha256: execution.code_sha256.clone(),
            seed: execution.seed,
            clock_ms: execution.clock_ms,
            entries: execution.journal.clone(),
            paused: execution
                .paused
                .iter()
                .map(|p| (p.sequence, p.server.clone(), p.tool.clone(), p.arguments_sha256.clone()))
                .collect(),
        };
        let plain =
            serde_json::to_vec(&journal).map_err(|e| format!("the journal cannot be written: {e}"))?;
        let sealed = sealer.seal(&id, &self.config.policy, &plain)?;
        if sealed.len() > MAX_SEALED_JOURNAL_BYTES {
            return Err(format!(
                "the execution's journal is {} bytes, over the {} an approval can keep: return less data from the tools called before the one that needs approval",
                sealed.len(),
                MAX_SEALED_JOURNAL_BYTES
            ));
        }
        store.create(&record, &sealed).await.map_err(|e| e.to_string())?;
        let calls: Vec<_> = record
            .calls
            .iter()
            .map(|c| json!({ "sequence": c.sequence, "server": c.server, "tool": c.tool, "argumentsSha256": c.arguments_sha256 }))
            .collect();
        self.audit
            .record(
                "approval_requested",
                json!({ "approval": id, "execution": req.execution_id, "caller": execution.caller, "policy": self.config.policy,
                        "calls": calls, "expiresAt": record.expires_at, "journaledCalls": journal.entries.len() }),
            )
            .map_err(|_| "the binding proxy cannot write its audit log".to_string())?;
        Ok(record)
    }

    /// The approvals `caller` asked for, newest first.
    pub async fn list_approvals(&self, caller: &str) -> Result<Vec<ApprovalRecord>, String> {
        let Some(approvals) = &self.approvals else { return Ok(Vec::new()) };
        let store = approvals.store()?;
        let mut records = store.list(Some(caller)).await.map_err(|e| e.to_string())?;
        records.retain(|r| r.policy == self.config.policy);
        Ok(records)
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
