//! floe's catalog over the Iceberg REST catalog API, for engines that read Iceberg themselves
//! (PyIceberg, Spark, Trino, DuckDB's iceberg extension), under `/iceberg` on the HTTP endpoint:
//! `RestCatalog(uri="http://host:8433/iceberg", credential="user:password")`.
//!
//! - `POST /v1/oauth/tokens` (client credentials: a `[[users]]` name and password) returns a
//!   bearer token; basic authentication works on every call too.
//! - Reads: `GET /v1/config`, `GET /v1/namespaces`, `GET /v1/namespaces/{ns}`,
//!   `GET /v1/namespaces/{ns}/tables`, `GET` and `HEAD /v1/namespaces/{ns}/tables/{table}`.
//!   The engines read the files themselves, so only a user granted whole tables may list and
//!   load them; a grant of some columns gives nothing here.
//! - Writes ([`writes`]): create and drop namespaces, create, commit to, rename and drop tables,
//!   and commit to several tables at once (`POST /v1/transactions/commit`, all or none), for
//!   users with a `write = true` grant. A commit goes through floe's commit layer, the same
//!   compare-and-swap as floe's own sink and compactor. `[server] catalog_read_only` refuses
//!   them all (405).
//! - `loadTable` and `createTable` carry storage credentials for clients that ask for them, when
//!   `[server.vended_credentials]` configures some ([`vending`]).
//! - `GET /v1/config?warehouse=…` names floe's one warehouse (its location) or is refused.

use std::sync::Arc;

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use floe_catalog::iceberg::{NamespaceIdent, TableIdent};
use floe_catalog::{Catalog, CatalogError, FloeTable};
use floe_views::access::{Columns, SessionAccess};
use serde::Deserialize;
use serde_json::json;

use crate::auth::{authorization, Tokens};
use crate::session::{Access, Caller};

mod vending;
mod writes;

pub use vending::VendedCredentials;

/// How floe's REST catalog serves: whether it takes writes, and the storage keys it vends.
#[derive(Debug, Clone, Default)]
pub struct CatalogService {
    /// Refuse every write, whatever the grants say (`[server] catalog_read_only`).
    pub read_only: bool,
    /// `[server.vended_credentials]`.
    pub vended: VendedCredentials,
}

#[derive(Clone)]
struct Rest {
    catalog: Arc<dyn Catalog>,
    access: Access,
    tokens: Tokens,
    service: CatalogService,
}

/// The REST catalog's routes, to nest under a prefix.
pub fn router(catalog: Arc<dyn Catalog>, access: Access, service: CatalogService) -> Router {
    let rest = Rest { catalog, access, tokens: Tokens::default(), service };
    Router::new()
        .route("/v1/oauth/tokens", post(token))
        .route("/v1/config", get(config))
        .route("/v1/namespaces", get(namespaces).post(writes::create_namespace))
        .route("/v1/namespaces/{namespace}", get(namespace).delete(writes::drop_namespace))
        .route("/v1/namespaces/{namespace}/tables", get(tables).post(writes::create_table))
        .route(
            "/v1/namespaces/{namespace}/tables/{table}",
            get(load_table).head(table_exists).post(writes::commit_table).delete(writes::drop_table),
        )
        .route("/v1/tables/rename", post(writes::rename_table))
        .route("/v1/transactions/commit", post(writes::commit_transaction))
        .with_state(rest)
}

/// An error, answered as the REST spec shapes it.
struct Refusal {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = json!({"error": {"message": self.message, "type": self.kind, "code": self.status.as_u16()}});
        (self.status, Json(body)).into_response()
    }
}

