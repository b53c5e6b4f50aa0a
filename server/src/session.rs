//! One request's or connection's DataFusion session, who may open one ([`Access`]), and the
//! limits every query runs under; shared by the Postgres wire and HTTP endpoints.

use std::sync::Arc;
use std::time::Duration;

use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::SessionContext;
use floe_views::access::SessionAccess;
use floe_views::catalog_provider::{FloeCatalogProvider, CATALOG_NAME};
use floe_views::session::session_config;
use tokio::sync::Semaphore;

use crate::auth::Users;
use crate::grants::Grants;

/// Who may connect, and what they may read.
#[derive(Debug, Clone)]
pub enum Access {
    /// Users with passwords, each reading what their grants give.
    Users(Arc<Users>, Arc<Grants>),
    /// Anyone, without a password, reading everything.
    Anonymous,
}

/// What one query may use, and how many may run at once.
#[derive(Debug, Clone)]
pub struct Limits {
    /// A query still running after this long is cancelled (HTTP).
    pub timeout: Duration,
    /// Memory one session's operators may hold (sorts, joins, aggregates) before the query
    /// fails with "resources exhausted".
    pub memory: usize,
    /// Queries allowed to run at once (HTTP); the rest are turned away at once.
    pub concurrent: Arc<Semaphore>,
}

impl Limits {
    pub fn new(timeout: Duration, memory: usize, concurrent: usize) -> Self {
        Self { timeout, memory, concurrent: Arc::new(Semaphore::new(concurrent)) }
    }
}

/// A session over floe's catalog that reads what `reads` allows, within `limits.memory`.
pub fn session(provider: &FloeCatalogProvider, reads: SessionAccess, limits: &Limits) -> datafusion::error::Result<SessionContext> {
    let runtime = RuntimeEnvBuilder::new().with_memory_limit(limits.memory, 1.0).build_arc()?;
    let ctx = SessionContext::new_with_config_rt(session_config(), runtime);
    ctx.register_catalog(CATALOG_NAME, Arc::new(provider.for_session(reads)));
    Ok(ctx)
}
