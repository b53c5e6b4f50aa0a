//! One `object_store` client per bucket or container, by URL scheme, with floe's retry budget.
//!
//! - `s3://` (`s3a://`): the standard AWS environment (keys, session token, web identity,
//!   container and instance credentials), `AWS_REGION`, and `AWS_ENDPOINT_URL` for an
//!   S3-compatible server (path-style then); iceberg's `s3.*` properties override them.
//! - `gs://`: Google Cloud Storage, from `GOOGLE_*` variables (`GOOGLE_SERVICE_ACCOUNT`,
//!   `GOOGLE_APPLICATION_CREDENTIALS`, or the instance's credentials; `GOOGLE_BASE_URL` for
//!   another server); iceberg's `gcs.*` properties override them, and a token a REST catalog
//!   vends (`gcs.oauth2.token`) is used instead of their credentials.
//! - `az://container/…` and `abfs(s)://container@account.dfs.core.windows.net/…`: Azure Blob
//!   Storage, from `AZURE_*` variables (`AZURE_STORAGE_ACCOUNT_NAME`, a key, SAS or client
//!   secret, or managed identity; `AZURE_STORAGE_USE_EMULATOR` for Azurite). A SAS token a
//!   REST catalog vends for the account (`adls.sas-token.<account>`) is used instead of them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use iceberg::io::{
    GCS_NO_AUTH, GCS_SERVICE_PATH, GCS_TOKEN, S3_ACCESS_KEY_ID, S3_ENDPOINT, S3_PATH_STYLE_ACCESS, S3_REGION, S3_SECRET_ACCESS_KEY,
    S3_SESSION_TOKEN,
};
use object_store::aws::AmazonS3Builder;
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GcpCredential, GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::{ObjectStore, RetryConfig, StaticCredentialProvider};

use super::ObjectUrl;

/// floe's own warehouse properties: how long and how often a request to object storage is
/// retried before the operation fails (by default 3 minutes and 20 times).
pub const RETRY_TIMEOUT_MS: &str = "floe.storage.retry-timeout-ms";
pub const MAX_RETRIES: &str = "floe.storage.max-retries";

/// The URL schemes floe stores tables under, besides local directories.
pub const SCHEMES: [&str; 6] = ["s3", "s3a", "gs", "az", "abfs", "abfss"];

/// A client for the bucket or container of `url`.
pub fn client(url: &ObjectUrl, properties: &HashMap<String, String>) -> object_store::Result<Arc<dyn ObjectStore>> {
    let retry = retry_config(properties);
    Ok(match url.scheme {
        "gs" => Arc::new(gcs_client(url.bucket, properties).with_retry(retry).build()?),
        "az" | "abfs" | "abfss" => Arc::new(azure_client(url, properties).with_retry(retry).build()?),
        _ => Arc::new(s3_client(url.bucket, properties)?.with_retry(retry).build()?),
    })
}

/// Java Iceberg's name for the GCS endpoint, which REST catalogs vend; iceberg-rust's is
/// `gcs.service.path`.
const GCS_SERVICE_HOST: &str = "gcs.service.host";

/// A GCS client builder for `bucket`: the `GOOGLE_*` environment, with iceberg's `gcs.*`
/// properties over it: the endpoint, a vended token (sent as it is, and the environment's
/// credentials are then not read), or no credentials at all (`gcs.no-auth`, for an emulator).
fn gcs_client(bucket: &str, properties: &HashMap<String, String>) -> GoogleCloudStorageBuilder {
    let token = properties.get(GCS_TOKEN);
    let no_auth = properties.get(GCS_NO_AUTH).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let mut builder = if token.is_some() || no_auth { google_env_without_credentials() } else { GoogleCloudStorageBuilder::from_env() };
    builder = builder.with_bucket_name(bucket);
    if let Some(endpoint) = properties.get(GCS_SERVICE_HOST).or_else(|| properties.get(GCS_SERVICE_PATH)) {
        builder = builder.with_base_url(endpoint.trim_end_matches('/'));
    }
    match token {
        Some(token) => builder.with_credentials(static_gcs_token(token)),
        // An empty token, as object_store's own `disable_oauth`: writes and deletes ask for a
        // credential even when reads skip signing, and must find one here, not the instance's.
        None if no_auth => builder.with_skip_signature(true).with_credentials(static_gcs_token("")),
        None => builder,
    }
}

