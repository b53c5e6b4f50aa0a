//! The HTTP endpoint, for scripts and services:
//!
//! - `POST /sql` with the query as the body; the result as JSON (an array of objects, the
//!   default), NDJSON, CSV, Arrow IPC (stream) or Parquet, chosen by `Accept`;
//! - `GET /tables`: the tables and views the user may read; `GET /tables/{schema.name}/schema`:
//!   one's columns;
//! - `GET /health` (no authentication) and `GET /metrics` (Prometheus, when the process has an
//!   exporter);
//! - `/iceberg/v1/…`: the Iceberg REST catalog API ([`crate::iceberg_rest`]).
//!
//! Users authenticate with HTTP basic authentication against the same `[[users]]` and read what
//! the same grants give them. Every query runs read-only, within the memory limit and the
//! timeout, and at most `max_concurrent_queries` at once (503 beyond).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use arrow::record_batch::RecordBatch;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;
use floe_views::access::SessionAccess;
use floe_views::catalog_provider::FloeCatalogProvider;
use floe_views::OutputFormat;
use tokio::net::TcpListener;
use tracing::info;

use crate::deadline::timed_out;
use crate::hooks::renew_listing;
use crate::iceberg_rest::CatalogService;
use crate::session::{listing, plan_read, session, Access, Limits, Serving, Unplanned};
use crate::tls::TlsListener;

/// Renders the process's Prometheus metrics.
pub type MetricsText = Arc<dyn Fn() -> String + Send + Sync>;

#[derive(Clone)]
struct Endpoint {
    provider: Arc<FloeCatalogProvider>,
    access: Access,
    limits: Limits,
    metrics: Option<MetricsText>,
    catalog_service: CatalogService,
}

/// The Iceberg REST catalog over the endpoint's catalog, users and grants.
fn rest_catalog(endpoint: &Endpoint) -> Router {
    let catalog = endpoint.provider.catalog().clone();
    crate::iceberg_rest::router(catalog, endpoint.access.clone(), endpoint.catalog_service.clone())
}

/// A bound listener: TLS when configured.
enum Listening {
    Plain(TcpListener),
    Tls(TlsListener),
}

/// A bound, not yet serving, HTTP endpoint.
pub struct HttpEndpoint {
    listener: Listening,
    endpoint: Endpoint,
}

impl HttpEndpoint {
    /// Binds `addr` (port 0: any free port, see [`local_addr`](Self::local_addr)).
    pub async fn bind(addr: SocketAddr, serving: Serving, metrics: Option<MetricsText>) -> std::io::Result<Self> {
        serving.warn_if_exposed(addr, "HTTP", "passwords and results");
        let tcp = TcpListener::bind(addr).await?;
        let listener = match &serving.tls {
            Some(tls) => Listening::Tls(TlsListener::new(tcp, tls)?),
            None => Listening::Plain(tcp),
        };
        let Serving { provider, access, limits, catalog_service, .. } = serving;
        Ok(Self { listener, endpoint: Endpoint { provider, access, limits, metrics, catalog_service } })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match &self.listener {
            Listening::Plain(tcp) => tcp.local_addr(),
            Listening::Tls(tls) => axum::serve::Listener::local_addr(tls),
        }
    }

    /// Serves until `shutdown` completes.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let router = Router::new()
            .route("/health", get(|| async { "ok\n" }))
            .route("/metrics", get(metrics))
            .route("/sql", post(sql))
            .route("/tables", get(tables))
            .route("/tables/{name}/schema", get(table_schema))
            .with_state(self.endpoint.clone())
            .nest("/iceberg", rest_catalog(&self.endpoint));
        match self.listener {
            Listening::Plain(tcp) => axum::serve(tcp, router).with_graceful_shutdown(shutdown).await?,
            Listening::Tls(tls) => axum::serve(tls, router).with_graceful_shutdown(shutdown).await?,
        }
        info!("HTTP endpoint stopped");
        Ok(())
    }
}

/// An error answer: a status and a JSON body `{"error": "…"}`.
struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.1 }).to_string();
        let mut response = (self.0, [(header::CONTENT_TYPE, "application/json")], body).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, "Basic realm=\"floe\"".parse().expect("a header value"));
        }
        response
    }
}

impl Endpoint {
    /// The session of an authenticated request.
    async fn session_for(&self, headers: &HeaderMap) -> Result<SessionContext, Failure> {
        let reads = self.authenticate(headers)?;
        let ctx =
            session("http", &self.provider, reads, &self.limits).map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        renew_listing(&ctx).await;
        Ok(ctx)
    }

    fn authenticate(&self, headers: &HeaderMap) -> Result<SessionAccess, Failure> {
        self.access.authenticate(crate::auth::authorization(headers), None).ok_or_else(|| {
            Failure(StatusCode::UNAUTHORIZED, "authentication failed: send a [[users]] name and password (HTTP basic)".into())
        })
    }
}

