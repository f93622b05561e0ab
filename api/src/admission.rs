//! Admission at the edge: at most `max_concurrent` executions run at once, at most `max_queue` more
//! wait (in arrival order) for a slot; any further request is refused at once with RESOURCE_EXHAUSTED
//! rather than piling up. A waiting request gives up with DEADLINE_EXCEEDED when its deadline passes.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::ApiError;

#[derive(Debug)]
pub struct Admission {
    slots: Arc<Semaphore>,
    max_concurrent: usize,
    max_queue: usize,
    /// Executions running plus waiting.
    in_flight: Arc<AtomicUsize>,
}

/// A running execution's slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Permit {
    _slot: OwnedSemaphorePermit,
    _count: InFlight,
}

#[derive(Debug)]
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Admission {
    pub fn new(max_concurrent: usize, max_queue: usize) -> Self {
        let max_concurrent = max_concurrent.max(1);
        Admission {
            slots: Arc::new(Semaphore::new(max_concurrent)),
            max_concurrent,
            max_queue,
            in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Take a slot, waiting in the queue if needed.
    pub async fn admit(&self, deadline: Option<Instant>) -> Result<Permit, ApiError> {
        let limit = self.max_concurrent + self.max_queue;
        let previous = self.in_flight.fetch_add(1, Ordering::AcqRel);
        let count = InFlight(self.in_flight.clone());
        if previous >= limit {
            return Err(ApiError::ResourceExhausted(format!(
                "the execution queue is full ({} running, {} waiting); retry later",
                self.max_concurrent, self.max_queue
            )));
        }
        let acquire = self.slots.clone().acquire_owned();
        let slot = match deadline {
            None => acquire.await,
            Some(deadline) => {
                match tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), acquire).await {
                    Ok(slot) => slot,
                    Err(_) => {
                        return Err(ApiError::DeadlineExceeded(
                            "the deadline passed while the execution waited in the queue".into(),
                        ));
                    }
                }
            }
        };
        let slot = slot.map_err(|_| ApiError::Unavailable("the server is shutting down".into()))?;
        Ok(Permit { _slot: slot, _count: count })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn the_queue_is_bounded_and_deadlines_apply_while_waiting() {
        let a = Admission::new(1, 1);
        let running = a.admit(None).await.unwrap();
        let deadline = Instant::now() + Duration::from_millis(50);
        let waiting = a.admit(Some(deadline));
        tokio::pin!(waiting);
        // The second one waits; a third is refused at once.
        assert!(tokio::time::timeout(Duration::from_millis(10), &mut waiting).await.is_err());
        assert!(matches!(a.admit(None).await, Err(ApiError::ResourceExhausted(_))));
        assert!(matches!(waiting.await, Err(ApiError::DeadlineExceeded(_))));
        drop(running);
        assert_eq!(a.in_flight(), 0);
        let _again = a.admit(None).await.unwrap();
        assert_eq!(a.in_flight(), 1);
    }
}
