//! `McpApproval` → its status and its end. The binding proxy creates an approval (phase `Pending`);
//! an approver sets `spec.decision`, which admission has checked (the approver is one of
//! `spec.approvers`, in their own name); this reconciler then:
//! - turns the decision into `status` (`Approved` or `Denied`, `decidedBy`, `decidedAt`), which the
//!   binding proxy waits for; an approval made at or after `spec.expiresAt` (admission cannot tell the
//!   time; the API server's managed-fields record of the decision can) is `Expired` instead, while a
//!   denial always stands;
//! - marks a request nobody decided by `spec.expiresAt` as `Expired` (an Event says so), and deletes
//!   its journal: an expired execution is never resumed;
//! - deletes approvals once their policy's `approvals.retention` (24 hours when the policy is gone) has
//!   passed since the last of `decidedAt`, `usedAt` and `expiresAt`; their journals go with them (owner
//!   references).
//!
//! Each approval is looked at again at its next deadline (its expiry, or the end of its retention), not
//! by polling. Status is replaced at the object's `resourceVersion`, so a status the binding proxy wrote
//! meanwhile (`Used`) is never overwritten: a conflict just looks again. `Used` and `Expired` are final.
//!
//! [`plan`] decides (pure, unit-tested); [`reconcile`] does what it says.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, PostParams, Preconditions, PropagationPolicy};
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use mcp_guard_crds::v1alpha1::{
    ApprovalPhase, McpApproval, McpApprovalJournal, McpApprovalSpec, McpApprovalStatus, McpGuardPolicy,
    Verdict,
};
use tracing::{debug, info, warn};

use crate::context::{Context, Error};

/// How long decided, expired and used approvals are kept when their policy says nothing (or is gone).
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// How soon to look again after a write lost a race (the object changed meanwhile).
const CONFLICT_RETRY: Duration = Duration::from_secs(1);

/// What to do with one approval, now.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Replace the status with this one (at the object's resourceVersion); `event` announces it.
    Status { status: McpApprovalStatus, event: Option<Announcement> },
    /// Its retention is over: delete it (and, by owner reference, its journal).
    Delete,
    /// Nothing to do before `after` (its expiry or the end of its retention). `drop_journals`: it
    /// expired, so its journals are of no use and are deleted now.
    Wait { after: Duration, drop_journals: bool },
    /// A time in it cannot be read: nothing is done until it changes.
    Malformed(String),
}

/// An Event about an approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub warning: bool,
    pub reason: &'static str,
    pub note: String,
}

/// Whether [`plan`] needs the policy's retention: only approvals that are over (decided, expired,
/// used) are deleted.
pub fn needs_retention(status: Option<&McpApprovalStatus>) -> bool {
    status.is_some_and(|s| s.phase() != ApprovalPhase::Pending)
}

