//! floe as a client of an Iceberg REST catalog (Polaris, Lakekeeper, Gravitino, Nessie, Unity,
//! Glue's REST endpoint, or another `floe serve`): `--catalog-url http(s)://host/prefix`.
//!
//! The [`Catalog`] contract maps onto the REST protocol one to one: a commit sends floe's
//! requirements and updates, and the server checks them against the table's current metadata
//! and swaps its pointer. floe's retry loop ([`crate::commit_with_retry`]) stays the one place
//! that decides what to commit: on a `409` it reloads and re-validates, as with the SQL catalog.
//!
//! A commit whose answer is lost (a 5xx, a timeout) may or may not have landed. It is reported
//! as a retryable conflict: the retry reloads the table, and floe's callers re-validate against
//! what it holds (the sink's positions, the compactor's files), so a commit that did land is
//! seen as done and never appended twice.
//!
//! Authentication: `FLOE_CATALOG_CREDENTIAL=client_id:client_secret` (OAuth client credentials
//! at `{url}/v1/oauth/tokens`, renewed when refused) or `FLOE_CATALOG_TOKEN` (a bearer token).
//! Data and manifest files are reached with the storage credentials the catalog vends with each
//! table ([`vended`]), over the client's own warehouse FileIO (`--warehouse`, or the catalog's
//! `warehouse` default from `/v1/config`). A catalog that serves several warehouses (Polaris's
//! catalogs, Lakekeeper's warehouses) is told which one by `--catalog-warehouse`, sent as the
//! `warehouse` parameter of `/v1/config`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use iceberg::io::FileIO;
use iceberg::spec::{Schema, SortOrder, TableMetadata, UnboundPartitionSpec};
use iceberg::{NamespaceIdent, TableCreation, TableIdent};
use reqwest::{Method, StatusCode, Url};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::catalog::Catalog;
use crate::commit::TableChange;
use crate::error::{CatalogError, Result};
use crate::storage::Warehouse;
use crate::table::FloeTable;

mod vended;

use vended::{StorageCredential, VendedFileIos, ACCESS_DELEGATION};

/// How the client proves who it is.
#[derive(Debug, Clone, Default)]
pub enum Credential {
    #[default]
    None,
    /// A bearer token, sent as is.
    Token(String),
    /// OAuth client credentials, exchanged for a token at `/v1/oauth/tokens`.
    Client { id: String, secret: String },
}

impl Credential {
    /// `FLOE_CATALOG_TOKEN`, else `FLOE_CATALOG_CREDENTIAL` (`client_id:client_secret`).
    pub fn from_env() -> Result<Self> {
        if let Ok(token) = std::env::var("FLOE_CATALOG_TOKEN") {
            return Ok(Credential::Token(token));
        }
        match std::env::var("FLOE_CATALOG_CREDENTIAL") {
            Err(_) => Ok(Credential::None),
            Ok(text) => match text.split_once(':') {
                Some((id, secret)) => Ok(Credential::Client { id: id.to_string(), secret: secret.to_string() }),
                None => Err(CatalogError::Invalid("FLOE_CATALOG_CREDENTIAL is not client_id:client_secret".into())),
            },
        }
    }
}

/// An Iceberg REST catalog.
#[derive(Debug, Clone)]
pub struct RestCatalog {
    /// `{url}/v1/{prefix}`: every resource path starts here.
    base: Url,
    /// `{url}/v1/oauth/tokens`.
    token_url: Url,
    client: reqwest::Client,
    credential: Credential,
    /// The bearer token in use, shared by every clone.
    token: Arc<Mutex<Option<String>>>,
    warehouse: Warehouse,
    /// FileIOs over the credentials the catalog vended with its tables.
    vended: VendedFileIos,
}

/// How to reach and use a REST catalog.
#[derive(Debug, Clone, Default)]
pub struct RestOptions {
    pub credential: Credential,
    /// Which of the catalog's warehouses (its `warehouse` parameter): Polaris's catalog name,
    /// Lakekeeper's warehouse name. None for a catalog of one warehouse, as floe's own.
    pub catalog_warehouse: Option<String>,
    /// Where tables' files go, when not the catalog's `warehouse` default.
    pub warehouse: Option<Warehouse>,
    /// Storage properties (floe's retry budget, iceberg's `s3.*`) for the catalog's warehouse.
    pub storage: HashMap<String, String>,
}

