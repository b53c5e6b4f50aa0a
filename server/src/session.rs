//! One request's or connection's DataFusion session, who may open one ([`Access`]), the limits
//! every query runs under, how a statement is planned as a read ([`plan_read`]) and what a
//! session lists ([`listing`]); shared by the Postgres wire, Flight SQL and HTTP endpoints.

use std::sync::Arc;
use std::time::Duration;

use datafusion::error::DataFusionError;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use floe_views::access::SessionAccess;
use floe_views::catalog_provider::{FloeCatalogProvider, Relation, CATALOG_NAME};
use floe_views::session::session_config;
use tokio::sync::Semaphore;

use crate::auth::{basic_credentials, Tokens, Users};
use crate::deadline::Deadline;
use crate::grants::Grants;
use crate::tls::Tls;

/// Who may connect, and what they may read.
#[derive(Debug, Clone)]
pub enum Access {
    /// Users with passwords, each reading what their grants give.
    Users(Arc<Users>, Arc<Grants>),
    /// Anyone, without a password, reading everything.
    Anonymous,
}

impl Access {
    /// What `user`, whose password or token has been checked, may read.
    pub fn reads_of(&self, user: &str) -> SessionAccess {
        match self {
            Access::Anonymous => SessionAccess::everything(),
            Access::Users(_, grants) => {
                let reads = SessionAccess::default();
                reads.grant(Arc::new(grants.policy_for(user)));
                reads
            }
        }
    }

    /// What the sender of an HTTP-style `Authorization` header value may read: a bearer token
    /// from `tokens`, or basic credentials; `None` when it proves nobody.
    pub fn authenticate(&self, header: &str, tokens: Option<&Tokens>) -> Option<SessionAccess> {
        self.caller(header, tokens).map(|caller| caller.reads)
    }

    /// Who sent an HTTP-style `Authorization` header value, checked once (a password check is
    /// deliberately slow): a bearer token from `tokens`, or basic credentials. `None` when it
    /// proves nobody; under anonymous access, without a token, anyone.
    pub fn caller(&self, header: &str, tokens: Option<&Tokens>) -> Option<Caller> {
        let user = match (header.strip_prefix("Bearer "), self) {
            (Some(token), _) => Some(tokens?.user_of(token)?),
            (None, Access::Anonymous) => None,
            (None, Access::Users(users, _)) => {
                let (user, password) = basic_credentials(header)?;
                if !users.verify(&user, &password) {
                    return None;
                }
                Some(user)
            }
        };
        let reads = user.as_deref().map_or_else(SessionAccess::everything, |user| self.reads_of(user));
        Some(Caller { user, reads })
    }

    /// Whether `caller`'s grants let them write `namespace.table`, or with `table` `None`, the
    /// namespace. Anonymous access writes nothing: writing needs a user and a `write = true` grant.
    pub fn writes(&self, caller: &Caller, namespace: &str, table: Option<&str>) -> bool {
        match (self, &caller.user) {
            (Access::Users(_, grants), Some(user)) => grants.policy_for(user).writes(namespace, table),
            _ => false,
        }
    }

    /// What the holder of `credentials` (user, password) may read; `None` when they prove
    /// nobody. Anonymous access needs none.
    pub fn sign_in(&self, credentials: Option<(&str, &str)>) -> Option<SessionAccess> {
        match (self, credentials) {
            (Access::Anonymous, _) => Some(SessionAccess::everything()),
            (Access::Users(users, _), Some((user, password))) if users.verify(user, password) => Some(self.reads_of(user)),
            (Access::Users(..), _) => None,
        }
    }
}

/// Someone whose token or password was checked: their name (none under anonymous access) and
/// what they may read.
#[derive(Debug, Clone)]
pub struct Caller {
    user: Option<String>,
    pub reads: SessionAccess,
}

