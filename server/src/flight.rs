//! The Arrow Flight SQL endpoint, for programs that want Arrow rather than rows: the ADBC Flight
//! SQL driver (Python, Go, Java, R), JDBC's Flight SQL driver, DBeaver through it.
//!
//! - **Authentication.** A handshake with HTTP basic credentials (a `[[users]]` name and
//!   password) returns a bearer token, which later calls send; basic credentials are accepted on
//!   every call too. Tokens live in the server's memory for [`crate::auth::TOKEN_LIFETIME`].
//! - **Queries.** Statements and prepared statements (with `$1` or `?` parameters), planned as
//!   reads in a session of their own under the user's grants, and streamed batch by batch within
//!   the memory limit, the timeout and the cap on concurrent queries. A statement's handle and
//!   ticket carry the SQL (and bound parameters) itself, so any call can be answered by any
//!   connection: nothing is kept between calls but tokens.
//! - **Listings.** Catalogs, schemas, tables (with their Arrow schemas on request) and table
//!   types, showing only what the user may read; `GetSqlInfo` says floe is read-only.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightServiceServer;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult, Any,
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandPreparedStatementQuery,
    CommandStatementQuery, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage, SchemaAsIpc, Ticket};
use datafusion::common::{ParamValues, ScalarValue, TableReference};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use floe_views::access::SessionAccess;
use floe_views::catalog_provider::{FloeCatalogProvider, CATALOG_NAME};
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use tokio::net::TcpListener;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};
use tracing::info;

use crate::auth::{basic_credentials, Tokens};
use crate::deadline::timed_out;
use crate::hooks::renew_listing;
use crate::session::{listing, plan_read, session, Access, Limits, Serving, Unplanned};
use crate::tls::Tls;

type DoGetStream = Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send>>;

/// A bound, not yet serving, Flight SQL endpoint.
pub struct FlightSqlEndpoint {
    listener: TcpListener,
    service: FloeFlightSql,
    tls: Option<Tls>,
}

impl FlightSqlEndpoint {
    /// Binds `addr` (port 0: any free port, see [`local_addr`](Self::local_addr)).
    pub async fn bind(addr: SocketAddr, serving: Serving) -> std::io::Result<Self> {
        serving.warn_if_exposed(addr, "Flight SQL", "passwords, tokens and results");
        let listener = TcpListener::bind(addr).await?;
        let Serving { provider, access, limits, tls, .. } = serving;
        let service = FloeFlightSql { provider, access, limits, tokens: Tokens::default() };
        Ok(Self { listener, service, tls })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), tonic::transport::Error> {
        let incoming = tonic::transport::server::TcpIncoming::from(self.listener);
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = &self.tls {
            builder = builder.tls_config(tls.tonic_config())?;
        }
        builder.add_service(FlightServiceServer::new(self.service)).serve_with_incoming_shutdown(incoming, shutdown).await?;
        info!("Flight SQL endpoint stopped");
        Ok(())
    }
}

#[derive(Clone)]
struct FloeFlightSql {
    provider: Arc<FloeCatalogProvider>,
    access: Access,
    limits: Limits,
    tokens: Tokens,
}

fn unauthenticated() -> Status {
    Status::unauthenticated(
        "authentication failed: send a [[users]] name and password (basic), or an unexpired bearer token from the handshake",
    )
}

impl FloeFlightSql {
    /// What the caller of `request` may read.
    fn authenticate<T>(&self, request: &Request<T>) -> Result<SessionAccess, Status> {
        let header = request.metadata().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
        self.access.authenticate(header, Some(&self.tokens)).ok_or_else(unauthenticated)
    }

    /// A session for the caller of `request`, with a current listing.
    async fn session_for<T>(&self, request: &Request<T>) -> Result<SessionContext, Status> {
        let reads = self.authenticate(request)?;
        let ctx = session("flight", &self.provider, reads, &self.limits).map_err(|e| Status::internal(e.to_string()))?;
        renew_listing(&ctx).await;
        Ok(ctx)
    }

