//! The Kubernetes approval store (`McpApproval` + `McpApprovalJournal`) against a real API server: what
//! the binding proxy writes reads back as it wrote it, the state it honours comes from `status`, and of
//! concurrent resumes exactly one marks an approval used (resourceVersion). Needs a cluster
//! (`KUBECONFIG`); run by `make test` in its cluster phase, before the chart is installed: it writes
//! approvals, decisions and status as an admin, which the chart's admission policy would refuse (who may
//! decide is the operator's cluster tests' and the e2e suite's to show).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../src/approval_store.rs"]
#[allow(dead_code)]
mod approval_store;

use std::time::{Duration, SystemTime};

use approval_store::KubeStore;
use k8s_openapi::{
    api::core::v1::Namespace, apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use mcp_guard_binding_proxy::approvals::{
    ApprovalRecord, ApprovalState, ApprovalStore, PendingCall, StoreError,
};
use mcp_guard_crds::{
    Approvers,
    v1alpha1::{ApprovalPhase, McpApproval, McpApprovalJournal},
};
use serde_json::json;

async fn crds(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (_, crd) in mcp_guard_crds::crd_yaml::crds() {
        let crd = crd.unwrap();
        let name = crd.metadata.name.clone().unwrap();
        crds.patch(&name, &PatchParams::apply("mcp-guard-tests").force(), &Patch::Apply(&crd)).await.unwrap();
        for _ in 0..120 {
            let c = crds.get(&name).await.unwrap();
            let established = c
                .status
                .and_then(|s| s.conditions)
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True"));
            if established {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

fn record(id: &str) -> ApprovalRecord {
    let now = SystemTime::now();
    ApprovalRecord {
        id: id.into(),
        policy: "ignored: the store names its own".into(),
        execution_id: "e-1".into(),
        requester: "system:serviceaccount:agents:bot".into(),
        calls: vec![
            PendingCall {
                sequence: 1,
                server: "bank".into(),
                tool: "transfer".into(),
                arguments: json!({"to": "acct-9", "amount": 10, "memo": {"nested": true}}),
                arguments_sha256: "a".repeat(64),
            },
            PendingCall {
                sequence: 2,
                server: "bank".into(),
                tool: "transfer".into(),
                arguments: json!({"to": "acct-7", "amount": 1}),
                arguments_sha256: "b".repeat(64),
            },
        ],
        created_at: humantime::format_rfc3339_seconds(now).to_string(),
        expires_at: humantime::format_rfc3339_seconds(now + Duration::from_secs(600)).to_string(),
        allow_self_approval: false,
        approvers: Approvers { service_accounts: vec!["ops-bot".into()], ..Approvers::default() },
        state: ApprovalState::Pending,
    }
}

/// Writes `status` as the operator would once it saw an approver's decision.
async fn decide(api: &Api<McpApproval>, id: &str, verdict: &str, by: &str) {
    let mut a = api.get(id).await.unwrap();
    a.spec.decision = Some(serde_json::from_value(json!({"verdict": verdict, "by": by})).unwrap());
    let a = api.replace(id, &PostParams::default(), &a).await.unwrap();
    let mut a = a;
    let status = a.status.get_or_insert_with(Default::default);
    status.phase = Some(if verdict == "Approved" { ApprovalPhase::Approved } else { ApprovalPhase::Denied });
    status.decided_by = Some(by.into());
    api.replace_status(id, &PostParams::default(), &a).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real cluster (KUBECONFIG): run by make test's cluster phase"]
async fn the_kubernetes_store_round_trips_and_marks_an_approval_used_once() {
    let client = Client::try_default().await.expect("KUBECONFIG must point at a cluster");
    crds(&client).await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = format!("mcp-guard-kube-store-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    namespaces
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap())
        .await
        .unwrap();
    let store = KubeStore::new(client.clone(), &ns, "agents");
    let approvals: Api<McpApproval> = Api::namespaced(client.clone(), &ns);
    let journals: Api<McpApprovalJournal> = Api::namespaced(client.clone(), &ns);

    // Created together; read back as written, the policy named as the proxy's config names it.
    store.create(&record("ap-one"), b"\x01sealed bytes\xff").await.unwrap();
    let back = store.get("ap-one").await.unwrap();
    assert_eq!(back.policy, format!("{ns}/agents"));
    assert_eq!(back.calls, record("ap-one").calls);
    assert_eq!(back.approvers.service_accounts, [format!("{ns}/ops-bot")], "qualified in the object");
    assert_eq!(back.state, ApprovalState::Pending);
    assert_eq!(store.journal("ap-one").await.unwrap(), b"\x01sealed bytes\xff");
    let object = approvals.get("ap-one").await.unwrap();
    assert_eq!(object.spec.summary, "bank.transfer +1");
    let journal = journals.get("ap-one").await.unwrap();
    let owner = &journal.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("McpApproval", object.metadata.uid.as_deref().unwrap())
    );

    // A decision in spec alone is not honoured: status (the operator's) is.
    let mut a = approvals.get("ap-one").await.unwrap();
    a.spec.decision = Some(serde_json::from_value(json!({"verdict": "Approved", "by": "alice"})).unwrap());
    approvals.replace("ap-one", &PostParams::default(), &a).await.unwrap();
    assert_eq!(store.get("ap-one").await.unwrap().state, ApprovalState::Pending);
    assert!(matches!(store.mark_used("ap-one", "e-2").await, Err(StoreError::Conflict(_))));

    // Decided: of eight concurrent resumes, exactly one marks it used.
    store.create(&record("ap-two"), b"j").await.unwrap();
    decide(&approvals, "ap-two", "Approved", "alice").await;
    assert_eq!(store.get("ap-two").await.unwrap().state, ApprovalState::Approved { by: "alice".into() });
    let attempts = (0..8).map(|i| {
        let store = &store;
        async move { store.mark_used("ap-two", &format!("e-{i}")).await }
    });
    let results = futures::future::join_all(attempts).await;
    let won: Vec<_> = results.iter().filter(|r| r.is_ok()).collect();
    assert_eq!(won.len(), 1, "{results:?}");
    assert!(results.iter().filter(|r| r.is_err()).all(|r| matches!(r, Err(StoreError::Conflict(_)))));
    let used = store.get("ap-two").await.unwrap();
    assert!(matches!(used.state, ApprovalState::Used { .. }), "{used:?}");
    assert!(matches!(store.mark_used("ap-two", "e-9").await, Err(StoreError::Conflict(_))));

    // A denial is honoured as one, with its reason.
    store.create(&record("ap-three"), b"j").await.unwrap();
    decide(&approvals, "ap-three", "Denied", "bob").await;
    assert!(matches!(store.get("ap-three").await.unwrap().state, ApprovalState::Denied { .. }));

    // Unknown names, and names that are no object names, are unknown.
    for bad in ["ap-nope", "../x", "UPPER"] {
        assert!(matches!(store.get(bad).await, Err(StoreError::NotFound(_))), "{bad}");
    }
    // Another policy's approvals in the namespace are not this store's.
    let other = KubeStore::new(client.clone(), &ns, "other-policy");
    assert!(matches!(other.get("ap-one").await, Err(StoreError::NotFound(_))));
    assert!(other.list(None).await.unwrap().is_empty());
    let mine = store.list(Some("system:serviceaccount:agents:bot")).await.unwrap();
    assert_eq!(mine.len(), 3);
    assert!(store.list(Some("someone-else")).await.unwrap().is_empty());

    namespaces.delete(&ns, &DeleteParams::default()).await.unwrap();
}
