//! What every statement goes through before DataFusion runs it: the catalog listing is renewed
//! (so `pg_catalog` and `information_schema` show tables created since), and anything that is
//! not a read is refused: DDL, DML, `COPY … TO` a server path, `CREATE EXTERNAL TABLE`. The check
//! plans the statement as DataFusion will run it and asks DataFusion's own read-only rules.

use std::time::Duration;

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::QueryHook;
use floe_views::catalog_provider::{FloeCatalogProvider, CATALOG_NAME};
use pgwire::api::results::Response;
use pgwire::api::ClientInfo;
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use tracing::warn;

/// How stale a listing may be before a statement renews it.
const LISTING_MAX_AGE: Duration = Duration::from_secs(1);

/// Renews the catalog listing, then refuses statements that are not reads.
#[derive(Debug, Default)]
pub struct ReadOnlyFloe;

impl ReadOnlyFloe {
    /// `Some(error)` when `statement` must not run.
    async fn check(&self, statement: &Statement, ctx: &SessionContext) -> Option<PgWireError> {
        renew_listing(ctx).await;
        // Planned from its text, as the query handler will: DataFusion's own statements
        // (COPY … TO, CREATE EXTERNAL TABLE) are recognised only there.
        let plan = match ctx.state().create_logical_plan(&statement.to_string()).await {
            Ok(plan) => plan,
            // Not plannable: the handler reports DataFusion's error itself.
            Err(_) => return None,
        };
        let refusal = floe_views::read_only().verify_plan(&plan).err()?;
        Some(PgWireError::UserError(Box::new(ErrorInfo::new(
            "ERROR".into(),
            "42501".into(),
            format!("floe's SQL endpoint is read-only: {}", refusal.strip_backtrace()),
        ))))
    }
}

/// Renews the listing of the session's floe catalog if it is more than a second old.
pub async fn renew_listing(ctx: &SessionContext) {
    let Some(catalog) = ctx.catalog(CATALOG_NAME) else { return };
    let Some(floe) = catalog.as_any().downcast_ref::<FloeCatalogProvider>() else { return };
    if let Err(e) = floe.refresh_if_older_than(LISTING_MAX_AGE).await {
        warn!(error = %e, "could not list the catalog; listings may be stale");
    }
}

#[async_trait]
impl QueryHook for ReadOnlyFloe {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        self.check(statement, ctx).await.map(Err)
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        self.check(statement, ctx).await.map(Err)
    }

    async fn handle_extended_query(
        &self,
        _statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        // Checked when it was parsed.
        None
    }
}