/// The REST spec's `LoadTableResult` (the parts floe reads).
#[derive(Deserialize)]
struct LoadTableResult {
    #[serde(rename = "metadata-location")]
    metadata_location: String,
    metadata: TableMetadata,
    #[serde(default)]
    config: HashMap<String, String>,
    #[serde(default, rename = "storage-credentials")]
    storage_credentials: Vec<StorageCredential>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct CreateTableRequest<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    location: Option<&'a str>,
    schema: &'a Schema,
    #[serde(skip_serializing_if = "Option::is_none")]
    partition_spec: Option<&'a UnboundPartitionSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    write_order: Option<&'a SortOrder>,
    properties: &'a HashMap<String, String>,
}

impl RestCatalog {
    /// Connects to the catalog at `url` (the part before `/v1`) and reads its `/v1/config`.
    /// Tables' files go to `options.warehouse`, or without one, to the catalog's `warehouse`
    /// default, reached with `options.storage` properties and what the catalog vends.
    pub async fn open(url: &str, options: RestOptions) -> Result<Self> {
        let RestOptions { credential, catalog_warehouse, warehouse, storage } = options;
        let root =
            Url::parse(&format!("{}/", url.trim_end_matches('/'))).map_err(|e| CatalogError::Invalid(format!("catalog URL {url}: {e}")))?;
        let v1 = root.join("v1/").expect("a relative path joins");
        let client = reqwest::Client::builder().build().map_err(|e| transport(url, e))?;
        let placeholder = Warehouse { location: String::new(), file_io: FileIO::new_with_fs() };
        let mut catalog = RestCatalog {
            base: v1.clone(),
            token_url: v1.join("oauth/tokens").expect("a relative path joins"),
            client,
            credential,
            token: Arc::default(),
            warehouse: placeholder,
            vended: VendedFileIos::default(),
        };
        let mut config_url = catalog.base.join("config").expect("joins");
        if let Some(name) = &catalog_warehouse {
            config_url.query_pairs_mut().append_pair("warehouse", name);
        }
        let config = catalog.call(Method::GET, config_url, None).await?.success()?.json()?;
        let setting = |key: &str| {
            let pick = |section: &str| config.get(section).and_then(|s| s.get(key)).and_then(|v| v.as_str()).map(str::to_string);
            pick("overrides").or_else(|| pick("defaults"))
        };
        if let Some(prefix) = setting("prefix") {
            catalog.base = v1.join(&format!("{}/", prefix.trim_matches('/'))).map_err(|e| CatalogError::Invalid(e.to_string()))?;
        }
        catalog.warehouse = match (warehouse, setting("warehouse")) {
            (Some(warehouse), _) => warehouse,
            (None, Some(location)) => Warehouse::parse(&location, storage)?,
            (None, None) => {
                return Err(CatalogError::Invalid(format!(
                    "the catalog at {url} names no warehouse in /v1/config: give floe one with --warehouse"
                )))
            }
        };
        Ok(catalog)
    }

    /// `base` + the namespace (and table) as path segments, the namespace's levels joined by
    /// the unit separator as the spec says.
    fn url(&self, namespace: Option<&NamespaceIdent>, rest: &[&str]) -> Url {
        let mut url = self.base.clone();
        {
            let mut segments = url.path_segments_mut().expect("an http URL has segments");
            segments.pop_if_empty().push("namespaces");
            if let Some(namespace) = namespace {
                segments.push(&namespace.join("\u{1f}"));
            }
            segments.extend(rest);
        }
        url
    }

    fn table_url(&self, table: &TableIdent) -> Url {
        self.url(Some(table.namespace()), &["tables", table.name()])
    }

    /// One request, with the bearer token; a refused token is renewed once.
    async fn call(&self, method: Method, url: Url, body: Option<serde_json::Value>) -> Result<Answer> {
        let mut renewed = false;
        loop {
            let mut request = self.client.request(method.clone(), url.clone()).header(ACCESS_DELEGATION.0, ACCESS_DELEGATION.1);
            if let Some(token) = self.bearer(renewed).await? {
                request = request.bearer_auth(token);
            }
            if let Some(body) = &body {
                request = request.header("content-type", "application/json").body(body.to_string());
            }
            let response = request.send().await.map_err(|e| transport(url.as_str(), e))?;
            let status = response.status();
            let text = response.text().await.map_err(|e| transport(url.as_str(), e))?;
            if status == StatusCode::UNAUTHORIZED && !renewed && matches!(self.credential, Credential::Client { .. }) {
                renewed = true;
                continue;
            }
            return Ok(Answer { status, text, url });
        }
    }