    /// `statement` planned as a read in `ctx`, its parameters bound.
    async fn plan(&self, ctx: &SessionContext, statement: &Statement) -> Result<LogicalPlan, Status> {
        let plan = plan_read(ctx, &numbered_placeholders(&statement.sql)).await.map_err(|unplanned| match unplanned {
            Unplanned::Failed(e) => query_failed(e),
            not_a_read => Status::permission_denied(not_a_read.to_string()),
        })?;
        match &statement.parameters {
            Some(row) => bind(plan, row),
            None => Ok(plan),
        }
    }

    /// A FlightInfo whose one endpoint's ticket is `ticket`, for results of `schema`.
    fn info(schema: &Schema, ticket: Any, descriptor: FlightDescriptor) -> Result<Response<FlightInfo>, Status> {
        let endpoint = FlightEndpoint::new().with_ticket(Ticket::new(ticket.encode_to_vec()));
        let info = FlightInfo::new().try_with_schema(schema).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(info.with_endpoint(endpoint).with_descriptor(descriptor)))
    }

    /// Runs `statement` for the caller of `request` and streams its batches.
    async fn run<T>(&self, request: &Request<T>, statement: &Statement) -> Result<Response<DoGetStream>, Status> {
        let started = Instant::now();
        let answer = self.stream(request, statement).await;
        let outcome = if answer.is_ok() { "ok" } else { "refused" };
        metrics::counter!("floe_sql_queries_total", "endpoint" => "flight", "outcome" => outcome).increment(1);
        metrics::histogram!("floe_sql_query_seconds", "endpoint" => "flight").record(started.elapsed().as_secs_f64());
        answer
    }

    async fn stream<T>(&self, request: &Request<T>, statement: &Statement) -> Result<Response<DoGetStream>, Status> {
        let ctx = self.session_for(request).await?;
        let running = self
            .limits
            .concurrent
            .clone()
            .try_acquire_owned()
            .map_err(|_| Status::resource_exhausted("too many queries at once ([server] max_concurrent_queries); try again"))?;
        let plan = self.plan(&ctx, statement).await?;
        let batches = ctx.execute_logical_plan(plan).await.map_err(query_failed)?.execute_stream().await.map_err(query_failed)?;
        let schema = batches.schema();
        // The slot goes with the stream, until it ends or the timeout passes: a client that
        // stops reading does not hold it longer.
        let slot = QuerySlot::hold(running, self.limits.timeout);
        let batches = batches.map(move |batch| {
            let _slot = &slot;
            batch.map_err(|e| FlightError::Tonic(Box::new(query_failed(e))))
        });
        let encoded = FlightDataEncoderBuilder::new().with_schema(schema).build(batches).map_err(Status::from);
        Ok(Response::new(Box::pin(encoded)))
    }
}

/// A place among `max_concurrent_queries`, given back when its stream is dropped or `timeout`
/// has passed, whichever comes first.
struct QuerySlot(Arc<std::sync::Mutex<Option<tokio::sync::OwnedSemaphorePermit>>>);

impl QuerySlot {
    fn hold(permit: tokio::sync::OwnedSemaphorePermit, timeout: std::time::Duration) -> Self {
        let slot = Arc::new(std::sync::Mutex::new(Some(permit)));
        let expiring = Arc::downgrade(&slot);
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            if let Some(slot) = expiring.upgrade() {
                slot.lock().expect("slot lock").take();
            }
        });
        Self(slot)
    }
}

impl Drop for QuerySlot {
    fn drop(&mut self) {
        self.0.lock().expect("slot lock").take();
    }
}

/// The status a query error deserves.
fn query_failed(e: DataFusionError) -> Status {
    let message = e.strip_backtrace();
    if message.contains("permission denied") {
        Status::permission_denied(message)
    } else if timed_out(&e) {
        Status::deadline_exceeded(message)
    } else if matches!(e.find_root(), DataFusionError::ResourcesExhausted(_)) {
        Status::resource_exhausted(message)
    } else {
        Status::invalid_argument(message)
    }
}

/// What a statement handle or ticket holds: the SQL, and the parameters bound to it (one row).
/// Encoded as the SQL's length (u32, little-endian), the SQL, then the parameters as an Arrow
/// IPC stream.
#[derive(Debug, Clone)]
struct Statement {
    sql: String,
    parameters: Option<RecordBatch>,
}