fn static_gcs_token(bearer: &str) -> Arc<StaticCredentialProvider<GcpCredential>> {
    Arc::new(StaticCredentialProvider::new(GcpCredential { bearer: bearer.to_string() }))
}

/// What `GoogleCloudStorageBuilder::from_env` reads, but for credentials: a service account
/// file that another token replaces must not be read (a stale one would fail the build).
fn google_env_without_credentials() -> GoogleCloudStorageBuilder {
    let credentials = |key: &GoogleConfigKey| {
        matches!(key, GoogleConfigKey::ServiceAccount | GoogleConfigKey::ServiceAccountKey | GoogleConfigKey::ApplicationCredentials)
    };
    env_config::<GoogleConfigKey>("GOOGLE_")
        .filter(|(key, _)| !credentials(key))
        .fold(GoogleCloudStorageBuilder::default(), |builder, (key, value)| builder.with_config(key, value))
}

/// The `<PREFIX>…` environment variables that name an object_store config key, as each
/// builder's `from_env` reads them (the key is the variable's name in lower case).
fn env_config<K: std::str::FromStr>(prefix: &str) -> impl Iterator<Item = (K, String)> + '_ {
    let variables = std::env::vars_os().filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)));
    variables
        .filter(move |(name, _)| name.starts_with(prefix))
        .filter_map(|(name, value)| Some((name.to_ascii_lowercase().parse().ok()?, value)))
}

/// The property prefix of a SAS token vended for an Azure storage account: the account's name
/// follows, bare or as its host (`adls.sas-token.acct` or `adls.sas-token.acct.dfs.core.windows.net`).
const ADLS_SAS_TOKEN: &str = "adls.sas-token.";

/// An Azure client builder for the container of `url`: the `AZURE_*` environment, or, when a SAS
/// token was vended for the container's account, the environment without its credentials (a
/// key would win over the token) and the token.
fn azure_client(url: &ObjectUrl, properties: &HashMap<String, String>) -> MicrosoftAzureBuilder {
    let account = match url.bucket.split_once('@') {
        Some((_, host)) => host.split('.').next().map(str::to_ascii_lowercase),
        None => MicrosoftAzureBuilder::from_env().get_config_value(&AzureConfigKey::AccountName),
    };
    let builder = match vended_sas_token(account.as_deref(), properties) {
        None => MicrosoftAzureBuilder::from_env(),
        Some(token) => azure_env_without_credentials().with_config(AzureConfigKey::SasKey, token),
    };
    match url.scheme {
        "az" => builder.with_container_name(url.bucket),
        _ => builder.with_url(format!("{}://{}", url.scheme, url.bucket)),
    }
}

/// The SAS token vended for `account` (Azurite's only account when none is named). Account
/// names are case-blind; of several keys for one account, the first in key order wins, so the
/// choice does not vary from run to run.
fn vended_sas_token<'p>(account: Option<&str>, properties: &'p HashMap<String, String>) -> Option<&'p String> {
    let account = account.unwrap_or("devstoreaccount1");
    let for_account = |key: &str| key.strip_prefix(ADLS_SAS_TOKEN)?.split('.').next().map(|name| name.eq_ignore_ascii_case(account));
    let mut tokens: Vec<_> = properties.iter().filter(|(key, _)| for_account(key) == Some(true)).collect();
    tokens.sort();
    tokens.first().map(|(_, token)| *token)
}

