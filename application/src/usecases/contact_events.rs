//! Contact events a provider pushed to the cloud, already verified and translated into
//! [`ContactEvent`]s by that provider's inbound adapter, appended to the contact-event feed that
//! local deployments pull (docs/design.md "Events (cloud → local, pulled)").

use std::sync::Arc;

use tracing::{info, instrument};

use crate::ports::{ContactEvent, EventStore, StoreError};

/// Appends verified contact events to the feed, each once.
pub struct AppendContactEvents {
    events: Arc<dyn EventStore>,
}

impl AppendContactEvents {
    /// Builds the use case.
    pub fn new(events: Arc<dyn EventStore>) -> Self {
        Self { events }
    }

    /// Appends `events` in order; an event whose `(corp_id, event_id)` is already in the feed (a
    /// provider's redelivery) is skipped. Returns how many were appended. The feed's long-polls
    /// are woken by the store.
    ///
    /// Errors: `Store` when the feed cannot be written (the events appended before stay: a
    /// redelivery skips them and appends the rest).
    #[instrument(skip_all, fields(events = events.len()))]
    pub async fn execute(&self, events: &[ContactEvent]) -> Result<usize, StoreError> {
        let mut appended = 0;
        for event in events {
            if let Some(cursor) = self.events.append(event).await? {
                appended += 1;
                info!(corp_id = %event.corp_id, change = ?event.change, event_id = %event.event_id, cursor, "contact event appended");
            }
        }
        Ok(appended)
    }
}

#[cfg(test)]
mod tests {
    use domain::{CorpId, Timestamp, UserId};

    use super::*;
    use crate::ports::MockEventStore;

    fn event(id: &str) -> ContactEvent {
        ContactEvent {
            corp_id: CorpId::parse("tenant-a").unwrap_or_else(|e| panic!("{e}")),
            event_id: id.to_owned(),
            change: crate::ports::DirectoryChange::MemberLeft,
            userids: vec![UserId::parse("u1").unwrap_or_else(|e| panic!("{e}"))],
            dept_ids: Vec::new(),
            received_at: Timestamp::from_millis(1),
        }
    }

    #[tokio::test]
    async fn each_event_is_appended_once_and_redeliveries_are_skipped() -> Result<(), StoreError> {
        let mut store = MockEventStore::new();
        store.expect_append().withf(|e| e.event_id == "e1").times(1).returning(|_| Ok(Some(7)));
        store.expect_append().withf(|e| e.event_id == "e2").times(1).returning(|_| Ok(None));
        let appended = AppendContactEvents::new(Arc::new(store)).execute(&[event("e1"), event("e2")]).await?;
        assert_eq!(appended, 1);
        Ok(())
    }

    #[tokio::test]
    async fn a_store_failure_is_returned() {
        let mut store = MockEventStore::new();
        store.expect_append().times(1).returning(|_| Err(StoreError::Unavailable("down".into())));
        let err = AppendContactEvents::new(Arc::new(store)).execute(&[event("e1")]).await.err();
        assert_eq!(err, Some(StoreError::Unavailable("down".into())));
    }
}
