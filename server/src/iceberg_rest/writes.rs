//! The Iceberg REST catalog's writes: namespaces, table creation, commits, renames and drops.
//!
//! A commit carries the client's requirements and updates; floe checks the requirements
//! against the table's *current* metadata and swaps the pointer by compare-and-swap, in
//! [`floe_catalog::commit`], exactly as for its own sink and compactor. When another writer
//! moves the table between the load and the swap, the commit is re-checked on the new
//! metadata a few times; a requirement that no longer holds is `409 CommitFailedException`,
//! and the client rebuilds its change, as the protocol expects.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use floe_catalog::iceberg::spec::{Schema, SortOrder, UnboundPartitionSpec};
use floe_catalog::iceberg::{NamespaceIdent, TableCreation, TableIdent, TableRequirement, TableUpdate};
use floe_catalog::{commit_tables_with_retry, commit_with_retry, FloeTable, RetryPolicy, TableChange};
use serde::Deserialize;
use serde_json::json;

use super::{namespace_of, refusal, refused, Answer, Caller, Refusal, Rest};

/// A commit that lost a race to another writer is re-checked this often on the new metadata.
const COMMIT_RETRY: RetryPolicy =
    RetryPolicy { max_attempts: 4, initial_backoff: Duration::from_millis(10), max_backoff: Duration::from_millis(200) };

impl Rest {
    /// The sender of `headers`, refused unless this catalog takes writes and they may write
    /// `namespace` (with `table`, that table of it).
    fn writer(&self, headers: &HeaderMap, namespace: &NamespaceIdent, table: Option<&str>) -> Result<Caller, Refusal> {
        if self.service.read_only {
            let why = "floe's REST catalog is read-only here ([server] catalog_read_only)";
            return Err(refusal(StatusCode::METHOD_NOT_ALLOWED, "NotAllowedException", why));
        }
        let caller = self.caller(headers)?;
        self.may_write(&caller, namespace, table)?;
        Ok(caller)
    }

    /// Refuses unless `caller` may write `namespace` (with `table`, that table of it).
    fn may_write(&self, caller: &Caller, namespace: &NamespaceIdent, table: Option<&str>) -> Result<(), Refusal> {
        if !self.writes(caller, namespace, table) {
            let name = namespace.join(".");
            let what = table.map_or(format!("namespace {name}"), |t| format!("{name}.{t}"));
            return Err(refusal(StatusCode::FORBIDDEN, "ForbiddenException", format!("no grant with write = true covers {what}")));
        }
        Ok(())
    }
}

/// A committed table as the REST spec answers it (`CommitTableResponse`).
fn committed(table: &FloeTable) -> Response {
    Json(json!({"metadata-location": table.metadata_location(), "metadata": table.metadata()})).into_response()
}

#[derive(Deserialize)]
pub(super) struct CreateNamespace {
    namespace: Vec<String>,
    #[serde(default)]
    properties: HashMap<String, String>,
}

pub(super) async fn create_namespace(State(rest): State<Rest>, headers: HeaderMap, Json(request): Json<CreateNamespace>) -> Answer {
    let namespace =
        NamespaceIdent::from_vec(request.namespace).map_err(|e| refusal(StatusCode::BAD_REQUEST, "BadRequestException", e.to_string()))?;
    rest.writer(&headers, &namespace, None)?;
    if !request.properties.is_empty() {
        // floe's catalogs keep no namespace properties; saying so beats dropping them silently.
        let why = "floe keeps no namespace properties: create the namespace without them";
        return Err(refusal(StatusCode::BAD_REQUEST, "BadRequestException", why));
    }
    rest.catalog.create_namespace(&namespace).await.map_err(refused)?;
    Ok(Json(json!({"namespace": namespace.inner(), "properties": {}})).into_response())
}

pub(super) async fn drop_namespace(State(rest): State<Rest>, headers: HeaderMap, Path(name): Path<String>) -> Answer {
    let namespace = namespace_of(&name);
    rest.writer(&headers, &namespace, None)?;
    rest.catalog.drop_namespace(&namespace).await.map_err(refused)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) struct CreateTable {
    name: String,
    location: Option<String>,
    schema: Schema,
    partition_spec: Option<UnboundPartitionSpec>,
    write_order: Option<SortOrder>,
    #[serde(default)]
    stage_create: bool,
    #[serde(default)]
    properties: HashMap<String, String>,
}

