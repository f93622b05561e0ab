//! Leader election with a `coordination.k8s.io/v1` Lease, so two operator replicas are safe: only the
//! holder runs the controllers. Updates use the Lease's resourceVersion (optimistic concurrency), so two
//! candidates never both win. A leader that cannot renew in time exits, and its Deployment restarts it
//! as a candidate.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::PostParams;
use tracing::{info, warn};

/// A lease is held this long without renewal.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// The holder renews this often.
pub const RENEW_EVERY: Duration = Duration::from_secs(5);

pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
}

/// What one attempt found.
#[derive(Debug, PartialEq, Eq)]
pub enum Attempt {
    Leading,
    Following(String),
}

impl LeaderElector {
    pub fn new(api: Api<Lease>, name: &str, identity: &str) -> Self {
        LeaderElector { api, name: name.into(), identity: identity.into() }
    }

    /// Wait until this replica holds the lease.
    pub async fn acquire(&self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Leading) => {
                    info!(lease = %self.name, identity = %self.identity, "became the leader");
                    return;
                }
                Ok(Attempt::Following(holder)) => info!(%holder, "another replica leads; waiting"),
                Err(e) => warn!(error = %e, "leader election attempt failed"),
            }
            tokio::time::sleep(RENEW_EVERY).await;
        }
    }

    /// Renew until renewal fails for longer than the lease lasts; then return (the caller exits).
    pub async fn hold(&self) {
        let mut last_ok = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(RENEW_EVERY).await;
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Leading) => last_ok = tokio::time::Instant::now(),
                Ok(Attempt::Following(holder)) => {
                    warn!(%holder, "lost the lease");
                    return;
                }
                Err(e) => warn!(error = %e, "cannot renew the lease"),
            }
            if last_ok.elapsed() >= LEASE_DURATION {
                warn!("could not renew the lease in time");
                return;
            }
        }
    }

    /// One round: create the lease, renew it if ours, or take it over if it expired.
    pub async fn try_acquire_or_renew(&self) -> Result<Attempt, kube::Error> {
        let now = Timestamp::now();
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(self.name.clone()), ..Default::default() },
                spec: Some(self.spec(now, now, 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Attempt::Leading),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Following("(just created)".into())),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let duration = i64::from(spec.lease_duration_seconds.unwrap_or(15));
        let expired = spec.renew_time.as_ref().is_none_or(|t| {
            t.0.saturating_add(SignedDuration::from_secs(duration)).is_ok_and(|end| end < now)
        });
        let transitions = spec.lease_transitions.unwrap_or(0);
        let new_spec = if holder == self.identity {
            let acquired = spec.acquire_time.map(|t| t.0).unwrap_or(now);
            self.spec(acquired, now, transitions)
        } else if holder.is_empty() || expired {
            self.spec(now, now, transitions.saturating_add(1))
        } else {
            return Ok(Attempt::Following(holder));
        };
        lease.spec = Some(new_spec);
        // `replace` carries the resourceVersion we read: a concurrent writer makes this fail with 409.
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(Attempt::Leading),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Following("(conflict)".into())),
            Err(e) => Err(e),
        }
    }

    fn spec(&self, acquired: Timestamp, renewed: Timestamp, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(i32::try_from(LEASE_DURATION.as_secs()).unwrap_or(15)),
            acquire_time: Some(MicroTime(acquired)),
            renew_time: Some(MicroTime(renewed)),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }
}
