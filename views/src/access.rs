//! What a session may read. The catalog provider asks before it lists a table or resolves one,
//! so a table a session may not read is neither listed (`information_schema`, `pg_catalog`) nor
//! readable, however a query names it (joins, subqueries, CTEs, views), and a column it may not
//! read is not in the table's schema at all, so `SELECT *` cannot show it.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::sync::{Arc, OnceLock};

/// The columns of a table a session may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Columns {
    All,
    /// These source columns; floe's own (`_op`, `_op_ts`, …) stay readable.
    Only(BTreeSet<String>),
}

impl Columns {
    /// Whether `column` is readable.
    pub fn allows(&self, column: &str) -> bool {
        match self {
            Columns::All => true,
            Columns::Only(names) => names.contains(column) || floe_catalog::layout::is_metadata_column(column),
        }
    }

    /// What either grant allows.
    pub fn union(self, other: Columns) -> Columns {
        match (self, other) {
            (Columns::Only(mut a), Columns::Only(b)) => {
                a.extend(b);
                Columns::Only(a)
            }
            _ => Columns::All,
        }
    }
}

/// Decides what one user may read.
pub trait AccessPolicy: Debug + Send + Sync {
    /// The columns of `namespace.table` (and of its latest view) the user may read; `None` if
    /// the user may not read the table at all.
    fn columns(&self, namespace: &str, table: &str) -> Option<Columns>;
}

/// Every table, every column.
#[derive(Debug)]
pub struct Everything;

impl AccessPolicy for Everything {
    fn columns(&self, _namespace: &str, _table: &str) -> Option<Columns> {
        Some(Columns::All)
    }
}

/// A session's policy, set once its user is known (after authentication). Until then the
/// session may read nothing.
#[derive(Debug, Clone, Default)]
pub struct SessionAccess(Arc<OnceLock<Arc<dyn AccessPolicy>>>);

impl SessionAccess {
    /// A session that may read everything (local use, or a server open to anyone).
    pub fn everything() -> Self {
        let access = Self::default();
        access.grant(Arc::new(Everything));
        access
    }

    /// Sets the policy; a session's policy is set once, later calls change nothing.
    pub fn grant(&self, policy: Arc<dyn AccessPolicy>) {
        let _ = self.0.set(policy);
    }

    pub fn is_granted(&self) -> bool {
        self.0.get().is_some()
    }

    /// The columns of `namespace.table` this session may read; `None`: none.
    pub fn columns(&self, namespace: &str, table: &str) -> Option<Columns> {
        self.0.get()?.columns(namespace, table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_reads_nothing_until_its_policy_is_set_and_then_only_that() {
        let access = SessionAccess::default();
        assert_eq!(access.columns("studio", "movies"), None);
        access.grant(Arc::new(Everything));
        assert_eq!(access.columns("studio", "movies"), Some(Columns::All));
    }

    #[test]
    fn restricted_columns_keep_floes_own_and_widen_by_union() {
        let only = |names: &[&str]| Columns::Only(names.iter().map(|n| n.to_string()).collect());
        assert!(only(&["title"]).allows("title") && only(&["title"]).allows("_op_ts"));
        assert!(!only(&["title"]).allows("budget"));
        assert_eq!(only(&["title"]).union(only(&["year"])), only(&["title", "year"]));
        assert_eq!(only(&["title"]).union(Columns::All), Columns::All);
    }
}