pub(super) async fn create_table(
    State(rest): State<Rest>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Json(request): Json<CreateTable>,
) -> Answer {
    let namespace = namespace_of(&name);
    let caller = rest.writer(&headers, &namespace, Some(&request.name))?;
    if request.stage_create {
        let why = "floe does not stage table creation: create the table, then commit to it";
        return Err(refusal(StatusCode::BAD_REQUEST, "BadRequestException", why));
    }
    let ident = TableIdent::new(namespace, request.name.clone());
    let creation = TableCreation::builder()
        .name(request.name)
        .location_opt(request.location)
        .schema(request.schema)
        .partition_spec_opt(request.partition_spec)
        .sort_order_opt(request.write_order)
        .properties(request.properties)
        .build();
    let table = rest.catalog.create_table(&ident, creation).await.map_err(refused)?;
    Ok(rest.loaded(&headers, &caller, &table))
}

#[derive(Deserialize)]
pub(super) struct CommitTable {
    #[serde(default)]
    requirements: Vec<TableRequirement>,
    #[serde(default)]
    updates: Vec<TableUpdate>,
}

pub(super) async fn commit_table(
    State(rest): State<Rest>,
    headers: HeaderMap,
    Path((namespace, table)): Path<(String, String)>,
    Json(request): Json<CommitTable>,
) -> Answer {
    let namespace = namespace_of(&namespace);
    rest.writer(&headers, &namespace, Some(&table))?;
    let ident = TableIdent::new(namespace, table);
    let change = TableChange::new(request.requirements, request.updates);
    let committed = commit_with_retry(rest.catalog.as_ref(), &ident, &COMMIT_RETRY, |_| {
        let change = change.clone();
        async move { Ok(Some(change)) }
    })
    .await
    .map_err(refused)?;
    let committed = committed.ok_or_else(|| refused(floe_catalog::CatalogError::Invalid("nothing was committed".into())))?;
    Ok(self::committed(&committed))
}

/// `POST /v1/transactions/commit`: changes to several tables, committed all or none.
#[derive(Deserialize)]
pub(super) struct CommitTransaction {
    #[serde(rename = "table-changes")]
    table_changes: Vec<TableCommit>,
}

#[derive(Deserialize)]
struct TableCommit {
    identifier: RestIdent,
    #[serde(default)]
    requirements: Vec<TableRequirement>,
    #[serde(default)]
    updates: Vec<TableUpdate>,
}

pub(super) async fn commit_transaction(State(rest): State<Rest>, headers: HeaderMap, Json(request): Json<CommitTransaction>) -> Answer {
    if request.table_changes.is_empty() {
        return Err(refusal(StatusCode::BAD_REQUEST, "BadRequestException", "a transaction needs table-changes"));
    }
    let mut changes = vec![];
    for commit in request.table_changes {
        let ident = commit.identifier.ident()?;
        rest.writer(&headers, ident.namespace(), Some(ident.name()))?;
        changes.push((ident, TableChange::new(commit.requirements, commit.updates)));
    }
    commit_tables_with_retry(rest.catalog.as_ref(), changes, &COMMIT_RETRY).await.map_err(refused)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn drop_table(State(rest): State<Rest>, headers: HeaderMap, Path((namespace, table)): Path<(String, String)>) -> Answer {
    let namespace = namespace_of(&namespace);
    rest.writer(&headers, &namespace, Some(&table))?;
    // The files stay (purgeRequested is not honoured): floe's orphan cleanup is per table,
    // and a dropped table's files are the operator's to remove.
    rest.catalog.drop_table(&TableIdent::new(namespace, table)).await.map_err(refused)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
pub(super) struct Rename {
    source: RestIdent,
    destination: RestIdent,
}

#[derive(Deserialize)]
struct RestIdent {
    namespace: Vec<String>,
    name: String,
}

impl RestIdent {
    fn ident(self) -> Result<TableIdent, Refusal> {
        let namespace =
            NamespaceIdent::from_vec(self.namespace).map_err(|e| refusal(StatusCode::BAD_REQUEST, "BadRequestException", e.to_string()))?;
        Ok(TableIdent::new(namespace, self.name))
    }
}

pub(super) async fn rename_table(State(rest): State<Rest>, headers: HeaderMap, Json(request): Json<Rename>) -> Answer {
    let (from, to) = (request.source.ident()?, request.destination.ident()?);
    let caller = rest.writer(&headers, from.namespace(), Some(from.name()))?;
    rest.may_write(&caller, to.namespace(), Some(to.name()))?;
    rest.catalog.rename_table(&from, &to).await.map_err(refused)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