impl Statement {
    fn new(sql: String) -> Self {
        Self { sql, parameters: None }
    }

    fn encode(&self) -> Result<Vec<u8>, Status> {
        let mut bytes = (self.sql.len() as u32).to_le_bytes().to_vec();
        bytes.extend_from_slice(self.sql.as_bytes());
        if let Some(row) = &self.parameters {
            let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut bytes, &row.schema()).map_err(arrow_failed)?;
            writer.write(row).map_err(arrow_failed)?;
            writer.finish().map_err(arrow_failed)?;
        }
        Ok(bytes)
    }

    fn decode(bytes: &[u8]) -> Result<Self, Status> {
        let invalid = || Status::invalid_argument("not a statement handle of this server");
        let length = u32::from_le_bytes(bytes.get(..4).ok_or_else(invalid)?.try_into().map_err(|_| invalid())?) as usize;
        let sql = std::str::from_utf8(bytes.get(4..4 + length).ok_or_else(invalid)?).map_err(|_| invalid())?;
        let rest = &bytes[4 + length..];
        let parameters = if rest.is_empty() {
            None
        } else {
            let mut reader = arrow::ipc::reader::StreamReader::try_new(rest, None).map_err(arrow_failed)?;
            let row = reader.next().transpose().map_err(arrow_failed)?;
            // One execution's parameters are one row; a handle with other is not this server's.
            Some(row.filter(|r| r.num_rows() == 1).ok_or_else(invalid)?)
        };
        Ok(Self { sql: sql.to_string(), parameters })
    }
}

fn arrow_failed(e: arrow::error::ArrowError) -> Status {
    Status::internal(e.to_string())
}

