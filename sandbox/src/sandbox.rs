//! The whole pipeline for one piece of code: validate, then run in a fresh isolate.

use std::sync::Arc;

use mcp_guard_crds::Limits;
use mcp_guard_tools::Catalog;

use crate::{
    engine::{Code, Engine, ExecutionRequest, quickjs::QuickJsEngine},
    host::{ExecutionInfo, ToolHost},
    outcome::{Outcome, Status, ThrownError},
    validator::{self, ValidateOptions},
};

/// Why an execution could not start.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("the tool host (binding proxy) is unavailable: {0}")]
    HostUnavailable(String),
    /// The tool host refused to open the execution for this caller.
    #[error("the binding proxy refused the execution: {0}")]
    Refused(String),
    /// A resume that cannot run: the approval is unknown, undecided, expired or already used.
    #[error("{0}")]
    NotResumable(String),
}

/// Validates and runs code against one set of bound tools.
#[derive(Clone)]
pub struct Sandbox {
    engine: Arc<dyn Engine>,
    catalog: Catalog,
    host: Arc<dyn ToolHost>,
}

impl Sandbox {
    /// A sandbox on the QuickJS engine.
    pub fn new(catalog: Catalog, host: Arc<dyn ToolHost>) -> Self {
        Self::with_engine(Arc::new(QuickJsEngine::default()), catalog, host)
    }

    pub fn with_engine(engine: Arc<dyn Engine>, catalog: Catalog, host: Arc<dyn ToolHost>) -> Self {
        Sandbox { engine, catalog, host }
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Validate `code` and, when it passes, run it under `limits`, as the local user.
    pub async fn run(&self, code: &str, limits: &Limits) -> Outcome {
        match self.run_as("local", code, limits).await {
            Ok(outcome) => outcome,
            Err(e) => Outcome::host_failure(e.to_string()),
        }
    }

    /// Validate `code` and, when it passes, run it under `limits` for `caller`. The tool host is told
    /// when the execution begins (before validation, so rejected code is on record too) and ends; when
    /// it cannot record the start, nothing runs.
    pub async fn run_as(&self, caller: &str, code: &str, limits: &Limits) -> Result<Outcome, SandboxError> {
        self.run_with_events(caller, None, code, limits, None).await.map(|(_, outcome)| outcome)
    }

    /// Like [`Sandbox::run_as`], sending console lines and tool-call events to `events` as they happen;
    /// also returns the execution's identity (its id is in the audit log). `caller_token` goes to the
    /// tool host only (for a binding proxy that authenticates callers), never to the engine.
    pub async fn run_with_events(
        &self,
        caller: &str,
        caller_token: Option<crate::host::CallerToken>,
        code: &str,
        limits: &Limits,
        events: Option<tokio::sync::mpsc::UnboundedSender<crate::engine::ExecutionEvent>>,
    ) -> Result<(Arc<ExecutionInfo>, Outcome), SandboxError> {
        let execution = ExecutionInfo { caller_token, ..ExecutionInfo::new(caller, code) };
        self.begin_and_run(execution, Some(code), limits, events).await
    }

    /// Resume the execution paused for `approval` (which `caller` asked for): the tool host answers
    /// with its code, which runs again from the start in a fresh isolate, with the first run's seed and
    /// clock; the calls it completed are answered from the host's journal.
    pub async fn resume_with_events(
        &self,
        caller: &str,
        caller_token: Option<crate::host::CallerToken>,
        approval: &str,
        limits: &Limits,
        events: Option<tokio::sync::mpsc::UnboundedSender<crate::engine::ExecutionEvent>>,
    ) -> Result<(Arc<ExecutionInfo>, Outcome), SandboxError> {
        let execution = ExecutionInfo { caller_token, ..ExecutionInfo::resume(caller, approval) };
        self.begin_and_run(execution, None, limits, events).await
    }

    async fn begin_and_run(
        &self,
        execution: ExecutionInfo,
        code: Option<&str>,
        limits: &Limits,
        events: Option<tokio::sync::mpsc::UnboundedSender<crate::engine::ExecutionEvent>>,
    ) -> Result<(Arc<ExecutionInfo>, Outcome), SandboxError> {
        let resumed = self.host.begin(&execution).await.map_err(|e| match e.code {
            mcp_guard_tools::FailureKind::Denied => SandboxError::Refused(e.message),
            mcp_guard_tools::FailureKind::ApprovalRequired => SandboxError::NotResumable(e.message),
            _ => SandboxError::HostUnavailable(e.message),
        })?;
        let (execution, code) = match (code, resumed) {
            (Some(code), _) => (execution, code.to_string()),
            (None, Some(resumed)) => (execution.resumed(&resumed), resumed.code),
            (None, None) => {
                return Err(SandboxError::HostUnavailable(
                    "the tool host answered a resume without its code".into(),
                ));
            }
        };
        let execution = Arc::new(execution);
        let code = code.as_str();
        let max_code_bytes = limits.code_size.as_usize();
        let prepared = if self.engine.validates_source() && code.len() <= max_code_bytes {
            // Isolate hosts validate in the host: the validator's work is then confined and limited.
            Ok(Code::Source { source: code.to_string(), max_code_bytes })
        } else {
            // Validation is CPU work proportional to the code (up to `limits.codeSize`): off the async
            // workers, so a large program never delays other requests' I/O. (Code over the size limit
            // is refused at once, whatever the engine.)
            let options = ValidateOptions { max_code_bytes };
            let source = code.to_string();
            match tokio::task::spawn_blocking(move || validator::validate(&source, &options)).await {
                Ok(result) => result.map(Code::Prepared),
                // Only a panic in the validator (a bug) gets here: validating inline lets it surface in
                // the caller's task, which reports it as an internal error.
                Err(_) => validator::validate(code, &ValidateOptions { max_code_bytes }).map(Code::Prepared),
            }
        };
        let outcome = match prepared {
            Ok(code) => {
                self.engine
                    .execute(ExecutionRequest {
                        code,
                        limits: limits.clone(),
                        catalog: self.catalog.clone(),
                        host: self.host.clone(),
                        execution: execution.clone(),
                        events,
                    })
                    .await
            }
            Err(rejection) => Outcome::rejected(rejection),
        };
        let mut outcome = outcome;
        match (self.host.end(&execution, &outcome, code).await, &mut outcome.status) {
            (Ok(Some(recorded)), Status::ApprovalRequired { approval }) => **approval = recorded,
            (Ok(None), Status::ApprovalRequired { .. }) => {
                outcome.status = host_error("the tool host asked for an approval but recorded none".into());
            }
            (Err(e), Status::ApprovalRequired { .. }) => {
                outcome.status = host_error(format!("the approval could not be recorded: {}", e.message));
            }
            _ => {}
        }
        Ok((execution, outcome))
    }
}

fn host_error(message: String) -> Status {
    Status::Threw { error: ThrownError { name: "InternalError".into(), message, stack: String::new() } }
}
