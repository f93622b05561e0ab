//! The Kubernetes store of a binding proxy's approvals: one `McpApproval` per approval (which approvers
//! decide with kubectl, under the chart's admission policy) and one `McpApprovalJournal` beside it with
//! the sealed journal, owned by the approval so that they go together. The binding-proxy crate defines
//! the store ([`ApprovalStore`]); this binary implements it with kube, so the proxy crate still holds no
//! API client.
//!
//! The state the proxy honours is `status.phase`, which only the operator (decisions, expiry) and the
//! binding proxy (`Used`) may write: a decision in `spec` counts once the operator has checked it was
//! made before the approval expired. `Used` is written with the object's resourceVersion, so of two
//! concurrent resumes exactly one gets it.

use async_trait::async_trait;
use base64::Engine as _;
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, ObjectMeta, PostParams},
};
use mcp_guard_binding_proxy::approvals::{
    ApprovalRecord, ApprovalState, ApprovalStore, PendingCall, StoreError, Verdict,
};
use mcp_guard_crds::v1alpha1::{
    ApprovalCall, ApprovalPhase, McpApproval, McpApprovalJournal, McpApprovalJournalSpec, McpApprovalSpec,
    McpApprovalStatus,
};

/// Labels every approval carries, to list a policy's.
const POLICY_LABEL: &str = "mcpguard.io/policy";

pub struct KubeStore {
    approvals: Api<McpApproval>,
    journals: Api<McpApprovalJournal>,
    namespace: String,
    policy: String,
}

impl KubeStore {
    /// The store of `policy`'s approvals in `namespace`, with the pod's own service account.
    pub async fn in_cluster(namespace: &str, policy: &str) -> anyhow::Result<Self> {
        let client = Client::try_default().await?;
        Ok(Self::new(client, namespace, policy))
    }

    pub fn new(client: Client, namespace: &str, policy: &str) -> Self {
        KubeStore {
            approvals: Api::namespaced(client.clone(), namespace),
            journals: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
            policy: policy.to_string(),
        }
    }

    fn object(&self, record: &ApprovalRecord) -> McpApproval {
        let mut approvers = record.approvers.clone();
        // Always namespace-qualified in the object, which admission compares with user names.
        approvers.service_accounts = approvers
            .service_accounts
            .iter()
            .map(|sa| if sa.contains('/') { sa.clone() } else { format!("{}/{sa}", self.namespace) })
            .collect();
        let calls = record
            .calls
            .iter()
            .map(|c| ApprovalCall {
                sequence: c.sequence,
                server: c.server.clone(),
                tool: c.tool.clone(),
                arguments: match &c.arguments {
                    serde_json::Value::Object(map) => map.clone(),
                    other => {
                        let mut map = serde_json::Map::new();
                        map.insert("value".into(), other.clone());
                        map
                    }
                },
                arguments_sha256: c.arguments_sha256.clone(),
            })
            .collect();
        let mut summary = record.summary();
        summary.truncate(256);
        let mut object = McpApproval::new(
            &record.id,
            McpApprovalSpec {
                policy: self.policy.clone(),
                execution_id: record.execution_id.clone(),
                requester: record.requester.clone(),
                summary,
                calls,
                expires_at: record.expires_at.clone(),
                allow_self_approval: record.allow_self_approval,
                approvers,
                decision: None,
            },
        );
        object.metadata.namespace = Some(self.namespace.clone());
        object.metadata.labels = Some([(POLICY_LABEL.to_string(), self.policy.clone())].into());
        object
    }

    /// The record the proxy works with, from the object: its state from `status`.
    fn record(&self, object: &McpApproval) -> ApprovalRecord {
        let status = object.status.clone().unwrap_or_default();
        let decision = object.spec.decision.as_ref();
        let by = status.decided_by.clone().or_else(|| decision.map(|d| d.by.clone())).unwrap_or_default();
        let verdict = decision.map(|d| d.verdict);
        let state = match status.phase() {
            ApprovalPhase::Pending => ApprovalState::Pending,
            ApprovalPhase::Approved => ApprovalState::Approved { by },
            ApprovalPhase::Denied => ApprovalState::Denied {
                by,
                reason: decision.and_then(|d| d.reason.clone()).unwrap_or_default(),
            },
            ApprovalPhase::Expired => ApprovalState::Expired,
            ApprovalPhase::Used => ApprovalState::Used {
                execution: status.used_by.clone().unwrap_or_default(),
                verdict: match verdict {
                    Some(mcp_guard_crds::v1alpha1::Verdict::Approved) => Verdict::Approved,
                    _ => Verdict::Denied,
                },
                by,
            },
        };
        ApprovalRecord {
            id: object.metadata.name.clone().unwrap_or_default(),
            // As the proxy's configuration names it: `namespace/name`.
            policy: format!("{}/{}", self.namespace, object.spec.policy),
            execution_id: object.spec.execution_id.clone(),
            requester: object.spec.requester.clone(),
            calls: object
                .spec
                .calls
                .iter()
                .map(|c| PendingCall {
                    sequence: c.sequence,
                    server: c.server.clone(),
                    tool: c.tool.clone(),
                    arguments: serde_json::Value::Object(c.arguments.clone()),
                    arguments_sha256: c.arguments_sha256.clone(),
                })
                .collect(),
            created_at: object
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_default(),
            expires_at: object.spec.expires_at.clone(),
            allow_self_approval: object.spec.allow_self_approval,
            approvers: object.spec.approvers.clone(),
            state,
        }
    }
}