/// `sql` with each `?` placeholder (JDBC's and ODBC's) numbered `$1`, `$2` … in order, as
/// DataFusion takes them. Text that does not parse is left for the planner to report.
fn numbered_placeholders(sql: &str) -> String {
    use datafusion::sql::sqlparser::ast::{visit_expressions_mut, Expr, Value};
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    use std::ops::ControlFlow;
    if !sql.contains('?') {
        return sql.to_string();
    }
    let Ok(mut statements) = Parser::parse_sql(&GenericDialect {}, sql) else { return sql.to_string() };
    let mut next = 0;
    let _ = visit_expressions_mut(&mut statements, |expr| {
        if let Expr::Value(value) = expr {
            if matches!(&value.value, Value::Placeholder(p) if p == "?") {
                next += 1;
                value.value = Value::Placeholder(format!("${next}"));
            }
        }
        ControlFlow::<()>::Continue(())
    });
    if next == 0 {
        return sql.to_string();
    }
    statements.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// `plan` with `row`'s values as `$1`, `$2` …, each cast to the type the plan expects there
/// (drivers send what their language has: Python's int is an Int64 whatever the column is).
fn bind(plan: LogicalPlan, row: &RecordBatch) -> Result<LogicalPlan, Status> {
    let expected = plan.get_parameter_types().map_err(query_failed)?;
    let mut values = vec![];
    for (i, column) in row.columns().iter().enumerate() {
        let value = ScalarValue::try_from_array(column, 0).map_err(query_failed)?;
        let value = match expected.get(&format!("${}", i + 1)) {
            Some(Some(data_type)) if value.data_type() != *data_type => value.cast_to(data_type).map_err(query_failed)?,
            _ => value,
        };
        values.push(value);
    }
    plan.with_param_values(ParamValues::from(values)).map_err(query_failed)
}

/// The parameters `plan` takes, as the schema of the row a client binds: `$1`, `$2` … in order,
/// typed where DataFusion can tell (else Utf8, a client's safest choice).
fn parameter_schema(plan: &LogicalPlan) -> Result<Schema, Status> {
    let types = plan.get_parameter_types().map_err(query_failed)?;
    let mut names: Vec<&String> = types.keys().collect();
    names.sort_by_key(|name| name.trim_start_matches('$').parse::<usize>().unwrap_or(usize::MAX));
    let fields = names.into_iter().map(|name| Field::new(name, types[name].clone().unwrap_or(DataType::Utf8), true));
    Ok(Schema::new(fields.collect::<Vec<_>>()))
}

fn schema_bytes(schema: &Schema) -> Result<prost::bytes::Bytes, Status> {
    let options = arrow::ipc::writer::IpcWriteOptions::default();
    let IpcMessage(bytes) = SchemaAsIpc::new(schema, &options).try_into().map_err(arrow_failed)?;
    Ok(bytes)
}

/// What `GetSqlInfo` answers.
fn sql_info() -> SqlInfoData {
    let mut builder = SqlInfoDataBuilder::new();
    builder.append(SqlInfo::FlightSqlServerName, "floe");
    builder.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    builder.append(SqlInfo::FlightSqlServerArrowVersion, arrow::ARROW_VERSION);
    builder.append(SqlInfo::FlightSqlServerReadOnly, true);
    builder.append(SqlInfo::FlightSqlServerSql, true);
    builder.append(SqlInfo::FlightSqlServerSubstrait, false);
    builder.append(SqlInfo::FlightSqlServerTransaction, 0_i32);
    builder.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    builder.build().expect("a valid SqlInfo table")
}

/// One batch as a Flight stream.
fn one_batch(batch: Result<RecordBatch, FlightError>, schema: SchemaRef) -> Response<DoGetStream> {
    let stream = FlightDataEncoderBuilder::new().with_schema(schema).build(futures::stream::once(async { batch })).map_err(Status::from);
    Response::new(Box::pin(stream))
}

#[tonic::async_trait]
impl FlightSqlService for FloeFlightSql {
    type FlightService = FloeFlightSql;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>, Status> {
        let header = request.metadata().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
        self.access.authenticate(header, None).ok_or_else(unauthenticated)?;
        // With anonymous access, a handshake without credentials gets a token too.
        let user = basic_credentials(header).map_or_else(|| "anonymous".to_string(), |(user, _)| user);
        let token = self.tokens.issue(&user);
        let answer = HandshakeResponse { protocol_version: 0, payload: token.clone().into() };
        let mut response: Response<Pin<Box<dyn Stream<Item = _> + Send>>> = Response::new(Box::pin(futures::stream::iter([Ok(answer)])));
        let bearer = MetadataValue::try_from(format!("Bearer {token}")).map_err(|e| Status::internal(e.to_string()))?;
        response.metadata_mut().insert("authorization", bearer);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let ctx = self.session_for(&request).await?;
        let statement = Statement::new(query.query);
        let plan = self.plan(&ctx, &statement).await?;
        let ticket = TicketStatementQuery { statement_handle: statement.encode()?.into() };
        Self::info(plan.schema().as_arrow(), ticket.as_any(), request.into_inner())
    }

    async fn do_get_statement(&self, ticket: TicketStatementQuery, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        self.run(&request, &Statement::decode(&ticket.statement_handle)?).await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let ctx = self.session_for(&request).await?;
        let statement = Statement::new(query.query);
        let plan = self.plan(&ctx, &statement).await?;
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: statement.encode()?.into(),
            dataset_schema: schema_bytes(plan.schema().as_arrow())?,
            parameter_schema: schema_bytes(&parameter_schema(&plan)?)?,
        })
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        self.authenticate(&request)?;
        let mut statement = Statement::decode(&query.prepared_statement_handle)?;
        let data = request.into_inner().map_err(|status| FlightError::Tonic(Box::new(status)));
        let batches: Vec<RecordBatch> = FlightRecordBatchStream::new_from_flight_data(data).try_collect().await.map_err(Status::from)?;
        // One execution's parameters: the first row bound (drivers send one row per execute).
        statement.parameters = batches.into_iter().find(|b| b.num_rows() > 0).map(|b| b.slice(0, 1));
        Ok(DoPutPreparedStatementResult { prepared_statement_handle: Some(statement.encode()?.into()) })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let ctx = self.session_for(&request).await?;
        let plan = self.plan(&ctx, &Statement::decode(&query.prepared_statement_handle)?).await?;
        Self::info(plan.schema().as_arrow(), query.as_any(), request.into_inner())
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.run(&request, &Statement::decode(&query.prepared_statement_handle)?).await
    }

    async fn do_action_close_prepared_statement(
        &self,
        _query: ActionClosePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<(), Status> {
        // Nothing is kept for a prepared statement: its handle holds all of it.
        self.authenticate(&request).map(|_| ())
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authenticate(&request)?;
        Self::info(&query.into_builder().schema(), query.as_any(), request.into_inner())
    }

    async fn do_get_catalogs(&self, query: CommandGetCatalogs, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        self.authenticate(&request)?;
        let mut builder = query.into_builder();
        builder.append(CATALOG_NAME);
        let schema = builder.schema();
        Ok(one_batch(builder.build(), schema))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authenticate(&request)?;
        Self::info(&query.clone().into_builder().schema(), query.as_any(), request.into_inner())
    }

    async fn do_get_schemas(&self, query: CommandGetDbSchemas, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        let ctx = self.session_for(&request).await?;
        let mut builder = query.into_builder();
        let mut schemas: Vec<String> = listing(&ctx).into_iter().map(|l| l.schema).collect();
        schemas.dedup();
        for schema in schemas {
            builder.append(CATALOG_NAME, schema);
        }
        let schema = builder.schema();
        Ok(one_batch(builder.build(), schema))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authenticate(&request)?;
        Self::info(&query.clone().into_builder().schema(), query.as_any(), request.into_inner())
    }

    async fn do_get_tables(&self, query: CommandGetTables, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        let ctx = self.session_for(&request).await?;
        let mut builder = query.into_builder();
        for listed in listing(&ctx) {
            let columns = match builder.include_schema() {
                true => ctx
                    .table(TableReference::partial(listed.schema.as_str(), listed.name.as_str()))
                    .await
                    .map_err(query_failed)?
                    .schema()
                    .as_arrow()
                    .clone(),
                false => Schema::empty(),
            };
            let kind = if listed.is_view { "VIEW" } else { "TABLE" };
            builder.append(CATALOG_NAME, &listed.schema, &listed.name, kind, &columns).map_err(Status::from)?;
        }
        let schema = builder.schema();
        Ok(one_batch(builder.build(), schema))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authenticate(&request)?;
        Self::info(&query.into_builder().schema(), query.as_any(), request.into_inner())
    }

    async fn do_get_table_types(&self, query: CommandGetTableTypes, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        self.authenticate(&request)?;
        let mut builder = query.into_builder();
        builder.append("TABLE");
        builder.append("VIEW");
        let schema = builder.schema();
        Ok(one_batch(builder.build(), schema))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authenticate(&request)?;
        let info = sql_info();
        Self::info(&query.clone().into_builder(&info).schema(), query.as_any(), request.into_inner())
    }

    async fn do_get_sql_info(&self, query: CommandGetSqlInfo, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        self.authenticate(&request)?;
        let info = sql_info();
        let builder = query.into_builder(&info);
        let schema = builder.schema();
        Ok(one_batch(builder.build(), schema))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn question_marks_become_numbered_placeholders_in_order_and_strings_keep_theirs() {
        let sql = "SELECT a FROM t WHERE a = ? AND b > ? AND c = 'what?'";
        assert_eq!(numbered_placeholders(sql), "SELECT a FROM t WHERE a = $1 AND b > $2 AND c = 'what?'");
        assert_eq!(numbered_placeholders("SELECT 'why?'"), "SELECT 'why?'");
    }

    #[test]
    fn a_statement_handle_carries_its_sql_and_bound_parameters() {
        let row = RecordBatch::try_from_iter([("$1", Arc::new(arrow::array::Int64Array::from(vec![7])) as _)]).unwrap();
        let bound = Statement { sql: "SELECT $1".into(), parameters: Some(row.clone()) };
        let decoded = Statement::decode(&bound.encode().unwrap()).unwrap();
        assert_eq!((decoded.sql.as_str(), decoded.parameters), ("SELECT $1", Some(row)));
        assert!(Statement::decode(b"\xff\xff\xff\xffx").is_err(), "a truncated handle is refused");
    }
}
