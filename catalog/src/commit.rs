//! The commit model, as in the Iceberg REST protocol: a list of requirements that must hold on
//! the table's *current* metadata, and a list of updates applied to it.
//!
//! [`stage_change`] is pure: it checks and applies a change to metadata in memory. Writing the
//! new metadata file and swapping the pointer belong to the [`Catalog`] implementation.
//! [`commit_with_retry`] is the one retry loop: reload, let the caller re-validate and rebuild
//! its change, commit, and back off on conflict.

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use iceberg::spec::TableMetadata;
use iceberg::{MetadataLocation, TableIdent, TableRequirement, TableUpdate};
use tracing::{debug, warn};

use crate::catalog::Catalog;
use crate::error::{CatalogError, Result};
use crate::table::FloeTable;

/// Requirements and updates of one commit.
#[derive(Debug, Clone, Default)]
pub struct TableChange {
    pub requirements: Vec<TableRequirement>,
    pub updates: Vec<TableUpdate>,
}

impl TableChange {
    pub fn new(requirements: Vec<TableRequirement>, updates: Vec<TableUpdate>) -> Self {
        Self { requirements, updates }
    }
}

/// New metadata and the location it will be written to, computed from the current metadata.
#[derive(Debug)]
pub struct StagedMetadata {
    pub metadata: TableMetadata,
    pub location: MetadataLocation,
}

/// Checks `change.requirements` against `current` and applies the updates.
/// A failed requirement is a [`CatalogError::Conflict`]: the table moved under the caller.
pub fn stage_change(ident: &TableIdent, current: &TableMetadata, current_location: &str, change: TableChange) -> Result<StagedMetadata> {
    for requirement in &change.requirements {
        requirement.check(Some(current)).map_err(|e| CatalogError::conflict(ident, e.message().to_string()))?;
    }
    let mut builder = current.clone().into_builder(Some(current_location.to_string()));
    for update in change.updates {
        builder = update.apply(builder)?;
    }
    let metadata = builder.build()?.metadata;
    let location = MetadataLocation::from_str(current_location)?.with_next_version().with_new_metadata(&metadata);
    Ok(StagedMetadata { metadata, location })
}

/// Refuses a multi-table commit that names one table twice: its changes would race each other.
pub fn check_distinct(changes: &[(TableIdent, TableChange)]) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    match changes.iter().find(|(ident, _)| !seen.insert(ident)) {
        Some((ident, _)) => Err(CatalogError::Invalid(format!("{ident} is named twice in one transaction: send its changes as one"))),
        None => Ok(()),
    }
}

/// Bounded exponential backoff for [`commit_with_retry`].
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 8, initial_backoff: Duration::from_millis(20), max_backoff: Duration::from_secs(2) }
    }
}

impl RetryPolicy {
    pub fn no_retry() -> Self {
        Self { max_attempts: 1, ..Self::default() }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.initial_backoff.saturating_mul(factor).min(self.max_backoff)
    }

    /// Whether attempt number `attempt`, which failed with `error`, is tried again: it is when
    /// the error is a retryable conflict and attempts are left, after the backoff's wait.
    async fn wait_to_retry(&self, attempt: u32, error: &CatalogError, what: &(dyn std::fmt::Display + Sync)) -> bool {
        if !error.is_retryable() || attempt >= self.max_attempts {
            return false;
        }
        let wait = self.backoff(attempt);
        warn!(%what, attempt, ?wait, %error, "commit conflict, retrying");
        tokio::time::sleep(wait).await;
        true
    }
}

/// Reloads `ident`, asks `build_change` for a change against that state, and commits it.
/// On a conflict it reloads and asks again, so the caller re-validates its preconditions
/// (for example "these source offsets are not committed yet") on every attempt.
/// `build_change` returning `Ok(None)` means there is nothing to do any more.
pub async fn commit_with_retry<F, Fut>(
    catalog: &dyn Catalog,
    ident: &TableIdent,
    policy: &RetryPolicy,
    mut build_change: F,
) -> Result<Option<FloeTable>>
where
    F: FnMut(FloeTable) -> Fut,
    Fut: Future<Output = Result<Option<TableChange>>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        let table = catalog.load_table(ident).await?;
        let Some(change) = build_change(table.clone()).await? else {
            return Ok(None);
        };
        match catalog.commit_table(&table, change).await {
            Ok(committed) => {
                debug!(table = %ident, attempt, "committed");
                return Ok(Some(committed));
            }
            Err(e) => {
                if !policy.wait_to_retry(attempt, &e, ident).await {
                    return Err(e);
                }
            }
        }
    }
}

/// Commits `changes` to several tables at once ([`Catalog::commit_tables`]), again after a
/// backoff when another writer moved one of them in between: each attempt checks the
/// requirements against the tables' metadata of that moment.
pub async fn commit_tables_with_retry(
    catalog: &dyn Catalog,
    changes: Vec<(TableIdent, TableChange)>,
    policy: &RetryPolicy,
) -> Result<Vec<FloeTable>> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match catalog.commit_tables(changes.clone()).await {
            Ok(committed) => return Ok(committed),
            Err(e) => {
                if !policy.wait_to_retry(attempt, &e, &format!("{} tables", changes.len())).await {
                    return Err(e);
                }
            }
        }
    }
}