/// What `MicrosoftAzureBuilder::from_env` reads, but for credentials.
fn azure_env_without_credentials() -> MicrosoftAzureBuilder {
    let locates = |key: &AzureConfigKey| {
        matches!(
            key,
            AzureConfigKey::AccountName
                | AzureConfigKey::Endpoint
                | AzureConfigKey::UseEmulator
                | AzureConfigKey::UseFabricEndpoint
                | AzureConfigKey::ContainerName
                | AzureConfigKey::DisableTagging
                | AzureConfigKey::Client(_)
        )
    };
    env_config::<AzureConfigKey>("AZURE_")
        .filter(|(key, _)| locates(key))
        .fold(MicrosoftAzureBuilder::new(), |builder, (key, value)| builder.with_config(key, value))
}

/// object_store's retry settings, with the budget `properties` give. floe's defaults wait
/// longer than object_store's (10 retries from 100 ms, with a jitter that can spend them all
/// in about a second): at least 20 × 200 ms, so a throttling burst of a few seconds is waited
/// out, still within 3 minutes.
fn retry_config(properties: &HashMap<String, String>) -> RetryConfig {
    let mut retry = RetryConfig { max_retries: 20, ..Default::default() };
    retry.backoff.init_backoff = Duration::from_millis(200);
    if let Some(ms) = properties.get(RETRY_TIMEOUT_MS).and_then(|v| v.parse().ok()) {
        retry.retry_timeout = Duration::from_millis(ms);
    }
    if let Some(n) = properties.get(MAX_RETRIES).and_then(|v| v.parse().ok()) {
        retry.max_retries = n;
    }
    retry
}