/// Objects carry the policy's name (the proxy's configuration names it `namespace/name`).
fn same_policy(object: &McpApproval, policy: &str) -> bool {
    object.spec.policy == policy
}

fn unavailable(what: &str, e: kube::Error) -> StoreError {
    StoreError::Unavailable(format!("{what}: {e}"))
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

#[async_trait]
impl ApprovalStore for KubeStore {
    async fn create(&self, record: &ApprovalRecord, sealed_journal: &[u8]) -> Result<(), StoreError> {
        let object = self.object(record);
        let created = self
            .approvals
            .create(&PostParams::default(), &object)
            .await
            .map_err(|e| unavailable("cannot create the McpApproval", e))?;
        let sealed = base64::engine::general_purpose::STANDARD.encode(sealed_journal);
        let mut journal = McpApprovalJournal::new(
            &record.id,
            McpApprovalJournalSpec { approval: record.id.clone(), sealed },
        );
        journal.metadata = ObjectMeta {
            name: Some(record.id.clone()),
            namespace: Some(self.namespace.clone()),
            labels: Some([(POLICY_LABEL.to_string(), self.policy.clone())].into()),
            owner_references: Some(vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                api_version: "mcpguard.io/v1alpha1".into(),
                kind: "McpApproval".into(),
                name: record.id.clone(),
                uid: created.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: None,
            }]),
            ..ObjectMeta::default()
        };
        if let Err(e) = self.journals.create(&PostParams::default(), &journal).await {
            // Both or neither: an approval without its journal could never be resumed.
            let _ = self.approvals.delete(&record.id, &DeleteParams::default()).await;
            return Err(unavailable("cannot create the McpApprovalJournal", e));
        }
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<ApprovalRecord, StoreError> {
        match self.approvals.get_opt(id).await {
            Ok(Some(object)) if same_policy(&object, &self.policy) => Ok(self.record(&object)),
            Ok(_) => Err(StoreError::NotFound(id.to_string())),
            // A name that is not a valid object name reads as unknown.
            Err(e) if is_status(&e, 400) || is_status(&e, 404) => Err(StoreError::NotFound(id.to_string())),
            Err(e) => Err(unavailable("cannot read the McpApproval", e)),
        }
    }

    async fn journal(&self, id: &str) -> Result<Vec<u8>, StoreError> {
        let journal = self
            .journals
            .get_opt(id)
            .await
            .map_err(|e| unavailable("cannot read the McpApprovalJournal", e))?
            .ok_or_else(|| StoreError::Unavailable(format!("the journal of approval {id} is gone")))?;
        if journal.spec.approval != id {
            return Err(StoreError::Unavailable(format!(
                "the journal named {id} belongs to another approval"
            )));
        }
        base64::engine::general_purpose::STANDARD
            .decode(journal.spec.sealed.as_bytes())
            .map_err(|e| StoreError::Unavailable(format!("the journal of approval {id} is not base64: {e}")))
    }

    async fn mark_used(&self, id: &str, execution: &str) -> Result<ApprovalState, StoreError> {
        let object = match self.approvals.get_opt(id).await {
            Ok(Some(o)) if same_policy(&o, &self.policy) => o,
            Ok(_) => return Err(StoreError::NotFound(id.to_string())),
            Err(e) => return Err(unavailable("cannot read the McpApproval", e)),
        };
        let record = self.record(&object);
        match &record.state {
            ApprovalState::Approved { .. } | ApprovalState::Denied { .. } => {}
            ApprovalState::Used { execution, .. } => {
                return Err(StoreError::Conflict(format!(
                    "approval {id} was already resumed by execution {execution}"
                )));
            }
            other => return Err(StoreError::Conflict(format!("approval {id} is {}", other.name()))),
        }
        let mut updated = object.clone();
        let status = updated.status.get_or_insert_with(McpApprovalStatus::default);
        status.phase = Some(ApprovalPhase::Used);
        status.used_by = Some(execution.to_string());
        status.used_at = Some(humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string());
        status.message = Some(format!("resumed by execution {execution}"));
        // With the resourceVersion read above: a concurrent writer (another resume) makes this fail.
        match self.approvals.replace_status(id, &PostParams::default(), &updated).await {
            Ok(_) => Ok(record.state),
            Err(e) if is_status(&e, 409) => Err(StoreError::Conflict(format!(
                "approval {id} was resumed (or changed) concurrently; it is used at most once"
            ))),
            Err(e) => Err(unavailable("cannot mark the McpApproval used", e)),
        }
    }

    async fn list(&self, requester: Option<&str>) -> Result<Vec<ApprovalRecord>, StoreError> {
        let params = ListParams::default().labels(&format!("{POLICY_LABEL}={}", self.policy));
        let objects =
            self.approvals.list(&params).await.map_err(|e| unavailable("cannot list McpApprovals", e))?;
        let mut records: Vec<ApprovalRecord> = objects
            .items
            .iter()
            .filter(|o| same_policy(o, &self.policy))
            .map(|o| self.record(o))
            .filter(|r| requester.is_none_or(|q| q == r.requester))
            .collect();
        records.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| a.id.cmp(&b.id)));
        Ok(records)
    }
}