    /// The token to send: the configured one, or one from the token endpoint (anew when `renew`).
    async fn bearer(&self, renew: bool) -> Result<Option<String>> {
        let (id, secret) = match &self.credential {
            Credential::None => return Ok(None),
            Credential::Token(token) => return Ok(Some(token.clone())),
            Credential::Client { id, secret } => (id, secret),
        };
        if !renew {
            if let Some(token) = self.token.lock().expect("not poisoned").clone() {
                return Ok(Some(token));
            }
        }
        let form = [("grant_type", "client_credentials"), ("client_id", id), ("client_secret", secret), ("scope", "catalog")];
        let url = self.token_url.as_str();
        let response = self.client.post(self.token_url.clone()).form(&form).send().await.map_err(|e| transport(url, e))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| transport(url, e))?;
        let answer = Answer { status, text, url: self.token_url.clone() };
        let token = answer.success()?.json()?.get("access_token").and_then(|t| t.as_str()).map(str::to_string);
        let token = token.ok_or_else(|| CatalogError::Invalid(format!("{url} answered no access_token")))?;
        *self.token.lock().expect("not poisoned") = Some(token.clone());
        Ok(Some(token))
    }

    /// A loaded table, with a FileIO over the credentials the catalog vended for it.
    fn loaded(&self, ident: &TableIdent, answer: Answer) -> Result<FloeTable> {
        let result: LoadTableResult = answer.decode()?;
        let keys = vended::vended_properties(&result.config, &result.storage_credentials, result.metadata.location());
        let file_io = self.vended.file_io(&self.warehouse.file_io, keys);
        Ok(FloeTable::new(ident.clone(), result.metadata, result.metadata_location, file_io))
    }

    /// A committed table: the committing one's credentials go on, renewed first when they lapse
    /// soon (a commit's answer carries none). The commit has landed, so nothing here may fail
    /// it: an answer that does not parse is a commit of unknown state (the retry reloads and
    /// re-validates), and a failed renewal keeps the old keys.
    async fn committed(&self, base: &FloeTable, answer: Answer) -> Result<FloeTable> {
        let ident = base.ident();
        let result: LoadTableResult = answer.decode().map_err(|e| CatalogError::conflict(ident, format!("commit state unknown: {e}")))?;
        let mut file_io = base.file_io().clone();
        if vended::expiring(&file_io, vended::RENEW_MARGIN) {
            match self.load_table(ident).await {
                Ok(reloaded) => file_io = reloaded.file_io().clone(),
                Err(e) => {
                    tracing::warn!(table = %ident, error = %e, "committed, but renewing the vended storage keys failed: the old ones go on")
                }
            }
        }
        Ok(FloeTable::new(ident.clone(), result.metadata, result.metadata_location, file_io))
    }

    /// Sends a commit (of one table, or a transaction naming `ident` first) and judges the
    /// answer; a 404 is `not_found`'s error. A commit whose answer is lost (no answer, a 5xx)
    /// may or may not have landed: it is a retryable conflict, and the retry re-validates
    /// against what the tables hold.
    async fn send_commit(
        &self,
        url: Url,
        body: serde_json::Value,
        ident: &TableIdent,
        not_found: impl FnOnce(&Answer) -> CatalogError,
    ) -> Result<Answer> {
        let answer = match self.call(Method::POST, url, Some(body)).await {
            Ok(answer) => answer,
            Err(e) => return Err(CatalogError::conflict(ident, format!("commit state unknown: {e}"))),
        };
        match answer.status {
            StatusCode::CONFLICT => Err(CatalogError::conflict(ident, answer.message())),
            StatusCode::NOT_FOUND => Err(not_found(&answer)),
            status if status.is_server_error() => {
                Err(CatalogError::conflict(ident, format!("commit state unknown: {status}: {}", answer.message())))
            }
            _ => answer.success(),
        }
    }

    /// `HEAD url`: whether it exists.
    async fn exists(&self, url: Url) -> Result<bool> {
        let answer = self.call(Method::HEAD, url, None).await?;
        match answer.status {
            StatusCode::NOT_FOUND => Ok(false),
            _ => answer.success().map(|_| true),
        }
    }

    /// Every page of a listing: `key` holds each page's items.
    async fn list<T: serde::de::DeserializeOwned>(&self, url: Url, key: &str) -> Result<Vec<T>> {
        let (mut items, mut page) = (vec![], None::<String>);
        loop {
            let mut paged = url.clone();
            if let Some(token) = &page {
                paged.query_pairs_mut().append_pair("pageToken", token);
            }
            let value = self.call(Method::GET, paged, None).await?.success()?.json()?;
            let listed = value.get(key).cloned().unwrap_or_default();
            items.extend(serde_json::from_value::<Vec<T>>(listed)?);
            match value.get("next-page-token").and_then(|t| t.as_str()) {
                Some(token) if !token.is_empty() => page = Some(token.to_string()),
                _ => return Ok(items),
            }
        }
    }
}

