//! Who may read what: `[[grants]]` give a user, or a role users have, a namespace's tables, one
//! table (with its latest view), or everything; optionally only some of a table's columns.
//!
//! ```toml
//! [[grants]]
//! to = "bi"                    # a user's name or one of their roles
//! on = "studio.*"              # "*", "namespace.*" or "namespace.table"
//!
//! [[grants]]
//! to = "intern"
//! on = "studio.movies"
//! columns = ["movie_id", "title"]   # only these (floe's own _op, _op_ts… stay readable)
//!
//! [[grants]]
//! to = "spark-jobs"
//! on = "scratch.*"
//! write = true                 # may also create, commit to and drop tables (Iceberg REST)
//! ```
//!
//! A user reads the union of what their grants give, and nothing without one. Writing needs a
//! grant with `write = true` on whole tables; creating or dropping a namespace needs one on
//! the namespace (`"namespace.*"`) or on `"*"`.

use std::collections::{BTreeMap, BTreeSet};

use floe_views::access::{AccessPolicy, Columns};

/// What one grant covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Everything,
    Namespace(String),
    Table { namespace: String, table: String },
}

impl Scope {
    /// `"*"`, `"namespace.*"` or `"namespace.table"`.
    pub fn parse(text: &str) -> Option<Scope> {
        if text == "*" {
            return Some(Scope::Everything);
        }
        let (namespace, table) = text.rsplit_once('.')?;
        if namespace.is_empty() || table.is_empty() {
            return None;
        }
        Some(match table {
            "*" => Scope::Namespace(namespace.to_string()),
            _ => Scope::Table { namespace: namespace.to_string(), table: table.to_string() },
        })
    }

    fn covers(&self, namespace: &str, table: &str) -> bool {
        match self {
            Scope::Everything => true,
            Scope::Namespace(n) => n == namespace,
            Scope::Table { namespace: n, table: t } => n == namespace && t == table,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Grant {
    /// A user or a role.
    pub to: String,
    pub scope: Scope,
    pub columns: Columns,
    /// Creating, committing to and dropping the tables in scope, through the Iceberg REST API.
    pub write: bool,
}

/// Every grant, and each user's roles.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    pub grants: Vec<Grant>,
    pub roles: BTreeMap<String, BTreeSet<String>>,
}

impl Grants {
    /// What `user` may read.
    pub fn policy_for(&self, user: &str) -> UserPolicy {
        let mut names: BTreeSet<String> = self.roles.get(user).cloned().unwrap_or_default();
        names.insert(user.to_string());
        UserPolicy { grants: self.grants.iter().filter(|g| names.contains(&g.to)).cloned().collect() }
    }
}

/// The grants of one user.
#[derive(Debug)]
pub struct UserPolicy {
    grants: Vec<Grant>,
}

impl UserPolicy {
    /// Whether a write grant covers the whole of `namespace.table`, or with `table` `None`, the
    /// namespace itself (creating or dropping it).
    pub fn writes(&self, namespace: &str, table: Option<&str>) -> bool {
        self.grants.iter().filter(|g| g.write && g.columns == Columns::All).any(|g| match (table, &g.scope) {
            (Some(table), scope) => scope.covers(namespace, table),
            (None, Scope::Everything) => true,
            (None, Scope::Namespace(n)) => n == namespace,
            (None, Scope::Table { .. }) => false,
        })
    }
}

impl AccessPolicy for UserPolicy {
    fn columns(&self, namespace: &str, table: &str) -> Option<Columns> {
        let covering = self.grants.iter().filter(|g| g.scope.covers(namespace, table));
        covering.map(|g| g.columns.clone()).reduce(Columns::union)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(to: &str, on: &str, columns: Option<&[&str]>) -> Grant {
        let columns = columns.map_or(Columns::All, |c| Columns::Only(c.iter().map(|s| s.to_string()).collect()));
        Grant { to: to.into(), scope: Scope::parse(on).unwrap(), columns, write: false }
    }

    #[test]
    fn writing_needs_a_write_grant_on_whole_tables_and_namespaces_need_a_namespace_wide_one() {
        let write = |on: &str| Grant { write: true, ..grant("etl", on, None) };
        let grants =
            Grants { grants: vec![write("scratch.*"), write("lab.samples"), grant("etl", "shop.*", None)], roles: Default::default() };
        let etl = grants.policy_for("etl");
        assert!(etl.writes("scratch", Some("anything")) && etl.writes("scratch", None));
        assert!(etl.writes("lab", Some("samples")) && !etl.writes("lab", Some("other")) && !etl.writes("lab", None));
        assert!(!etl.writes("shop", Some("orders")) && !etl.writes("shop", None), "a read grant writes nothing");
        assert!(!grants.policy_for("nobody").writes("scratch", None));
        let columns_only = Grants { grants: vec![Grant { write: true, ..grant("etl", "lab.samples", Some(&["id"])) }], ..grants };
        assert!(!columns_only.policy_for("etl").writes("lab", Some("samples")), "a column grant cannot write whole files");
    }

    #[test]
    fn a_user_reads_the_union_of_their_own_and_their_roles_grants_and_nothing_else() {
        let grants = Grants {
            grants: vec![
                grant("bi", "studio.*", None),
                grant("intern", "studio.movies", Some(&["title"])),
                grant("intern", "studio.movies", Some(&["year"])),
                grant("ops", "*", None),
            ],
            roles: [("ana".to_string(), ["bi".to_string()].into())].into(),
        };
        let ana = grants.policy_for("ana");
        assert_eq!(ana.columns("studio", "movies"), Some(Columns::All));
        assert_eq!(ana.columns("finance", "ledger"), None);
        let intern = grants.policy_for("intern");
        assert_eq!(intern.columns("studio", "movies"), Some(Columns::Only(["title".to_string(), "year".to_string()].into())));
        assert_eq!(intern.columns("studio", "talents"), None);
        assert_eq!(grants.policy_for("ops").columns("finance", "ledger"), Some(Columns::All));
        assert_eq!(grants.policy_for("nobody").columns("studio", "movies"), None);
    }

    #[test]
    fn scopes_are_everything_a_namespace_or_a_table() {
        assert_eq!(Scope::parse("*"), Some(Scope::Everything));
        assert_eq!(Scope::parse("studio.*"), Some(Scope::Namespace("studio".into())));
        assert_eq!(Scope::parse("a.b.movies"), Some(Scope::Table { namespace: "a.b".into(), table: "movies".into() }));
        assert_eq!(Scope::parse("movies"), None);
        assert_eq!(Scope::parse(".movies"), None);
    }
}