/// Decide what to do with an approval, given `now`, its policy's retention and when its decision was
/// written ([`decision_time`]; `None`: unknown, taken as `now`).
pub fn plan(
    spec: &McpApprovalSpec,
    status: Option<&McpApprovalStatus>,
    decided: Option<Timestamp>,
    now: Timestamp,
    retention: Duration,
) -> Plan {
    let current = status.cloned().unwrap_or_default();
    let expires = match parse_time("spec.expiresAt", &spec.expires_at) {
        Ok(t) => t,
        Err(e) => return Plan::Malformed(e),
    };
    match current.phase() {
        ApprovalPhase::Pending => {
            if let Some(decision) = &spec.decision {
                // Admission let only an approver set it, in their own name, while the request was
                // neither expired nor used (as far as the status said). Too late for an approval is
                // too late, however it got through; a denial refuses either way, so it stands.
                let when = decided.unwrap_or(now);
                if decision.verdict == Verdict::Approved && when >= expires {
                    let note = format!(
                        "approved by {} at {}, after it expired at {}: too late, the call stays refused",
                        decision.by,
                        rfc3339(when),
                        spec.expires_at
                    );
                    let status = McpApprovalStatus {
                        phase: Some(ApprovalPhase::Expired),
                        message: Some(truncate(&note, 4096)),
                        ..current
                    };
                    return Plan::Status {
                        status,
                        event: Some(Announcement { warning: true, reason: "Expired", note }),
                    };
                }
                let phase = ApprovalPhase::from(decision.verdict);
                let reason = decision.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
                let note = format!("{} by {}{reason}", phase.as_str(), decision.by);
                let status = McpApprovalStatus {
                    phase: Some(phase),
                    decided_by: Some(decision.by.clone()),
                    decided_at: Some(rfc3339(now)),
                    message: Some(truncate(&note, 4096)),
                    ..current
                };
                return Plan::Status {
                    status,
                    event: Some(Announcement { warning: false, reason: phase.as_str(), note }),
                };
            }
            if now >= expires {
                let note = format!("expired at {} without a decision", spec.expires_at);
                let status = McpApprovalStatus {
                    phase: Some(ApprovalPhase::Expired),
                    message: Some(truncate(&note, 4096)),
                    ..current
                };
                return Plan::Status {
                    status,
                    event: Some(Announcement { warning: true, reason: "Expired", note }),
                };
            }
            if current.phase.is_none() {
                // Written, so `kubectl get mga` shows it waiting.
                let status = McpApprovalStatus {
                    phase: Some(ApprovalPhase::Pending),
                    message: Some(format!("waiting for a decision until {}", spec.expires_at)),
                    ..current
                };
                return Plan::Status { status, event: None };
            }
            Plan::Wait { after: until(now, expires), drop_journals: false }
        }
        phase => {
            let mut last = expires;
            for (field, value) in
                [("status.decidedAt", &current.decided_at), ("status.usedAt", &current.used_at)]
            {
                let Some(value) = value else { continue };
                match parse_time(field, value) {
                    Ok(t) => last = last.max(t),
                    Err(e) => return Plan::Malformed(e),
                }
            }
            let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
            let end = last.as_millisecond().saturating_add(retention_ms);
            if now.as_millisecond() >= end {
                Plan::Delete
            } else {
                let after = Duration::from_millis(u64::try_from(end - now.as_millisecond()).unwrap_or(0));
                Plan::Wait { after: round_up(after), drop_journals: phase == ApprovalPhase::Expired }
            }
        }
    }
}

/// When the decision was written, as the API server recorded it: the earliest time of a managed-fields
/// entry that owns `spec.decision` (the decision is set once; a later entry only re-applied it).
pub fn decision_time(approval: &McpApproval) -> Option<Timestamp> {
    approval
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| {
            m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.get("f:spec").and_then(|s| s.get("f:decision")).is_some())
        })
        .filter_map(|m| m.time.as_ref().map(|t| t.0))
        .min()
}

fn parse_time(field: &str, value: &str) -> Result<Timestamp, String> {
    value
        .parse::<Timestamp>()
        .map_err(|e| format!("{field} `{}` is not an RFC 3339 time: {e}", value.escape_debug()))
}

/// `now` to the second, as RFC 3339 (`2025-01-31T12:00:00Z`).
fn rfc3339(now: Timestamp) -> String {
    Timestamp::from_second(now.as_second()).unwrap_or(now).to_string()
}