/// An HTTP answer, not yet judged.
struct Answer {
    status: StatusCode,
    text: String,
    url: Url,
}

impl Answer {
    /// The answer, or the server's error as a [`CatalogError::Invalid`] with its message.
    fn success(self) -> Result<Self> {
        if self.status.is_success() {
            return Ok(self);
        }
        Err(CatalogError::Invalid(format!("the REST catalog answered {} to {}: {}", self.status, self.url, self.message())))
    }

    /// The error message in the spec's `{"error": {"message": …}}`, or the body.
    fn message(&self) -> String {
        let parsed: Option<serde_json::Value> = serde_json::from_str(&self.text).ok();
        let message = parsed.as_ref().and_then(|v| v["error"]["message"].as_str().map(str::to_string));
        message.unwrap_or_else(|| self.text.chars().take(500).collect())
    }

    fn json(self) -> Result<serde_json::Value> {
        Ok(serde_json::from_str(&self.text)?)
    }

    fn decode<T: serde::de::DeserializeOwned>(self) -> Result<T> {
        let answer = self.success()?;
        serde_json::from_str(&answer.text)
            .map_err(|e| CatalogError::Invalid(format!("the REST catalog's answer from {} does not parse: {e}", answer.url)))
    }
}

fn transport(url: &str, e: reqwest::Error) -> CatalogError {
    CatalogError::Io(std::io::Error::other(format!("REST catalog {url}: {e}")))
}

#[async_trait]
impl Catalog for RestCatalog {
    fn name(&self) -> &str {
        "rest"
    }

    fn file_io(&self) -> &FileIO {
        &self.warehouse.file_io
    }

    fn warehouse(&self) -> &str {
        &self.warehouse.location
    }

    fn shared(&self) -> Arc<dyn Catalog> {
        Arc::new(self.clone())
    }

    async fn list_namespaces(&self) -> Result<Vec<NamespaceIdent>> {
        let levels: Vec<Vec<String>> = self.list(self.url(None, &[]), "namespaces").await?;
        levels.into_iter().map(|l| NamespaceIdent::from_vec(l).map_err(Into::into)).collect()
    }

    async fn namespace_exists(&self, namespace: &NamespaceIdent) -> Result<bool> {
        self.exists(self.url(Some(namespace), &[])).await
    }

    async fn create_namespace(&self, namespace: &NamespaceIdent) -> Result<()> {
        let body = json!({"namespace": namespace.clone().inner(), "properties": {}});
        let answer = self.call(Method::POST, self.url(None, &[]), Some(body)).await?;
        match answer.status {
            StatusCode::CONFLICT => Err(CatalogError::NamespaceAlreadyExists(namespace.join("."))),
            _ => answer.success().map(|_| ()),
        }
    }

    async fn drop_namespace(&self, namespace: &NamespaceIdent) -> Result<()> {
        let answer = self.call(Method::DELETE, self.url(Some(namespace), &[]), None).await?;
        match answer.status {
            StatusCode::NOT_FOUND => Err(CatalogError::NamespaceNotFound(namespace.join("."))),
            StatusCode::CONFLICT => Err(CatalogError::NamespaceNotEmpty(namespace.join("."))),
            _ => answer.success().map(|_| ()),
        }
    }

