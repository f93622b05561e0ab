//! Approvals of sensitive tool calls (`requireApproval`), as the binding proxy is configured for them.
//! The binding proxy pauses an execution whose code calls such a tool, records a pending approval in
//! its store, and resumes the execution once a person decided. Shared by the configuration file and
//! the operator, which renders a policy's `spec.approvals` into it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::quantity::DurationSpec;

/// How a binding proxy keeps and checks approvals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovalSettings {
    /// Where pending approvals (and the sealed journals of the paused executions) live.
    pub store: ApprovalStoreConfig,
    /// How long a pending approval waits for a decision; after that it is expired and cannot be
    /// resumed. Default 1h.
    #[serde(default = "default_ttl")]
    pub ttl: DurationSpec,
    /// How long decided, expired and used approvals are kept before they are deleted. Default 24h.
    #[serde(default = "default_retention")]
    pub retention: DurationSpec,
    /// The caller whose code asked may decide its own approval. Off by default: an agent must not be
    /// able to approve what it asked for.
    #[serde(default)]
    pub allow_self_approval: bool,
    /// Who may decide. In Kubernetes the API server enforces it (a ValidatingAdmissionPolicy over each
    /// approval object, which carries a copy of this list); locally, the OS users of `mcp-guard approvals`.
    #[serde(default)]
    pub approvers: Approvers,
    /// A file holding the key that seals (encrypts and authenticates) journals, 32 bytes as 64 hex
    /// digits. In Kubernetes, a Secret key mounted into the binding proxy. Locally it may be omitted:
    /// the directory store then keeps a generated key in `<directory>/journal.key` (mode 0600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal_key_file: Option<String>,
}

fn default_ttl() -> DurationSpec {
    DurationSpec::secs(3600)
}

fn default_retention() -> DurationSpec {
    DurationSpec::secs(24 * 3600)
}

/// Where approvals live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovalStoreConfig {
    /// A local directory (created with mode 0700): one file per approval and per journal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
    /// `McpApproval` objects (and `McpApprovalJournal` objects for the sealed journals) in this
    /// namespace, created by the binding proxy with its own service account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesApprovalStore>,
}

/// The Kubernetes store of a policy's approvals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubernetesApprovalStore {
    /// The policy's namespace.
    pub namespace: String,
    /// The policy's name (the `McpGuardPolicy`), recorded in each approval and its owner.
    pub policy: String,
}

/// Who may decide an approval. A decider matches when it is one of `users`, is in one of `groups`, or
/// is one of `serviceAccounts` (`name` in the policy's namespace, or `namespace/name`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Approvers {
    /// User names, exactly as the API server (or, locally, the OS) knows them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 253)))]
    pub users: Vec<String>,
    /// Groups: any member may decide.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 253)))]
    pub groups: Vec<String>,
    /// Service accounts: `name` in the policy's namespace, or `namespace/name`.
    #[serde(default, skip_serializing_if = "Vec::is_empty", rename = "serviceAccounts")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 253)))]
    pub service_accounts: Vec<String>,
}

impl Approvers {
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.groups.is_empty() && self.service_accounts.is_empty()
    }

    /// The Kubernetes user names of the service accounts, `system:serviceaccount:<ns>:<name>`, with
    /// bare names taken in `namespace`.
    pub fn service_account_users(&self, namespace: &str) -> Vec<String> {
        self.service_accounts
            .iter()
            .map(|sa| match sa.split_once('/') {
                Some((ns, name)) => format!("system:serviceaccount:{ns}:{name}"),
                None => format!("system:serviceaccount:{namespace}:{sa}"),
            })
            .collect()
    }

    /// The same approvers with every service account as `namespace/name` (bare names taken in
    /// `namespace`), as each Kubernetes approval carries them.
    pub fn qualified(&self, namespace: &str) -> Approvers {
        Approvers {
            users: self.users.clone(),
            groups: self.groups.clone(),
            service_accounts: self
                .service_accounts
                .iter()
                .map(|sa| if sa.contains('/') { sa.clone() } else { format!("{namespace}/{sa}") })
                .collect(),
        }
    }

    /// Whether `user` (with `groups`) may decide, by the lists alone.
    pub fn admits(&self, user: &str, groups: &[String], namespace: &str) -> bool {
        self.users.iter().any(|u| u == user)
            || self.groups.iter().any(|g| groups.contains(g))
            || self.service_account_users(namespace).iter().any(|u| u == user)
    }
}

impl ApprovalSettings {
    pub(crate) fn validate(&self, errors: &mut Vec<String>) {
        match (&self.store.directory, &self.store.kubernetes) {
            (Some(d), None) if d.trim().is_empty() => {
                errors.push("approvals.store.directory: must not be empty".into())
            }
            (Some(_), None) => {}
            (None, Some(k)) => {
                if k.namespace.is_empty() || k.policy.is_empty() {
                    errors.push("approvals.store.kubernetes: namespace and policy must be set".into());
                }
                if self.journal_key_file.is_none() {
                    errors.push(
                        "approvals.journalKeyFile: the Kubernetes store needs a journal key (a mounted Secret key)"
                            .into(),
                    );
                }
            }
            _ => errors.push("approvals.store: set exactly one of `directory` or `kubernetes`".into()),
        }
        if self.ttl.duration().is_zero() {
            errors.push("approvals.ttl: must be more than zero".into());
        }
        for (list, names) in [
            ("users", &self.approvers.users),
            ("groups", &self.approvers.groups),
            ("serviceAccounts", &self.approvers.service_accounts),
        ] {
            for (i, n) in names.iter().enumerate() {
                if n.is_empty() || n.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    errors.push(format!(
                        "approvals.approvers.{list}[{i}]: `{}` is not a name",
                        n.escape_debug()
                    ));
                }
            }
        }
    }
}