/// From `now` until `then`, in whole seconds, at least one.
fn until(now: Timestamp, then: Timestamp) -> Duration {
    let ms = then.as_millisecond().saturating_sub(now.as_millisecond());
    round_up(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}

/// Whole seconds, rounded up, at least one: a timer that fires a moment early would only find the
/// deadline not quite reached and wait again.
fn round_up(d: Duration) -> Duration {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    Duration::from_secs(secs.max(1))
}

fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// The retention of `policy`'s approvals: its `approvals.retention`, else [`DEFAULT_RETENTION`].
async fn retention_of(client: &kube::Client, ns: &str, policy: &str) -> Result<Duration, Error> {
    let api: Api<DeserializeGuard<McpGuardPolicy>> = Api::namespaced(client.clone(), ns);
    Ok(match api.get_opt(policy).await? {
        Some(DeserializeGuard(Ok(p))) => {
            p.spec.approvals.map_or(DEFAULT_RETENTION, |a| a.retention.duration())
        }
        Some(DeserializeGuard(Err(e))) => {
            debug!(%policy, error = %e.error, "the policy cannot be read: default approval retention");
            DEFAULT_RETENTION
        }
        None => DEFAULT_RETENTION,
    })
}

/// Reconcile one approval. An object that does not parse is logged and left alone.
pub async fn reconcile(obj: Arc<DeserializeGuard<McpApproval>>, ctx: Arc<Context>) -> Result<Action, Error> {
    let approval = match &obj.0 {
        Ok(a) => a,
        Err(invalid) => {
            let name = invalid.metadata.name.clone().unwrap_or_default();
            warn!(%name, error = %invalid.error, "cannot read the McpApproval; left alone");
            return Ok(Action::await_change());
        }
    };
    let kind = McpApproval::kind(&());
    let _timer = ctx.metrics.duration.with_label_values(&[&kind]).start_timer();
    ctx.metrics.reconciliations.with_label_values(&[&kind]).inc();
    let ns = approval.namespace().ok_or(Error::MissingField("metadata.namespace"))?;
    let name = approval.name_any();
    let key = format!("{kind}/{ns}/{name}");
    let retention = if needs_retention(approval.status.as_ref()) {
        retention_of(&ctx.client, &ns, &approval.spec.policy).await?
    } else {
        DEFAULT_RETENTION
    };
    let api: Api<McpApproval> = Api::namespaced(ctx.client.clone(), &ns);
    let decided = decision_time(approval);
    let action = match plan(&approval.spec, approval.status.as_ref(), decided, Timestamp::now(), retention) {
        Plan::Status { status, event } => {
            let mut updated = approval.clone();
            updated.status = Some(status);
            match api.replace_status(&name, &PostParams::default(), &updated).await {
                Ok(_) => {
                    if let Some(event) = event {
                        info!(approval = %key, reason = event.reason, note = %event.note, "approval");
                        announce(&ctx, approval, event).await;
                    }
                    // The status change brings it back, for its next deadline.
                    Action::await_change()
                }
                Err(kube::Error::Api(s)) if s.code == 409 => Action::requeue(CONFLICT_RETRY),
                Err(kube::Error::Api(s)) if s.code == 404 => Action::await_change(),
                Err(e) => return Err(e.into()),
            }
        }
        Plan::Delete => {
            let params = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Background),
                preconditions: Some(Preconditions {
                    uid: approval.metadata.uid.clone(),
                    resource_version: approval.metadata.resource_version.clone(),
                }),
                ..Default::default()
            };
            match api.delete(&name, &params).await {
                Ok(_) => info!(approval = %key, "retention over: deleted"),
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(kube::Error::Api(s)) if s.code == 409 => return Ok(Action::requeue(CONFLICT_RETRY)),
                Err(e) => return Err(e.into()),
            }
            Action::await_change()
        }
        Plan::Wait { after, drop_journals } => {
            if drop_journals {
                delete_journals(&ctx.client, &ns, approval).await?;
            }
            Action::requeue(after)
        }
        Plan::Malformed(message) => {
            warn!(approval = %key, %message, "McpApproval left alone until it changes");
            Action::await_change()
        }
    };
    ctx.succeeded(&key);
    Ok(action)
}