    async fn list_tables(&self, namespace: &NamespaceIdent) -> Result<Vec<TableIdent>> {
        #[derive(Deserialize)]
        struct Identifier {
            namespace: Vec<String>,
            name: String,
        }
        let listed: Vec<Identifier> = self.list(self.url(Some(namespace), &["tables"]), "identifiers").await?;
        listed.into_iter().map(|i| Ok(TableIdent::new(NamespaceIdent::from_vec(i.namespace)?, i.name))).collect()
    }

    async fn table_exists(&self, table: &TableIdent) -> Result<bool> {
        self.exists(self.table_url(table)).await
    }

    async fn create_table(&self, table: &TableIdent, creation: TableCreation) -> Result<FloeTable> {
        let request = CreateTableRequest {
            name: table.name(),
            location: creation.location.as_deref(),
            schema: &creation.schema,
            partition_spec: creation.partition_spec.as_ref(),
            write_order: creation.sort_order.as_ref(),
            properties: &creation.properties,
        };
        let body = serde_json::to_value(&request)?;
        let answer = self.call(Method::POST, self.url(Some(table.namespace()), &["tables"]), Some(body)).await?;
        match answer.status {
            StatusCode::CONFLICT => Err(CatalogError::TableAlreadyExists(table.to_string())),
            StatusCode::NOT_FOUND => Err(CatalogError::NamespaceNotFound(table.namespace().join("."))),
            _ => self.loaded(table, answer),
        }
    }

    async fn load_table(&self, table: &TableIdent) -> Result<FloeTable> {
        let answer = self.call(Method::GET, self.table_url(table), None).await?;
        match answer.status {
            StatusCode::NOT_FOUND => Err(CatalogError::TableNotFound(table.to_string())),
            _ => self.loaded(table, answer),
        }
    }

    async fn rename_table(&self, from: &TableIdent, to: &TableIdent) -> Result<()> {
        let body = json!({"source": identifier(from), "destination": identifier(to)});
        let url = self.base.join("tables/rename").expect("joins");
        let answer = self.call(Method::POST, url, Some(body)).await?;
        match answer.status {
            StatusCode::NOT_FOUND => Err(CatalogError::TableNotFound(from.to_string())),
            StatusCode::CONFLICT => Err(CatalogError::TableAlreadyExists(to.to_string())),
            _ => answer.success().map(|_| ()),
        }
    }

    async fn drop_table(&self, table: &TableIdent) -> Result<()> {
        let answer = self.call(Method::DELETE, self.table_url(table), None).await?;
        match answer.status {
            StatusCode::NOT_FOUND => Err(CatalogError::TableNotFound(table.to_string())),
            _ => answer.success().map(|_| ()),
        }
    }

    async fn commit_table(&self, base: &FloeTable, change: TableChange) -> Result<FloeTable> {
        let ident = base.ident();
        let not_found = |_: &Answer| CatalogError::TableNotFound(ident.to_string());
        let answer = self.send_commit(self.table_url(ident), table_commit(ident, &change), ident, not_found).await?;
        self.committed(base, answer).await
    }

    async fn commit_tables(&self, changes: Vec<(TableIdent, TableChange)>) -> Result<Vec<FloeTable>> {
        crate::commit::check_distinct(&changes)?;
        let Some((first, _)) = changes.first() else { return Ok(vec![]) };
        let table_changes: Vec<_> = changes.iter().map(|(ident, change)| table_commit(ident, change)).collect();
        let url = self.base.join("transactions/commit").expect("joins");
        let not_found = |answer: &Answer| CatalogError::TableNotFound(answer.message());
        self.send_commit(url, json!({"table-changes": table_changes}), first, not_found).await?;
        // The answer carries no metadata: the committed tables are loaded.
        let mut committed = vec![];
        for (ident, _) in &changes {
            let reloaded = self.load_table(ident).await;
            committed.push(
                reloaded.map_err(|e| CatalogError::Invalid(format!("the transaction was committed, but reloading {ident} failed: {e}")))?,
            );
        }
        Ok(committed)
    }
}

/// A table's identifier as the REST spec writes it.
fn identifier(ident: &TableIdent) -> serde_json::Value {
    json!({"namespace": ident.namespace().clone().inner(), "name": ident.name()})
}

/// One table's `CommitTableRequest`.
fn table_commit(ident: &TableIdent, change: &TableChange) -> serde_json::Value {
    json!({"identifier": identifier(ident), "requirements": change.requirements, "updates": change.updates})
}
