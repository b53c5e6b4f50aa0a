//! A table's pause, kept in its properties so it survives restarts and every process sees it:
//! the sink pauses a table when its source changes incompatibly, `floe status` shows why, and an
//! operator's `floe resume` clears it. A pause changes no data and adds no snapshot.

use iceberg::TableIdent;
use iceberg::TableUpdate;

use crate::commit::{commit_with_retry, RetryPolicy, TableChange};
use crate::{Catalog, FloeTable, Result};

/// Why the table is paused (a table property).
pub const PAUSED_REASON: &str = "floe.paused.reason";
/// When it was paused, RFC 3339 (a table property).
pub const PAUSED_AT: &str = "floe.paused.at";

/// A table's pause, read from its properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pause {
    pub reason: String,
    pub at: String,
}

/// The table's pause, if it is paused.
pub fn pause_of(table: &FloeTable) -> Option<Pause> {
    let properties = table.metadata().properties();
    let reason = properties.get(PAUSED_REASON)?.clone();
    let at = properties.get(PAUSED_AT).cloned().unwrap_or_default();
    Some(Pause { reason, at })
}

/// Marks `ident` paused with `reason` and returns the table after it.
pub async fn pause_table(catalog: &dyn Catalog, ident: &TableIdent, reason: &str) -> Result<FloeTable> {
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let updates: std::collections::HashMap<String, String> =
        [(PAUSED_REASON.to_string(), reason.to_string()), (PAUSED_AT.to_string(), at)].into();
    let change = |_| async { Ok(Some(TableChange::new(vec![], vec![TableUpdate::SetProperties { updates: updates.clone() }]))) };
    let committed = commit_with_retry(catalog, ident, &RetryPolicy::default(), change).await?;
    Ok(committed.expect("a pause is always a change"))
}

/// Clears `ident`'s pause; returns the pause it had, `None` if it was not paused.
pub async fn resume_table(catalog: &dyn Catalog, ident: &TableIdent) -> Result<Option<Pause>> {
    let mut cleared = None;
    commit_with_retry(catalog, ident, &RetryPolicy::default(), |table| {
        cleared = pause_of(&table);
        let removals = vec![PAUSED_REASON.to_string(), PAUSED_AT.to_string()];
        let change = cleared.is_some().then(|| TableChange::new(vec![], vec![TableUpdate::RemoveProperties { removals }]));
        async move { Ok(change) }
    })
    .await?;
    Ok(cleared)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{create_people, test_catalog};

    #[tokio::test]
    async fn a_pause_is_kept_in_the_table_until_resumed() {
        let test = test_catalog().await;
        let table = create_people(&test.catalog, "prices").await;
        let ident = table.ident().clone();
        assert_eq!(pause_of(&table), None);

        pause_table(&test.catalog, &ident, "incompatible schema change: column amount").await.unwrap();
        let reloaded = test.catalog.load_table(&ident).await.unwrap();
        let pause = pause_of(&reloaded).expect("paused");
        assert_eq!(pause.reason, "incompatible schema change: column amount");
        assert!(chrono::DateTime::parse_from_rfc3339(&pause.at).is_ok(), "{}", pause.at);
        assert_eq!(reloaded.current_snapshot().map(|s| s.snapshot_id()), table.current_snapshot().map(|s| s.snapshot_id()));

        assert_eq!(resume_table(&test.catalog, &ident).await.unwrap(), Some(pause));
        assert_eq!(pause_of(&test.catalog.load_table(&ident).await.unwrap()), None);
        assert_eq!(resume_table(&test.catalog, &ident).await.unwrap(), None, "resuming a running table changes nothing");
    }
}