/// What every endpoint serves, to whom and how: the catalog, who may connect, the limits, and
/// TLS when configured.
#[derive(Debug, Clone)]
pub struct Serving {
    pub provider: Arc<FloeCatalogProvider>,
    pub access: Access,
    pub limits: Limits,
    pub tls: Option<Tls>,
    /// How the Iceberg REST catalog serves ([`crate::iceberg_rest`]).
    pub catalog_service: crate::iceberg_rest::CatalogService,
}

impl Serving {
    /// Warns loudly when `endpoint` listens beyond this machine without TLS: what then
    /// `travels_in_clear`.
    pub fn warn_if_exposed(&self, addr: std::net::SocketAddr, endpoint: &str, travels_in_clear: &str) {
        if !addr.ip().is_loopback() && self.tls.is_none() {
            tracing::warn!(%addr, "the {endpoint} endpoint listens beyond this machine without TLS ([server] tls_cert, tls_key): {travels_in_clear} travel in clear");
        }
    }
}

/// What one query may use, and how many may run at once.
#[derive(Debug, Clone)]
pub struct Limits {
    /// A query still running after this long is cancelled.
    pub timeout: Duration,
    /// Memory one session's operators may hold (sorts, joins, aggregates) before the query
    /// fails with "resources exhausted".
    pub memory: usize,
    /// Queries allowed to run at once (HTTP, Flight SQL); the rest are turned away at once.
    pub concurrent: Arc<Semaphore>,
}

impl Limits {
    pub fn new(timeout: Duration, memory: usize, concurrent: usize) -> Self {
        Self { timeout, memory, concurrent: Arc::new(Semaphore::new(concurrent)) }
    }
}

/// A session of `endpoint` over floe's catalog that reads what `reads` allows, its queries
/// within `limits.memory` and `limits.timeout`.
pub fn session(
    endpoint: &'static str,
    provider: &FloeCatalogProvider,
    reads: SessionAccess,
    limits: &Limits,
) -> datafusion::error::Result<SessionContext> {
    let runtime = RuntimeEnvBuilder::new().with_memory_limit(limits.memory, 1.0).build_arc()?;
    let state = SessionStateBuilder::new()
        .with_config(session_config())
        .with_runtime_env(runtime)
        .with_default_features()
        .with_physical_optimizer_rule(Arc::new(Deadline { timeout: limits.timeout, endpoint }))
        .build();
    let ctx = SessionContext::new_with_state(state);
    ctx.register_catalog(CATALOG_NAME, Arc::new(provider.for_session(reads)));
    Ok(ctx)
}

/// Why a statement will not run.
#[derive(Debug)]
pub enum Unplanned {
    /// It writes, or would: DDL, DML, `COPY … TO`, `CREATE EXTERNAL TABLE`.
    NotARead(String),
    /// DataFusion could not plan it (a syntax error, an unknown or forbidden table …).
    Failed(DataFusionError),
}

impl std::fmt::Display for Unplanned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unplanned::NotARead(why) => write!(f, "floe's SQL endpoint is read-only: {why}"),
            Unplanned::Failed(e) => f.write_str(&e.strip_backtrace()),
        }
    }
}

/// `sql` planned in `ctx`, if it only reads.
pub async fn plan_read(ctx: &SessionContext, sql: &str) -> Result<LogicalPlan, Unplanned> {
    let plan = ctx.state().create_logical_plan(sql).await.map_err(Unplanned::Failed)?;
    floe_views::read_only().verify_plan(&plan).map_err(|e| Unplanned::NotARead(e.strip_backtrace()))?;
    Ok(plan)
}

/// Every table and view of floe's catalog that `ctx` may read, schema by schema, as last listed.
pub fn listing(ctx: &SessionContext) -> Vec<Relation> {
    with_floe(ctx, FloeCatalogProvider::relations).unwrap_or_default()
}

/// `f` of the session's floe catalog, if it has one.
pub fn with_floe<R>(ctx: &SessionContext, f: impl FnOnce(&FloeCatalogProvider) -> R) -> Option<R> {
    let catalog = ctx.catalog(CATALOG_NAME)?;
    catalog.as_any().downcast_ref::<FloeCatalogProvider>().map(f)
}
