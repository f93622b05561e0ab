//! The whole pipeline for one piece of code: validate, then run in a fresh isolate.

use std::sync::Arc;

use mcp_guard_crds::Limits;

use crate::{
    engine::{Engine, ExecutionRequest, quickjs::QuickJsEngine},
    host::{Catalog, ToolHost},
    outcome::Outcome,
    validator::{self, ValidateOptions},
};

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

    /// Validate `code` and, when it passes, run it under `limits`.
    pub async fn run(&self, code: &str, limits: &Limits) -> Outcome {
        let options = ValidateOptions { max_code_bytes: limits.code_size.as_usize() };
        let prepared = match validator::validate(code, &options) {
            Ok(p) => p,
            Err(rejection) => return Outcome::rejected(rejection),
        };
        self.engine
            .execute(ExecutionRequest {
                code: prepared,
                limits: limits.clone(),
                catalog: self.catalog.clone(),
                host: self.host.clone(),
            })
            .await
    }
}