/// The status a query error deserves.
fn failed_query(e: DataFusionError) -> Failure {
    let message = e.strip_backtrace();
    let status = if message.contains("permission denied") {
        StatusCode::FORBIDDEN
    } else if timed_out(&e) {
        StatusCode::REQUEST_TIMEOUT
    } else if matches!(e.find_root(), DataFusionError::ResourcesExhausted(_)) {
        StatusCode::INSUFFICIENT_STORAGE
    } else {
        StatusCode::BAD_REQUEST
    };
    Failure(status, message)
}

async fn sql(State(endpoint): State<Endpoint>, headers: HeaderMap, query: String) -> Response {
    let started = Instant::now();
    let answer = run_sql(&endpoint, &headers, &query).await;
    let outcome = match &answer {
        Ok(_) => "ok",
        Err(Failure(status, _)) if status.is_client_error() => "refused",
        Err(_) => "failed",
    };
    metrics::counter!("floe_sql_queries_total", "endpoint" => "http", "outcome" => outcome).increment(1);
    metrics::histogram!("floe_sql_query_seconds", "endpoint" => "http").record(started.elapsed().as_secs_f64());
    match answer {
        Ok(response) => response,
        Err(failure) => failure.into_response(),
    }
}

async fn run_sql(endpoint: &Endpoint, headers: &HeaderMap, query: &str) -> Result<Response, Failure> {
    let ctx = endpoint.session_for(headers).await?;
    let Ok(_running) = endpoint.limits.concurrent.clone().try_acquire_owned() else {
        return Err(Failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many queries at once ([server] max_concurrent_queries); try again".into(),
        ));
    };
    let plan = plan_read(&ctx, query).await.map_err(|unplanned| match unplanned {
        Unplanned::Failed(e) => failed_query(e),
        not_a_read => Failure(StatusCode::FORBIDDEN, not_a_read.to_string()),
    })?;
    let batches = ctx.execute_logical_plan(plan).await.map_err(failed_query)?.collect().await.map_err(failed_query)?;
    let (content_type, body) = render(&batches, headers).map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    metrics::counter!("floe_sql_bytes_total", "endpoint" => "http").increment(body.len() as u64);
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";
const PARQUET: &str = "application/vnd.apache.parquet";

/// `batches` in the format `Accept` asks for: its content type and bytes.
fn render(batches: &[RecordBatch], headers: &HeaderMap) -> Result<(&'static str, Vec<u8>), String> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let text = |format| floe_views::render(batches, format).map(String::into_bytes).map_err(|e| e.to_string());
    if accept.contains(ARROW_STREAM) {
        return Ok((ARROW_STREAM, arrow_stream(batches).map_err(|e| e.to_string())?));
    }
    if accept.contains(PARQUET) || accept.contains("application/x-parquet") {
        return Ok((PARQUET, parquet_file(batches).map_err(|e| e.to_string())?));
    }
    if accept.contains("text/csv") {
        return Ok(("text/csv", text(OutputFormat::Csv)?));
    }
    if accept.contains("application/x-ndjson") {
        return Ok(("application/x-ndjson", text(OutputFormat::Ndjson)?));
    }
    Ok(("application/json", text(OutputFormat::Json)?))
}

fn schema_of(batches: &[RecordBatch]) -> arrow::datatypes::SchemaRef {
    batches.first().map(RecordBatch::schema).unwrap_or_else(|| Arc::new(arrow::datatypes::Schema::empty()))
}

fn arrow_stream(batches: &[RecordBatch]) -> arrow::error::Result<Vec<u8>> {
    let mut writer = arrow::ipc::writer::StreamWriter::try_new(Vec::new(), &schema_of(batches))?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.into_inner()
}

fn parquet_file(batches: &[RecordBatch]) -> parquet::errors::Result<Vec<u8>> {
    let mut writer = parquet::arrow::ArrowWriter::try_new(Vec::new(), schema_of(batches), None)?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.into_inner()
}

async fn tables(State(endpoint): State<Endpoint>, headers: HeaderMap) -> Result<Response, Failure> {
    let ctx = endpoint.session_for(&headers).await?;
    let listed: Vec<_> = listing(&ctx)
        .into_iter()
        .map(|l| serde_json::json!({"schema": l.schema, "name": l.name, "type": if l.is_view { "view" } else { "table" }}))
        .collect();
    Ok(axum::Json(listed).into_response())
}

async fn table_schema(State(endpoint): State<Endpoint>, headers: HeaderMap, Path(name): Path<String>) -> Result<Response, Failure> {
    let ctx = endpoint.session_for(&headers).await?;
    let table = ctx.table(name.as_str()).await.map_err(|e| match failed_query(e) {
        Failure(StatusCode::BAD_REQUEST, message) => Failure(StatusCode::NOT_FOUND, message),
        other => other,
    })?;
    let fields: Vec<_> = table
        .schema()
        .fields()
        .iter()
        .map(|f| serde_json::json!({"name": f.name(), "type": f.data_type().to_string(), "nullable": f.is_nullable()}))
        .collect();
    Ok(axum::Json(serde_json::json!({"table": name, "columns": fields})).into_response())
}

async fn metrics(State(endpoint): State<Endpoint>) -> Response {
    match &endpoint.metrics {
        Some(render) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], render()).into_response(),
        None => Failure(StatusCode::NOT_FOUND, "this process exports no metrics".into()).into_response(),
    }
}
