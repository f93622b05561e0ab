//! The binding proxy's state: its configuration, the upstream sessions, the redactor, the audit log and
//! the open executions. What it does lives beside it: [`crate::executions`] (opening and closing
//! executions), [`crate::enforce`] (tool calls) and [`crate::describe`] (the bound tools).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use mcp_guard_crds::GuardConfig;

use crate::{
    audit::AuditLog,
    credentials::Credentials,
    enforce::{KeyedLimiter, limiter},
    executions::Execution,
    redact::Redactor,
    upstream::Upstream,
};

/// The binding proxy's state.
pub struct BindingProxy {
    pub(crate) config: GuardConfig,
    pub(crate) upstreams: Vec<Arc<Upstream>>,
    pub(crate) redactor: Arc<Redactor>,
    pub(crate) audit: Arc<AuditLog>,
    pub(crate) executions: Mutex<HashMap<String, Execution>>,
    pub(crate) per_caller: Option<KeyedLimiter>,
    pub(crate) per_tool: Option<KeyedLimiter>,
    /// Approvals of `requireApproval` tools, when configured.
    pub(crate) approvals: Option<crate::approvals::Approvals>,
}

impl std::fmt::Debug for BindingProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BindingProxy").field("policy", &self.config.policy).finish()
    }
}

impl BindingProxy {
    /// Build the proxy from its configuration; `audit` receives the records.
    pub fn new(config: GuardConfig, audit: AuditLog) -> Arc<Self> {
        match Self::replica(config.clone(), audit, 1) {
            Ok(proxy) => proxy,
            // One replica takes any rate (a configuration with a zero rate is refused when loaded).
            Err((_, audit)) => Self::build(config, audit, None, None),
        }
    }

    /// One of `replicas` proxies serving the same policy: each enforces an equal share of the rate limits
    /// (see the README's "Rate limits"). `Err` (with the audit log back) when a rate cannot be shared.
    #[allow(clippy::result_large_err)]
    pub fn replica(
        config: GuardConfig,
        audit: AuditLog,
        replicas: u32,
    ) -> Result<Arc<Self>, (String, AuditLog)> {
        let limits = &config.binding.rate_limits;
        let per_caller =
            limiter(&limits.per_caller, replicas).map_err(|e| format!("binding.rateLimits.perCaller: {e}"));
        let per_tool =
            limiter(&limits.per_tool, replicas).map_err(|e| format!("binding.rateLimits.perTool: {e}"));
        match (per_caller, per_tool) {
            (Ok(c), Ok(t)) => Ok(Self::build(config, audit, c, t)),
            (Err(e), _) | (_, Err(e)) => Err((e, audit)),
        }
    }

    fn build(
        config: GuardConfig,
        audit: AuditLog,
        per_caller: Option<KeyedLimiter>,
        per_tool: Option<KeyedLimiter>,
    ) -> Arc<Self> {
        let redactor = Arc::new(Redactor::default());
        let credentials = Arc::new(Credentials::new(redactor.clone()));
        let audit = Arc::new(audit);
        let upstreams = config
            .servers
            .iter()
            .map(|s| Upstream::new(s.clone(), credentials.clone(), redactor.clone(), audit.clone()))
            .collect();
        let approvals = config.approvals.clone().map(crate::approvals::Approvals::new);
        let proxy = Arc::new(BindingProxy {
            approvals,
            per_caller,
            per_tool,
            config,
            upstreams,
            redactor,
            audit,
            executions: Mutex::new(HashMap::new()),
        });
        let weak = Arc::downgrade(&proxy);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(proxy) = weak.upgrade() else { return };
                proxy.close_abandoned();
            }
        });
        proxy
    }

    pub fn config(&self) -> &GuardConfig {
        &self.config
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Connect to every server and discover its tools; failures are logged and retried on use.
    pub async fn connect_all(&self) {
        let attempts =
            self.upstreams.iter().map(|u| async move { (u.name().to_string(), u.ensure_connected().await) });
        for (name, result) in futures::future::join_all(attempts).await {
            if let Err(e) = result {
                tracing::warn!(server = %name, error = %e, "server not available yet");
            }
        }
    }

    /// Use `store` for approvals (the Kubernetes store, which the binary provides). `Err` when the
    /// configuration has no approvals or a store is already set.
    pub fn set_approval_store(&self, store: Arc<dyn crate::approvals::ApprovalStore>) -> Result<(), String> {
        let approvals = self.approvals.as_ref().ok_or("approvals are not configured")?;
        approvals.store.set(store).map_err(|_| "an approval store is already set".to_string())
    }

    pub(crate) fn upstream(&self, server: &str) -> Option<&Arc<Upstream>> {
        self.upstreams.iter().find(|u| u.name() == server)
    }
}
