//! What every statement goes through before DataFusion runs it: the catalog listing is renewed
//! (so `pg_catalog` and `information_schema` show tables created since), and anything that is
//! not a read is refused: DDL, DML, `COPY … TO` a server path, `CREATE EXTERNAL TABLE`. The check
//! plans the statement as DataFusion will run it and asks DataFusion's own read-only rules.
//!
//! PostgreSQL spellings DataFusion does not take are rewritten first ([`crate::pg_rewrite`]).
//!
//! Savepoints, which drivers set around their own queries (psycopg's nested transactions, which
//! SQLAlchemy uses), are accepted and do nothing: a reader has nothing to roll back.

use std::time::Duration;

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::QueryHook;
use floe_views::catalog_provider::{FloeCatalogProvider, CATALOG_NAME};
use pgwire::api::results::{Response, Tag};
use pgwire::api::ClientInfo;
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use tracing::warn;

use crate::pg_rewrite;
use crate::session::{plan_read, Unplanned};

/// How stale a listing may be before a statement renews it.
const LISTING_MAX_AGE: Duration = Duration::from_secs(1);

/// Renews the catalog listing, rewrites what DataFusion would misread, then refuses statements
/// that are not reads.
#[derive(Debug, Default)]
pub struct ReadOnlyFloe;

/// What to do with a statement.
enum Verdict {
    /// Let the handler run it as it is.
    AsItIs,
    /// Run this plan instead (of the rewritten statement).
    Rewritten(Box<LogicalPlan>),
    Refused(PgWireError),
}

impl ReadOnlyFloe {
    async fn judge(&self, statement: &Statement, ctx: &SessionContext) -> Verdict {
        renew_listing(ctx).await;
        let rewritten = pg_rewrite::for_datafusion(statement);
        // Planned from its text, as the query handler will: DataFusion's own statements
        // (COPY … TO, CREATE EXTERNAL TABLE) are recognised only there.
        let text = rewritten.as_ref().unwrap_or(statement).to_string();
        let plan = match plan_read(ctx, &text).await {
            Ok(plan) => plan,
            Err(Unplanned::Failed(e)) => {
                tracing::debug!(statement = %text, error = %e, "not plannable");
                // The handler runs the original then, so it must pass the read-only check too.
                if rewritten.is_some() {
                    if let Err(refusal @ Unplanned::NotARead(_)) = plan_read(ctx, &statement.to_string()).await {
                        return refused(refusal);
                    }
                }
                // Not plannable: the handler reports DataFusion's error itself.
                return Verdict::AsItIs;
            }
            Err(refusal) => return refused(refusal),
        };
        match rewritten {
            Some(_) => {
                tracing::debug!(statement = %text, "rewritten for DataFusion");
                Verdict::Rewritten(Box::new(plan))
            }
            None => Verdict::AsItIs,
        }
    }
}

/// A statement refused as not a read, with SQLSTATE 42501 (insufficient privilege).
fn refused(refusal: Unplanned) -> Verdict {
    let info = ErrorInfo::new("ERROR".into(), "42501".into(), refusal.to_string());
    Verdict::Refused(PgWireError::UserError(Box::new(info)))
}

/// Runs `plan` and answers with its rows, as the simple query handler would.
async fn run(plan: LogicalPlan, ctx: &SessionContext, client: &mut dyn HookClient) -> PgWireResult<Response> {
    use pgwire::api::portal::Format;
    use pgwire::types::format::FormatOptions;
    let dataframe = ctx.execute_logical_plan(plan).await.map_err(|e| PgWireError::ApiError(Box::new(e)))?;
    let options = std::sync::Arc::new(FormatOptions::from_client_metadata(client.metadata()));
    let rows = datafusion_postgres::arrow_pg::datatypes::df::encode_dataframe(dataframe, &Format::UnifiedText, Some(options)).await?;
    Ok(Response::Query(rows))
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
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        let verdict = self.judge(statement, ctx).await;
        count_query(if matches!(verdict, Verdict::Refused(_)) { "refused" } else { "ok" });
        match verdict {
            Verdict::AsItIs => None,
            Verdict::Refused(error) => Some(Err(error)),
            Verdict::Rewritten(plan) => Some(run(*plan, ctx, client).await),
        }
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        match self.judge(statement, ctx).await {
            Verdict::AsItIs => None,
            Verdict::Refused(error) => Some(Err(error)),
            // The handler binds the parameters into this plan and runs it.
            Verdict::Rewritten(plan) => Some(Ok(*plan)),
        }
    }

    async fn handle_extended_query(
        &self,
        _statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        // Checked when it was parsed; counted as it runs.
        count_query("ok");
        None
    }
}

/// One more Postgres wire statement in `floe_sql_queries_total` (its rows are counted as they
/// stream, by [`crate::deadline`]).
pub fn count_query(outcome: &'static str) {
    metrics::counter!("floe_sql_queries_total", "endpoint" => "pg", "outcome" => outcome).increment(1);
}

/// Accepts `SAVEPOINT` and `RELEASE SAVEPOINT`; a read-only session has nothing to keep.
#[derive(Debug, Default)]
pub struct Savepoints;

impl Savepoints {
    fn tag(statement: &Statement) -> Option<Tag> {
        match statement {
            Statement::Savepoint { .. } => Some(Tag::new("SAVEPOINT")),
            Statement::ReleaseSavepoint { .. } => Some(Tag::new("RELEASE")),
            _ => None,
        }
    }
}

#[async_trait]
impl QueryHook for Savepoints {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _: &SessionContext,
        _: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        Self::tag(statement).map(|tag| Ok(Response::Execution(tag)))
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _: &SessionContext,
        _: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        let empty = datafusion::logical_expr::EmptyRelation {
            produce_one_row: false,
            schema: std::sync::Arc::new(datafusion::common::DFSchema::empty()),
        };
        Self::tag(statement).map(|_| Ok(LogicalPlan::EmptyRelation(empty)))
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _: &LogicalPlan,
        _: &ParamValues,
        _: &SessionContext,
        _: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        Self::tag(statement).map(|tag| Ok(Response::Execution(tag)))
    }
}