/// Delete the journals the binding proxy made for `approval` (those with an owner reference to it).
async fn delete_journals(client: &kube::Client, ns: &str, approval: &McpApproval) -> Result<(), Error> {
    let Some(uid) = approval.metadata.uid.as_deref() else { return Ok(()) };
    let api: Api<McpApprovalJournal> = Api::namespaced(client.clone(), ns);
    let journals = api.list_metadata(&Default::default()).await?;
    for j in journals.items {
        if !j.metadata.owner_references.iter().flatten().any(|o| o.uid == uid) {
            continue;
        }
        let name = j.name_any();
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => info!(journal = %name, approval = %approval.name_any(), "expired: journal deleted"),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Publish an Event about the approval; a failure is logged, not fatal (the status says the same).
async fn announce(ctx: &Context, approval: &McpApproval, a: Announcement) {
    let event = Event {
        type_: if a.warning { EventType::Warning } else { EventType::Normal },
        reason: a.reason.into(),
        note: Some(a.note.chars().take(1000).collect()),
        action: "Decide".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &approval.object_ref(&())).await {
        warn!(error = %e, "cannot publish event");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use mcp_guard_crds::v1alpha1::ApprovalDecision;
    use serde_json::json;

    use super::*;

    fn spec(decision: Option<(Verdict, &str)>) -> McpApprovalSpec {
        let mut spec: McpApprovalSpec = serde_json::from_value(json!({
            "policy": "agents", "executionId": "e1", "requester": "system:serviceaccount:agents:bot",
            "summary": "github.delete_repo", "expiresAt": "2030-01-01T01:00:00Z",
            "calls": [{"sequence": 1, "server": "github", "tool": "delete_repo", "arguments": {},
                       "argumentsSha256": "0".repeat(64)}],
            "approvers": {"users": ["alice"]}
        }))
        .unwrap();
        spec.decision = decision.map(|(verdict, by)| ApprovalDecision {
            verdict,
            by: by.into(),
            reason: Some("looks right".into()),
        });
        spec
    }

    fn at(t: &str) -> Timestamp {
        t.parse().unwrap()
    }

    fn status(phase: ApprovalPhase) -> McpApprovalStatus {
        McpApprovalStatus { phase: Some(phase), ..Default::default() }
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn a_new_request_is_marked_pending_then_waits_for_its_expiry() {
        let now = at("2030-01-01T00:00:00Z");
        let Plan::Status { status, event } = plan(&spec(None), None, None, now, HOUR) else { panic!() };
        assert_eq!((status.phase, event), (Some(ApprovalPhase::Pending), None));
        assert_eq!(status.message.as_deref(), Some("waiting for a decision until 2030-01-01T01:00:00Z"));
        let pending = status;
        assert_eq!(
            plan(&spec(None), Some(&pending), None, now, HOUR),
            Plan::Wait { after: HOUR, drop_journals: false }
        );
        // A deadline half a second away is looked at in a second, not at once.
        let almost = at("2030-01-01T00:59:59.500Z");
        assert_eq!(
            plan(&spec(None), Some(&pending), None, almost, HOUR),
            Plan::Wait { after: Duration::from_secs(1), drop_journals: false }
        );
    }

    #[test]
    fn a_decision_becomes_the_status_with_who_and_when() {
        let now = at("2030-01-01T00:10:00.250Z");
        for (verdict, phase) in
            [(Verdict::Approved, ApprovalPhase::Approved), (Verdict::Denied, ApprovalPhase::Denied)]
        {
            for before in [None, Some(status(ApprovalPhase::Pending))] {
                let Plan::Status { status, event } =
                    plan(&spec(Some((verdict, "alice"))), before.as_ref(), None, now, HOUR)
                else {
                    panic!()
                };
                assert_eq!(status.phase, Some(phase));
                assert_eq!(status.decided_by.as_deref(), Some("alice"));
                assert_eq!(status.decided_at.as_deref(), Some("2030-01-01T00:10:00Z"));
                let event = event.unwrap();
                assert!(!event.warning);
                assert_eq!(event.reason, phase.as_str());
                assert_eq!(event.note, format!("{} by alice: looks right", phase.as_str()));
            }
        }
        // What the proxy wrote besides is kept.
        let before = McpApprovalStatus { used_by: Some("x".into()), ..status(ApprovalPhase::Pending) };
        let Plan::Status { status, .. } =
            plan(&spec(Some((Verdict::Approved, "alice"))), Some(&before), None, now, HOUR)
        else {
            panic!()
        };
        assert_eq!(status.used_by.as_deref(), Some("x"));
    }

    #[test]
    fn an_approval_written_at_or_after_the_expiry_is_too_late_and_a_denial_always_stands() {
        let expiry = at("2030-01-01T01:00:00Z");
        let approved = spec(Some((Verdict::Approved, "alice")));
        // Written in time, seen late (the operator was away): approved.
        let Plan::Status { status, .. } =
            plan(&approved, None, Some(at("2030-01-01T00:59:59Z")), at("2030-01-01T02:00:00Z"), HOUR)
        else {
            panic!()
        };
        assert_eq!(status.phase, Some(ApprovalPhase::Approved));
        for written in [Some(expiry), Some(at("2030-01-01T01:30:00Z")), None] {
            let Plan::Status { status, event } =
                plan(&approved, None, written, at("2030-01-01T01:30:00Z"), HOUR)
            else {
                panic!()
            };
            assert_eq!(status.phase, Some(ApprovalPhase::Expired), "written {written:?}");
            assert!(status.decided_by.is_none());
            let note = status.message.unwrap();
            assert!(note.starts_with("approved by alice at 2030-01-01T01:"), "{note}");
            assert!(note.contains("after it expired at 2030-01-01T01:00:00Z"), "{note}");
            assert!(event.unwrap().warning);
        }
        let denied = spec(Some((Verdict::Denied, "alice")));
        let Plan::Status { status, .. } =
            plan(&denied, None, Some(at("2030-01-01T01:30:00Z")), at("2030-01-01T01:30:00Z"), HOUR)
        else {
            panic!()
        };
        assert_eq!(status.phase, Some(ApprovalPhase::Denied));
    }

    #[test]
    fn the_decision_time_is_the_first_write_of_spec_decision() {
        let mut a: McpApproval = serde_json::from_value(json!({
            "apiVersion": "mcpguard.io/v1alpha1", "kind": "McpApproval",
            "metadata": {"name": "x", "namespace": "team-a", "managedFields": [
                {"manager": "proxy", "operation": "Update", "time": "2030-01-01T00:00:00Z",
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:policy": {}}}},
                {"manager": "kubectl-patch", "operation": "Update", "time": "2030-01-01T00:20:00Z",
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:decision": {"f:by": {}}}}},
                {"manager": "someone", "operation": "Apply", "time": "2030-01-01T00:40:00Z",
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:decision": {"f:by": {}}}}}
            ]},
            "spec": spec(Some((Verdict::Approved, "alice")))
        }))
        .unwrap();
        assert_eq!(decision_time(&a), Some(at("2030-01-01T00:20:00Z")));
        a.metadata.managed_fields = None;
        assert_eq!(decision_time(&a), None);
    }

    #[test]
    fn an_undecided_request_expires_at_its_deadline() {
        for before in [None, Some(status(ApprovalPhase::Pending))] {
            let Plan::Status { status, event } =
                plan(&spec(None), before.as_ref(), None, at("2030-01-01T01:00:00Z"), HOUR)
            else {
                panic!()
            };
            assert_eq!(status.phase, Some(ApprovalPhase::Expired));
            assert_eq!(status.message.as_deref(), Some("expired at 2030-01-01T01:00:00Z without a decision"));
            assert!(status.decided_by.is_none() && status.decided_at.is_none());
            let event = event.unwrap();
            assert!(event.warning);
            assert_eq!(event.reason, "Expired");
        }
    }

    #[test]
    fn final_phases_are_never_rewritten() {
        // A decision that arrives on a used or expired approval (admission refuses it; a cluster without
        // the admission policy might not) changes nothing.
        let now = at("2030-01-01T00:30:00Z");
        for phase in
            [ApprovalPhase::Used, ApprovalPhase::Expired, ApprovalPhase::Approved, ApprovalPhase::Denied]
        {
            let before = status(phase);
            let p = plan(&spec(Some((Verdict::Denied, "alice"))), Some(&before), None, now, HOUR);
            assert!(matches!(p, Plan::Wait { .. }), "{phase:?}: {p:?}");
        }
    }

    #[test]
    fn retention_counts_from_the_last_of_decision_use_and_expiry() {
        let decided = McpApprovalStatus {
            decided_at: Some("2030-01-01T00:20:00Z".into()),
            ..status(ApprovalPhase::Approved)
        };
        // Expiry (01:00) is later than the decision: retention counts from it.
        assert_eq!(
            plan(
                &spec(Some((Verdict::Approved, "alice"))),
                Some(&decided),
                None,
                at("2030-01-01T01:30:00Z"),
                HOUR
            ),
            Plan::Wait { after: Duration::from_secs(1800), drop_journals: false }
        );
        assert_eq!(
            plan(
                &spec(Some((Verdict::Approved, "alice"))),
                Some(&decided),
                None,
                at("2030-01-01T02:00:00Z"),
                HOUR
            ),
            Plan::Delete
        );
        let used = McpApprovalStatus {
            used_at: Some("2030-01-01T03:00:00+02:00".into()), // 01:00Z: the same as the expiry
            used_by: Some("e1".into()),
            decided_at: Some("2030-01-01T05:00:00Z".into()),
            ..status(ApprovalPhase::Used)
        };
        assert_eq!(
            plan(&spec(None), Some(&used), None, at("2030-01-01T05:30:00Z"), HOUR),
            Plan::Wait { after: Duration::from_secs(1800), drop_journals: false }
        );
        // An expired one keeps its record for the retention, but its journal goes now.
        assert_eq!(
            plan(&spec(None), Some(&status(ApprovalPhase::Expired)), None, at("2030-01-01T01:00:01Z"), HOUR),
            Plan::Wait { after: Duration::from_secs(3599), drop_journals: true }
        );
        assert_eq!(
            plan(
                &spec(None),
                Some(&status(ApprovalPhase::Denied)),
                None,
                at("2030-01-01T01:00:00Z"),
                Duration::ZERO
            ),
            Plan::Delete
        );
        assert!(needs_retention(Some(&status(ApprovalPhase::Denied))));
        assert!(!needs_retention(Some(&status(ApprovalPhase::Pending))) && !needs_retention(None));
    }

    #[test]
    fn bad_times_are_reported_not_acted_on() {
        let mut bad = spec(None);
        bad.expires_at = "tomorrow".into();
        let Plan::Malformed(m) = plan(&bad, None, None, at("2030-01-01T00:00:00Z"), HOUR) else { panic!() };
        assert!(m.contains("spec.expiresAt `tomorrow`"), "{m}");
        let used = McpApprovalStatus { used_at: Some("2030-13-01".into()), ..status(ApprovalPhase::Used) };
        let Plan::Malformed(m) = plan(&spec(None), Some(&used), None, at("2031-01-01T00:00:00Z"), HOUR)
        else {
            panic!()
        };
        assert!(m.contains("status.usedAt"), "{m}");
        // A retention too long to add saturates instead of overflowing.
        let p = plan(
            &spec(None),
            Some(&status(ApprovalPhase::Denied)),
            None,
            at("2030-01-01T02:00:00Z"),
            Duration::MAX,
        );
        assert!(matches!(p, Plan::Wait { .. }), "{p:?}");
    }
}
