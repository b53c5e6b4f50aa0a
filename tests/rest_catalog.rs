//! floe as a client of an Iceberg REST catalog: floe's own `serve`, with the warehouse in an
//! S3-compatible bucket (moto, on loopback), or in Azurite's container (vended SAS tokens). Writers on other data dirs share nothing with it but
//! the catalog's URL and the bucket: `--catalog-url http://…/iceberg`, credentials in
//! `FLOE_CATALOG_CREDENTIAL`, and the bucket named by the catalog's `/v1/config`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::cloud_emulators::Emulator;
use common::process::Running;
use common::s3::S3Server;
use common::*;
use serde_json::Value;

const WAREHOUSE: &str = "s3://lake/floe";
const PASSWORD: &str = "pencil";

/// `floe serve` on its own data dir with the warehouse in moto's bucket (or Azurite's container),
/// serving the REST catalog to `writer`, who may write everything.
struct Catalog {
    store: Store,
    warehouse: &'static str,
    dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT/iceberg`
    uri: String,
    _server: Running,
}

impl Catalog {
    fn start() -> Catalog {
        Catalog::start_with("")
    }

    /// The catalog, with `more` appended to its config file.
    fn start_with(more: &str) -> Catalog {
        let moto = S3Server::moto();
        moto.create_bucket("lake");
        Catalog::start_on(Store::S3(moto), WAREHOUSE, more)
    }

    /// The catalog with its warehouse in `store`, at `warehouse`.
    fn start_on(store: Store, warehouse: &'static str, more: &str) -> Catalog {
        let dir = tempfile::tempdir().unwrap();
        let hash = hash_password(dir.path(), PASSWORD);
        let config = dir.path().join("floe.toml");
        let text = format!(
            "[server]\npg_addr = \"127.0.0.1:0\"\nhttp_addr = \"127.0.0.1:0\"\nflight_addr = \"127.0.0.1:0\"\n\n\
             [[users]]\nname = \"writer\"\npassword_hash = \"{hash}\"\n\n[[grants]]\nto = \"writer\"\non = \"*\"\nwrite = true\n{more}"
        );
        std::fs::write(&config, text).unwrap();
        let config = config.display().to_string();
        let args = ["--warehouse", warehouse, "serve", "--config", &config, "--metrics-addr", "127.0.0.1:0", "--schedule", "0 0 3 1 1 *"];
        let mut server = Running::start_with_env(dir.path(), "serve", &args, &store.env());
        let http = server.wait_for_line("HTTP on ", Duration::from_secs(60));
        let uri = format!("{}/iceberg", http.split("HTTP on ").nth(1).unwrap().trim());
        Catalog { store, warehouse, dir, uri, _server: server }
    }

    fn moto(&self) -> &S3Server {
        match &self.store {
            Store::S3(moto) => moto,
            Store::Azure(_) => panic!("this catalog's warehouse is in Azurite"),
        }
    }

    /// `floe` on a data dir of its own, a client of this catalog.
    fn client(&self, dir: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_floe"));
        command.args(["--data-dir", &dir.display().to_string(), "--catalog-url", &self.uri]).args(args);
        command.envs(self.store.env()).env("FLOE_CATALOG_CREDENTIAL", format!("writer:{PASSWORD}"));
        command
    }

    /// `floe sql` on the catalog's own data dir (its embedded catalog, the bucket's files).
    fn sql(&self, query: &str) -> Vec<Value> {
        let out = self.sql_command(query).output().unwrap();
        assert!(out.status.success(), "{query}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `floe sql` of `query` on the catalog's own data dir, with the store's own credentials.
    fn sql_command(&self, query: &str) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_floe"));
        command.args(["--data-dir", &self.dir.path().display().to_string(), "--warehouse", self.warehouse]);
        command.args(["sql", query, "--format", "json"]).envs(self.store.env());
        command
    }

    fn rows(&self, table: &str) -> i64 {
        self.sql(&format!("SELECT count(*) AS n FROM {table}"))[0]["n"].as_i64().unwrap()
    }
}

/// The object store a catalog's warehouse is in.
enum Store {
    S3(S3Server),
    Azure(Emulator),
}

impl Store {
    /// The environment that reaches the store with its own credentials.
    fn env(&self) -> Vec<(&'static str, String)> {
        match self {
            Store::S3(moto) => moto.env(),
            Store::Azure(azurite) => azurite.azurite_env(),
        }
    }
}

fn capture() -> String {
    repo_root().join("tests/captures/evolution-s1/events.jsonl").display().to_string()
}

/// Rows per table when the capture is ingested once, alone, into a local data dir.
fn rows_of_one_ingest() -> BTreeMap<String, i64> {
    let dir = tempfile::tempdir().unwrap();
    assert!(floe(dir.path(), &["ingest", &capture()]).status.success());
    ["depot.parts", "depot.bins", "depot.moves"]
        .into_iter()
        .map(|t| (t.to_string(), floe_sql(dir.path(), &format!("SELECT count(*) AS n FROM {t}"))[0]["n"].as_i64().unwrap()))
        .collect()
}

/// Runs `floe ingest` of the capture in two processes at once, each on its own data dir, with
/// source names `names`; returns their outputs.
fn ingest_twice_at_once(catalog: &Catalog, names: [&str; 2]) -> Vec<Output> {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let children: Vec<_> = dirs
        .iter()
        .zip(names)
        .map(|(dir, name)| {
            // Many commits, so the two writers interleave.
            let config = batch_config(dir.path(), 3);
            let args = ["ingest", &capture(), "--config", &config, "--source-name", name];
            catalog.client(dir.path(), &args).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap()
        })
        .collect();
    children.into_iter().map(|child| child.wait_with_output().unwrap()).collect()
}

fn log_of(outputs: &[Output]) -> String {
    outputs.iter().map(|o| format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))).collect()
}

#[test]
fn two_processes_reading_one_source_through_one_rest_catalog_land_every_change_once() {
    let catalog = Catalog::start();
    let outputs = ingest_twice_at_once(&catalog, ["capture", "capture"]);
    let mut log = log_of(&outputs);
    // Whichever writer commits a position first holds it. The other's batch is fenced: that
    // table is left, uncommitted, to the writer's next run, which says so and fails.
    for output in &outputs {
        let fenced = String::from_utf8_lossy(&output.stderr).contains("were committed by another writer");
        assert!(output.status.success() || fenced, "{log}");
    }
    let next_run = tempfile::tempdir().unwrap();
    let again = catalog.client(next_run.path(), &["ingest", &capture(), "--source-name", "capture"]).output().unwrap();
    log += &log_of(std::slice::from_ref(&again));
    assert!(again.status.success(), "the next run takes up what a fenced writer left\n{log}");

    for (table, rows) in rows_of_one_ingest() {
        assert_eq!(catalog.rows(&table), rows, "{table}: each change once\n{log}");
        let twice = catalog.sql(&format!("SELECT _src_partition, _src_offset FROM {table} GROUP BY 1, 2 HAVING count(*) > 1"));
        assert!(twice.is_empty(), "{table}: positions appended twice: {twice:?}\n{log}");
    }
    for table in ["parts", "bins", "moves"] {
        let truth = read_json(&repo_root().join(format!("tests/captures/evolution-s1/truth_{table}.json")));
        let latest = catalog.sql(&format!("SELECT * FROM depot.{table}_latest"));
        assert_eq!(latest.len(), truth.len(), "depot.{table}_latest holds one row per key of the truth");
    }
    assert!(
        catalog.moto().keys("lake", "floe/depot/parts/data/").iter().any(|k| k.ends_with(".parquet")),
        "the clients wrote to the bucket"
    );
    assert!(!catalog.dir.path().join("warehouse").exists(), "no table file on the catalog's disk");
}

#[test]
fn two_processes_appending_to_one_table_through_one_rest_catalog_both_land() {
    let catalog = Catalog::start();
    let outputs = ingest_twice_at_once(&catalog, ["east", "west"]);
    let log = log_of(&outputs);
    assert!(outputs.iter().all(|o| o.status.success()), "{log}");
    // Two sources: every row twice, one of each, however the commits interleaved.
    for (table, rows) in rows_of_one_ingest() {
        assert_eq!(catalog.rows(&table), 2 * rows, "{table}\n{log}");
    }
}

#[test]
fn a_wrong_password_or_warehouse_is_a_clear_error_naming_the_catalog() {
    let catalog = Catalog::start();
    let dir = tempfile::tempdir().unwrap();
    let out = catalog.client(dir.path(), &["tables"]).env("FLOE_CATALOG_CREDENTIAL", "writer:wrong").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(&catalog.uri) && stderr.contains("401") && stderr.contains("wrong password"), "{stderr}");

    // A catalog of several warehouses is told which one; floe's serves one and names it.
    let out = catalog.client(dir.path(), &["--catalog-warehouse", "marketing", "tables"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("404") && stderr.contains("serves one warehouse, s3://lake/floe, not marketing"), "{stderr}");
    let out = catalog.client(dir.path(), &["--catalog-warehouse", WAREHOUSE, "tables"]).output().unwrap();
    assert!(out.status.success(), "its own warehouse: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn clients_read_and_write_with_the_storage_keys_the_catalog_vends_not_their_own() {
    let hash = hash_password(tempfile::tempdir().unwrap().path(), PASSWORD);
    let keys = |set: &str, id: &str| {
        format!("[server.vended_credentials.{set}]\n\"s3.access-key-id\" = \"{id}\"\n\"s3.secret-access-key\" = \"s\"\n")
    };
    let reader = format!("[[users]]\nname = \"reader\"\npassword_hash = \"{hash}\"\n[[grants]]\nto = \"reader\"\non = \"*\"\n");
    let catalog = Catalog::start_with(&format!("{}{}{reader}", keys("read", "vended-reader"), keys("write", "vended-writer")));
    // The client reaches the bucket through a proxy that notes which key signed each request.
    let proxy = common::faulty_proxy::FaultyProxy::start(&catalog.moto().endpoint, 0, 1);
    let dir = tempfile::tempdir().unwrap();
    let out = catalog
        .client(dir.path(), &["ingest", &capture()])
        .env("AWS_ENDPOINT_URL", &proxy.endpoint)
        .env("AWS_ACCESS_KEY_ID", "client-own")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let keys = proxy.access_keys();
    assert_eq!(keys.keys().collect::<Vec<_>>(), ["vended-writer"], "every request of the writer with the write keys: {keys:?}");
    assert!(keys["vended-writer"] > 3, "{keys:?}");
    let expected = rows_of_one_ingest();
    for (table, rows) in &expected {
        assert_eq!(catalog.rows(table), *rows, "{table}");
    }

    // PyIceberg, as a user who may only read, gets the read keys and reads with them.
    proxy.reset_counts();
    let endpoint = format!("s3.endpoint={}", proxy.endpoint);
    let env = [
        ("AWS_ACCESS_KEY_ID", "client-own"),
        ("AWS_SECRET_ACCESS_KEY", "x"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    let read = run_python_json_with("rest_catalog.py", &[&catalog.uri, "reader", PASSWORD, "depot.parts", &endpoint], &env);
    assert_eq!(read["rows"], expected["depot.parts"], "{read}");
    let keys = proxy.access_keys();
    assert_eq!(keys.keys().collect::<Vec<_>>(), ["vended-reader"], "every read with the read keys: {keys:?}");
}

#[test]
fn a_writer_reaches_azure_storage_with_the_sas_token_the_catalog_vends_not_its_own_key() {
    let azurite = Emulator::azurite();
    azurite.create_container("lake");
    let sas = azurite.account_sas();
    let vended = format!("[server.vended_credentials.write]\n\"adls.sas-token.devstoreaccount1\" = \"{sas}\"\n");
    let catalog = Catalog::start_on(Store::Azure(azurite), "az://lake/floe", &vended);
    // A well-formed key that is not the account's: Azurite refuses whatever it signs.
    let wrong_key = "d3Jvbmcga2V5IHdyb25nIGtleSB3cm9uZyBrZXkgd3Jvbmcga2V5IHdyb25nIGtleSB3cm9uZyBrZXk=";
    let dir = tempfile::tempdir().unwrap();
    let out = catalog.client(dir.path(), &["ingest", &capture()]).env("AZURE_STORAGE_ACCOUNT_KEY", wrong_key).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for (table, rows) in rows_of_one_ingest() {
        assert_eq!(catalog.rows(&table), rows, "{table}");
    }
    // The key alone, without the catalog's token, is refused: the token did the writing.
    let refused = catalog.sql_command("SELECT count(*) FROM depot.parts").env("AZURE_STORAGE_ACCOUNT_KEY", wrong_key).output().unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("403"), "the wrong key reads nothing: {stderr}");
}

#[tokio::test]
async fn a_transaction_through_the_rest_catalog_commits_to_several_tables_or_none() {
    use floe_catalog::rest::{Credential, RestCatalog, RestOptions};
    let catalog = Catalog::start();
    let storage = [("s3.endpoint", catalog.moto().endpoint.as_str()), ("s3.region", "us-east-1")]
        .into_iter()
        .chain([("s3.access-key-id", "testing"), ("s3.secret-access-key", "testing")])
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let credential = Credential::Client { id: "writer".into(), secret: PASSWORD.into() };
    let client = RestCatalog::open(&catalog.uri, RestOptions { credential, storage, ..Default::default() }).await.unwrap();
    floe_catalog::testing::assert_multi_table_commits_are_all_or_none(&client).await;
}