/// An S3 client builder for `bucket`: the AWS environment, overridden by iceberg's `s3.*`
/// properties. With an endpoint of its own (an S3-compatible server), requests are path-style
/// unless the properties say otherwise.
fn s3_client(bucket: &str, properties: &HashMap<String, String>) -> object_store::Result<AmazonS3Builder> {
    // Keys given as properties (vended by a REST catalog) are used alone: a session token from
    // the environment belongs to the environment's keys and would spoil their signatures.
    let own_keys = properties.contains_key(S3_ACCESS_KEY_ID);
    let mut builder = if own_keys { AmazonS3Builder::new() } else { AmazonS3Builder::from_env() }.with_bucket_name(bucket);
    if own_keys {
        if let Ok(region) = std::env::var("AWS_REGION").or_else(|_| std::env::var("AWS_DEFAULT_REGION")) {
            builder = builder.with_region(region);
        }
    }
    let endpoint = properties.get(S3_ENDPOINT).cloned().or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
    if let Some(endpoint) = &endpoint {
        let path_style = properties.get(S3_PATH_STYLE_ACCESS).is_none_or(|v| v == "true");
        builder =
            builder.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://")).with_virtual_hosted_style_request(!path_style);
    }
    let set = |builder: AmazonS3Builder, key: &str, apply: fn(AmazonS3Builder, &String) -> AmazonS3Builder| match properties.get(key) {
        Some(value) => apply(builder, value),
        None => builder,
    };
    builder = set(builder, S3_REGION, |b, v| b.with_region(v));
    builder = set(builder, S3_ACCESS_KEY_ID, |b, v| b.with_access_key_id(v));
    builder = set(builder, S3_SECRET_ACCESS_KEY, |b, v| b.with_secret_access_key(v));
    builder = set(builder, S3_SESSION_TOKEN, |b, v| b.with_token(v));
    Ok(builder)
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::path::Path;
    use object_store::ObjectStoreExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server on loopback that answers every request 404 and sends back each request's head.
    async fn recording_server() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (heads, received) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut head = vec![];
                let mut buffer = [0; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                let _ = heads.send(String::from_utf8_lossy(&head).to_ascii_lowercase());
                let _ = socket.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
            }
        });
        (url, received)
    }

    /// The next request head the server received.
    async fn next_head(heads: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> String {
        tokio::time::timeout(Duration::from_secs(10), heads.recv()).await.expect("a request within 10 s").unwrap()
    }

    /// A client of bucket `lake` at `endpoint` (given as `endpoint_key`), with one more property
    /// `auth`; requests are not retried.
    fn gcs_store(endpoint_key: &str, endpoint: &str, (key, value): (&str, &str)) -> Arc<dyn ObjectStore> {
        let url = ObjectUrl { scheme: "gs", bucket: "lake", key: "" };
        let properties: HashMap<String, String> =
            [(endpoint_key, endpoint), (key, value), (MAX_RETRIES, "0")].into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        client(&url, &properties).unwrap()
    }

    /// Reads `path`, which the recording server has not.
    async fn read_missing(store: &Arc<dyn ObjectStore>, path: &str) {
        let missing = store.get(&Path::from(path)).await;
        assert!(matches!(missing, Err(object_store::Error::NotFound { .. })), "{path}: {missing:?}");
    }

    #[tokio::test]
    async fn a_vended_gcs_token_is_sent_as_the_bearer_to_the_vended_endpoint() {
        let (endpoint, mut heads) = recording_server().await;
        for endpoint_key in [GCS_SERVICE_HOST, GCS_SERVICE_PATH] {
            let store = gcs_store(endpoint_key, &endpoint, (GCS_TOKEN, "vended-token"));
            read_missing(&store, "t/metadata/v1.metadata.json").await;
            let head = next_head(&mut heads).await;
            // object_store percent-encodes the whole object name (lower-cased here).
            assert!(head.starts_with("get /lake/t%2fmetadata%2fv1%2emetadata%2ejson "), "{endpoint_key}: {head}");
            assert!(head.contains("\r\nauthorization: bearer vended-token\r\n"), "{endpoint_key}: {head}");
        }
    }

    #[tokio::test]
    async fn gcs_without_auth_sends_no_credentials_to_read_or_write() {
        let (endpoint, mut heads) = recording_server().await;
        let store = gcs_store(GCS_SERVICE_HOST, &format!("{endpoint}/"), (GCS_NO_AUTH, "true"));
        read_missing(&store, "a").await;
        let head = next_head(&mut heads).await;
        assert!(head.starts_with("get /lake/a "), "{head}");
        assert!(!head.contains("authorization:"), "{head}");
        // A write asks for a credential even unsigned: it gets the empty one, not the machine's.
        assert!(store.put(&Path::from("b"), "x".into()).await.is_err(), "the server answers 404");
        let head = next_head(&mut heads).await;
        assert!(head.starts_with("put /lake/b "), "{head}");
        let bearer = head.lines().find_map(|line| line.strip_prefix("authorization: bearer")).unwrap_or("");
        assert_eq!(bearer.trim(), "", "{head}");
    }

    #[test]
    fn a_sas_token_is_taken_for_its_own_account_named_bare_or_by_host() {
        let vended = |key: &str| HashMap::from([(key.to_string(), "sv=x&sig=y".to_string())]);
        assert!(vended_sas_token(Some("acct"), &vended("adls.sas-token.acct")).is_some());
        assert!(vended_sas_token(Some("acct"), &vended("adls.sas-token.acct.dfs.core.windows.net")).is_some());
        assert!(vended_sas_token(Some("acct"), &vended("adls.sas-token.other.dfs.core.windows.net")).is_none());
        assert!(vended_sas_token(Some("acct"), &vended("adls.sas-token-expires-at-ms.acct")).is_none());
        assert!(vended_sas_token(None, &vended("adls.sas-token.devstoreaccount1")).is_some(), "Azurite's account");
        assert!(vended_sas_token(Some("acct"), &vended("adls.sas-token.ACCT")).is_some(), "names are case-blind");
    }
}
