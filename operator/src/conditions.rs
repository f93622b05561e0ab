//! Condition types and reasons, in one place (as linkerd's policy controller does), and the rule that
//! a condition keeps its `lastTransitionTime` unless its status changes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// The object does what it is for: references resolved, children applied and available.
pub const READY: &str = "Ready";
/// Every McpServer and Secret the object references exists.
pub const RESOLVED_REFS: &str = "ResolvedRefs";
/// The Deployment has enough ready pods.
pub const AVAILABLE: &str = "Available";
/// An McpServer's tools and `serverInfo` come from a live handshake, through a policy's executor.
/// Informational: it never makes `Ready` false.
pub const DISCOVERED: &str = "Discovered";

pub const REASON_RESOLVED: &str = "Resolved";
pub const REASON_SERVER_NOT_FOUND: &str = "McpServerNotFound";
pub const REASON_SERVER_NOT_READY: &str = "McpServerNotReady";
pub const REASON_SECRET_NOT_FOUND: &str = "SecretNotFound";
pub const REASON_INVALID_SPEC: &str = "InvalidSpec";
pub const REASON_APPLY_FAILED: &str = "ApplyFailed";
/// A child's name is taken by an object the operator did not create for this owner.
pub const REASON_NOT_OWNED: &str = "ChildNotOwned";
/// The object is in a namespace the operator never writes in.
pub const REASON_RESERVED_NAMESPACE: &str = "ReservedNamespace";
pub const REASON_AVAILABLE: &str = "MinimumReplicasAvailable";
pub const REASON_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
pub const REASON_PENDING: &str = "Pending";
pub const REASON_READY: &str = "Ready";
pub const REASON_REMOTE: &str = "RemoteServer";
pub const REASON_HANDSHAKE: &str = "Handshake";
pub const REASON_NOT_BOUND: &str = "NotBound";
pub const REASON_UNREACHABLE: &str = "Unreachable";
pub const REASON_DISCONNECTED: &str = "Disconnected";

/// A condition for `generation`; `now` is its `lastTransitionTime` unless `previous` has the same status.
pub fn condition(
    type_: &str,
    ok: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    previous: &[Condition],
    now: Timestamp,
) -> Condition {
    let status = if ok { "True" } else { "False" };
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    let mut message: String = message.into();
    // The API caps messages at 32768 bytes; keep well below, on a character boundary.
    if message.len() > 4096 {
        let mut end = 4096;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
    }
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time,
    }
}

/// The status of condition `type_` in `conditions`, if present.
pub fn status_of<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a str> {
    conditions.iter().find(|c| c.type_ == type_).map(|c| c.status.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_is_kept_while_the_status_holds() {
        let t0 = Timestamp::from_second(1_000).unwrap_or(Timestamp::UNIX_EPOCH);
        let t1 = Timestamp::from_second(2_000).unwrap_or(Timestamp::UNIX_EPOCH);
        let first = condition(READY, false, REASON_PENDING, "x", Some(1), &[], t0);
        let same =
            condition(READY, false, REASON_SECRET_NOT_FOUND, "y", Some(2), std::slice::from_ref(&first), t1);
        assert_eq!(same.last_transition_time, Time(t0));
        let flipped = condition(READY, true, REASON_READY, "", Some(2), &[first], t1);
        assert_eq!(flipped.last_transition_time, Time(t1));
    }

    /// A message made from what an executor or a user wrote (an upstream's error, every refused field)
    /// cannot grow a status past what the API server takes: it is cut at 4 KiB, on a character boundary.
    #[test]
    fn messages_are_bounded() {
        let huge = "é".repeat(10_000);
        let c = condition(READY, false, REASON_INVALID_SPEC, huge, None, &[], Timestamp::UNIX_EPOCH);
        assert!(c.message.len() <= 4096 && c.message.len() > 4000, "{}", c.message.len());
        assert!(c.message.chars().all(|ch| ch == 'é'));
    }
}