fn refusal(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Refusal {
    Refusal { status, kind, message: message.into() }
}

fn unauthorized() -> Refusal {
    refusal(
        StatusCode::UNAUTHORIZED,
        "NotAuthorizedException",
        "send a bearer token from /v1/oauth/tokens, or a [[users]] name and password",
    )
}

fn internal(e: CatalogError) -> Refusal {
    refusal(StatusCode::INTERNAL_SERVER_ERROR, "ServiceFailureException", e.to_string())
}

/// A catalog error as the REST spec names it.
fn refused(e: CatalogError) -> Refusal {
    use floe_catalog::iceberg::ErrorKind;
    let (status, kind) = match &e {
        CatalogError::TableNotFound(_) => (StatusCode::NOT_FOUND, "NoSuchTableException"),
        CatalogError::NamespaceNotFound(_) => (StatusCode::NOT_FOUND, "NoSuchNamespaceException"),
        CatalogError::TableAlreadyExists(_) | CatalogError::NamespaceAlreadyExists(_) => (StatusCode::CONFLICT, "AlreadyExistsException"),
        CatalogError::NamespaceNotEmpty(_) => (StatusCode::CONFLICT, "NamespaceNotEmptyException"),
        CatalogError::Conflict { .. } => (StatusCode::CONFLICT, "CommitFailedException"),
        CatalogError::Invalid(_) | CatalogError::InvalidSchemaChange(_) => (StatusCode::BAD_REQUEST, "BadRequestException"),
        CatalogError::Iceberg(e) if matches!(e.kind(), ErrorKind::DataInvalid | ErrorKind::FeatureUnsupported) => {
            (StatusCode::BAD_REQUEST, "BadRequestException")
        }
        _ => return internal(e),
    };
    refusal(status, kind, e.to_string())
}

type Answer = Result<Response, Refusal>;

impl Rest {
    /// What the caller may read, from a bearer token or basic credentials.
    fn caller(&self, headers: &HeaderMap) -> Result<Caller, Refusal> {
        self.access.caller(authorization(headers), Some(&self.tokens)).ok_or_else(unauthorized)
    }

    /// Whether `caller`'s grants let them write `namespace` (with `table`, that table of it).
    fn writes(&self, caller: &Caller, namespace: &NamespaceIdent, table: Option<&str>) -> bool {
        self.access.writes(caller, &namespace.join("."), table)
    }

    /// Whether `caller` sees `namespace`: it holds a table they may load, or they may write it.
    async fn visible(&self, caller: &Caller, namespace: &NamespaceIdent) -> Result<bool, Refusal> {
        if self.writes(caller, namespace, None) {
            return Ok(true);
        }
        Ok(!self.loadable(&caller.reads, namespace).await?.is_empty())
    }

    /// The tables of `namespace` the caller may load.
    async fn loadable(&self, reads: &SessionAccess, namespace: &NamespaceIdent) -> Result<Vec<TableIdent>, Refusal> {
        let tables = self.catalog.list_tables(namespace).await.map_err(internal)?;
        Ok(tables.into_iter().filter(|t| whole(reads, t)).collect())
    }

    /// The table the caller names, if they may load it. Not granted reads as not there: names
    /// are not disclosed either.
    fn granted(&self, caller: &Caller, namespace: &str, table: &str) -> Result<TableIdent, Refusal> {
        let ident = TableIdent::new(namespace_of(namespace), table.to_string());
        if !whole(&caller.reads, &ident) {
            return Err(no_table(&ident));
        }
        Ok(ident)
    }

    /// A loaded table as the REST spec answers it, with the storage keys `caller` gets for it
    /// when `headers` ask for some.
    fn loaded(&self, headers: &HeaderMap, caller: &Caller, table: &FloeTable) -> Response {
        // A read-only catalog hands out no write keys, whatever the grants.
        let writes = !self.service.read_only && self.writes(caller, table.ident().namespace(), Some(table.ident().name()));
        let (config, credentials) = self.service.vended.answer(headers, writes, table.metadata().location());
        let answer = json!({
            "metadata-location": table.metadata_location(),
            "metadata": table.metadata(),
            "config": config,
            "storage-credentials": credentials,
        });
        Json(answer).into_response()
    }
}

fn no_table(ident: &TableIdent) -> Refusal {
    refusal(StatusCode::NOT_FOUND, "NoSuchTableException", format!("no table {ident}"))
}

/// Whether `reads` covers every column of `table`: engines read its files, all of them.
fn whole(reads: &SessionAccess, table: &TableIdent) -> bool {
    reads.columns(&table.namespace().join("."), table.name()) == Some(Columns::All)
}

/// `a.b` or the REST spec's `a\u{1f}b` as a namespace.
fn namespace_of(text: &str) -> NamespaceIdent {
    let parts: Vec<&str> = text.split(['\u{1f}', '.']).collect();
    NamespaceIdent::from_strs(parts).unwrap_or_else(|_| NamespaceIdent::new(text.to_string()))
}

#[derive(Deserialize)]
struct TokenRequest {
    client_id: Option<String>,
    client_secret: Option<String>,
}

async fn token(State(rest): State<Rest>, Form(request): Form<TokenRequest>) -> Answer {
    let (Some(user), Some(password)) = (request.client_id, request.client_secret) else {
        return Err(refusal(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "send client_id and client_secret (a [[users]] name and password)",
        ));
    };
    if rest.access.sign_in(Some((&user, &password))).is_none() {
        return Err(refusal(StatusCode::UNAUTHORIZED, "invalid_client", "unknown user or wrong password"));
    }
    let (token, lifetime) = (rest.tokens.issue(&user), crate::auth::TOKEN_LIFETIME.as_secs());
    let issued = "urn:ietf:params:oauth:token-type:access_token";
    Ok(Json(json!({"access_token": token, "token_type": "bearer", "expires_in": lifetime, "issued_token_type": issued})).into_response())
}

#[derive(Deserialize)]
struct ConfigQuery {
    warehouse: Option<String>,
}

async fn config(State(rest): State<Rest>, headers: HeaderMap, Query(query): Query<ConfigQuery>) -> Answer {
    rest.caller(&headers)?;
    let served = rest.catalog.warehouse().trim_end_matches('/');
    if let Some(asked) = query.warehouse.filter(|asked| asked.trim_end_matches('/') != served) {
        let why = format!("floe serves one warehouse, {served}, not {asked}: ask for it, or send no warehouse");
        return Err(refusal(StatusCode::NOT_FOUND, "NoSuchWarehouseException", why));
    }
    // Where the tables' files live, for clients that write them (floe's own REST client).
    Ok(Json(json!({"defaults": {"warehouse": served}, "overrides": {}})).into_response())
}

async fn namespaces(State(rest): State<Rest>, headers: HeaderMap) -> Answer {
    let caller = rest.caller(&headers)?;
    let mut listed = vec![];
    for namespace in rest.catalog.list_namespaces().await.map_err(internal)? {
        if rest.visible(&caller, &namespace).await? {
            listed.push(namespace.inner());
        }
    }
    Ok(Json(json!({"namespaces": listed})).into_response())
}

async fn namespace(State(rest): State<Rest>, headers: HeaderMap, Path(name): Path<String>) -> Answer {
    let caller = rest.caller(&headers)?;
    let namespace = namespace_of(&name);
    if !rest.catalog.namespace_exists(&namespace).await.map_err(internal)? || !rest.visible(&caller, &namespace).await? {
        return Err(refusal(StatusCode::NOT_FOUND, "NoSuchNamespaceException", format!("no namespace {name}")));
    }
    Ok(Json(json!({"namespace": namespace.inner(), "properties": {}})).into_response())
}

async fn tables(State(rest): State<Rest>, headers: HeaderMap, Path(name): Path<String>) -> Answer {
    let reads = rest.caller(&headers)?.reads;
    let tables = rest.loadable(&reads, &namespace_of(&name)).await?;
    let identifiers: Vec<_> = tables.iter().map(|t| json!({"namespace": t.namespace().clone().inner(), "name": t.name()})).collect();
    Ok(Json(json!({"identifiers": identifiers})).into_response())
}

async fn load_table(State(rest): State<Rest>, headers: HeaderMap, Path((namespace, table)): Path<(String, String)>) -> Answer {
    let caller = rest.caller(&headers)?;
    let ident = rest.granted(&caller, &namespace, &table)?;
    match rest.catalog.load_table(&ident).await {
        Ok(table) => Ok(rest.loaded(&headers, &caller, &table)),
        Err(CatalogError::TableNotFound(_) | CatalogError::NamespaceNotFound(_)) => Err(no_table(&ident)),
        Err(e) => Err(internal(e)),
    }
}

/// `HEAD`: whether the table exists (and may be read), without reading its metadata.
async fn table_exists(State(rest): State<Rest>, headers: HeaderMap, Path((namespace, table)): Path<(String, String)>) -> StatusCode {
    let ident = match rest.caller(&headers).and_then(|caller| rest.granted(&caller, &namespace, &table)) {
        Ok(ident) => ident,
        Err(refused) => return refused.status,
    };
    match rest.catalog.table_exists(&ident).await {
        Ok(true) => StatusCode::NO_CONTENT,
        Ok(false) => StatusCode::NOT_FOUND,
        Err(e) => internal(e).status,
    }
}
