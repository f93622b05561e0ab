//! The whole pipeline for one piece of code: validate, then run in a fresh isolate.

use std::sync::Arc;

use mcp_guard_crds::Limits;
use mcp_guard_tools::Catalog;

use crate::{
    engine::{Code, Engine, ExecutionRequest, quickjs::QuickJsEngine},
    host::{ExecutionInfo, ToolHost},
    outcome::Outcome,
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
        let execution = Arc::new(ExecutionInfo { caller_token, ..ExecutionInfo::new(caller, code) });
        self.host.begin(&execution).await.map_err(|e| match e.code {
            mcp_guard_tools::FailureKind::Denied => SandboxError::Refused(e.message),
            _ => SandboxError::HostUnavailable(e.message),
        })?;
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
        self.host.end(&execution, &outcome).await;
        Ok((execution, outcome))
    }
}
