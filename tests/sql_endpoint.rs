//! `floe serve` as a SQL server, driven by clients no one here wrote: psql and psycopg 3 over the
//! PostgreSQL wire protocol, curl and pyarrow over HTTP. The data is a real Debezium capture; the
//! views must equal PostgreSQL's own final state.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::process::Running;
use common::*;
use serde_json::{json, Value};

const PASSWORD: &str = "pencil";

/// A data dir holding the evolution capture, served on a free port to four users with one
/// password: `analyst` (granted everything), `intern` (granted `sku` and `qty` of depot.parts),
/// `outsider` (granted nothing) and `etl` (granted writing namespace `scratch`).
struct Served {
    dir: tempfile::TempDir,
    server: Option<Running>,
    port: u16,
    http: String,
    /// `grpc://host:port` of the Flight SQL endpoint.
    flight: String,
}

impl Served {
    fn start() -> Served {
        Served::start_with("")
    }

    /// As [`Served::start`], with more `[server]` settings.
    fn start_with(server_settings: &str) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let events = repo_root().join("tests/captures/evolution-s1/events.jsonl");
        assert!(floe(dir.path(), &["ingest", &events.display().to_string()]).status.success());
        let hash = hash_password(dir.path(), PASSWORD);
        let config = dir.path().join("floe.toml");
        let user = |name: &str, roles: &str| format!("[[users]]\nname = \"{name}\"\npassword_hash = \"{hash}\"\nroles = [{roles}]\n");
        let text = [
            format!("[server]\npg_addr = \"127.0.0.1:0\"\nhttp_addr = \"127.0.0.1:0\"\nflight_addr = \"127.0.0.1:0\"\n{server_settings}"),
            user("analyst", "\"bi\""),
            user("intern", ""),
            user("outsider", ""),
            user("etl", ""),
            "[[grants]]\nto = \"bi\"\non = \"*\"\n".to_string(),
            "[[grants]]\nto = \"etl\"\non = \"scratch.*\"\nwrite = true\n".to_string(),
            "[[grants]]\nto = \"intern\"\non = \"depot.parts\"\ncolumns = [\"sku\", \"qty\"]\n".to_string(),
        ]
        .join("\n");
        std::fs::write(&config, text).unwrap();
        // Compaction at 03:00 on 1 January: not during the test.
        let args = ["serve", "--config", &config.display().to_string(), "--metrics-addr", "127.0.0.1:0", "--schedule", "0 0 3 1 1 *"];
        let mut server = Running::start(dir.path(), "serve", &args);
        let line = server.wait_for_line("Postgres wire on", Duration::from_secs(60));
        let address = line.split("wire on ").nth(1).and_then(|rest| rest.split_whitespace().next()).unwrap_or_default();
        let port = address.rsplit(':').next().unwrap().parse().unwrap_or_else(|_| panic!("no port in {line:?}"));
        let http = server.wait_for_line("HTTP on ", Duration::from_secs(10));
        let http = http.split("HTTP on ").nth(1).unwrap().trim().to_string();
        let flight = server.wait_for_line("Flight SQL on ", Duration::from_secs(10));
        let flight = flight.split("Flight SQL on ").nth(1).unwrap().trim().to_string();
        Served { dir, server: Some(server), port, http, flight }
    }

    fn psql_as(&self, user: &str, password: &str, command: &str) -> Output {
        Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", user, "-d", "floe", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(["-c", command])
            .env("PGPASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .expect("psql runs (PostgreSQL's client; .ci/test installs it)")
    }

    /// psql's unaligned, tuples-only output of `command` as `analyst`.
    fn psql(&self, command: &str) -> String {
        let out = self.psql_as("analyst", PASSWORD, command);
        let log = self.server.as_ref().map(Running::log).unwrap_or_default();
        assert!(out.status.success(), "psql -c {command:?}: {}\nserver log:\n{log}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    fn psycopg(&self, sql: &str, params: &[&str]) -> Value {
        self.psycopg_as("analyst", sql, params)
    }

    fn psycopg_as(&self, user: &str, sql: &str, params: &[&str]) -> Value {
        let port = self.port.to_string();
        let mut args = vec![port.as_str(), user, PASSWORD, sql];
        args.extend(params);
        run_python_json("pg_query.py", &args)
    }
}

impl Served {
    /// `curl` of `path` as `user` (with the common password; `None`: no credentials):
    /// (HTTP status, body).
    fn curl(&self, user: Option<&str>, path: &str, extra: &[&str]) -> (u16, String) {
        let mut command = Command::new("curl");
        command.args(["-s", "-w", "\n%{http_code}"]).args(extra).arg(format!("{}{path}", self.http));
        if let Some(user) = user {
            command.args(["-u", &format!("{user}:{PASSWORD}")]);
        }
        let out = command.output().expect("curl runs");
        let text = String::from_utf8(out.stdout).unwrap();
        let (body, status) = text.rsplit_once('\n').unwrap();
        (status.parse().unwrap(), body.to_string())
    }

    /// Asserts that `/metrics` counts `endpoint`'s queries and the rows they returned.
    fn assert_counted(&self, endpoint: &str) {
        let (_, metrics) = self.curl(None, "/metrics", &[]);
        let value = |name: &str| {
            let line = metrics.lines().find(|l| l.starts_with(name) && l.contains(&format!("endpoint=\"{endpoint}\"")));
            line.and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).unwrap_or(0.0)
        };
        assert!(value("floe_sql_queries_total") > 0.0 && value("floe_sql_rows_total") > 0.0, "{endpoint}:\n{metrics}");
    }

    /// `POST /sql` with `query`, accepting `accept`.
    fn post_sql(&self, user: &str, query: &str, accept: &str) -> (u16, String) {
        self.curl(Some(user), "/sql", &["-X", "POST", "--data-binary", query, "-H", &format!("Accept: {accept}")])
    }
}

impl Served {
    /// What the ADBC Flight SQL driver answers `request` (`query SQL [PARAM…]`, `objects`,
    /// `schema SCHEMA TABLE`; see tests/py/flight_query.py) as `user`.
    fn adbc(&self, user: &str, password: &str, request: &[&str]) -> Value {
        self.adbc_trusting(None, user, password, request)
    }

    /// As [`Served::adbc`], trusting the certificate at `cert` (a TLS server's).
    fn adbc_trusting(&self, cert: Option<&str>, user: &str, password: &str, request: &[&str]) -> Value {
        let mut args = vec![self.flight.as_str(), user, password];
        args.extend(request);
        let env: Vec<(&str, &str)> = cert.map(|c| ("FLOE_TLS_ROOT_CERTS", c)).into_iter().collect();
        run_python_json_with("flight_query.py", &args, &env)
    }

    /// pgjdbc's answers (tests/java/JdbcProbe.java) as `user`, looking up `sku`: its lines.
    fn jdbc(&self, user: &str, password: &str, sku: &str) -> Vec<String> {
        let url = format!("jdbc:postgresql://127.0.0.1:{}/floe", self.port);
        let probe = repo_root().join("tests/java/JdbcProbe.java");
        let out = Command::new("java")
            .args(["-cp", "/usr/share/java/postgresql.jar", &probe.display().to_string(), &url, user, password, sku])
            .output()
            .expect("java runs (Java 17; .ci/test installs pgjdbc)");
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(stdout.contains("done ok="), "JdbcProbe did not finish:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        stdout.lines().map(str::to_string).collect()
    }

    /// node-postgres' answers (tests/js/pg_query.js) as `user`, looking up `sku`: one JSON
    /// object per step.
    fn node_pg(&self, user: &str, password: &str, sku: &str) -> Vec<Value> {
        let script = repo_root().join("tests/js/pg_query.js");
        let port = self.port.to_string();
        let out = Command::new("node")
            .args([&script.display().to_string(), "127.0.0.1", &port, user, password, "floe", sku])
            .output()
            .expect("node runs (.ci/test installs node-postgres in tests/js)");
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(stdout.contains("\"done\""), "pg_query.js did not finish:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop();
        }
    }
}

fn truth(table: &str) -> Vec<Value> {
    read_json(&repo_root().join(format!("tests/captures/evolution-s1/truth_{table}.json")))
}

#[test]
fn psql_reads_the_latest_views_and_lists_what_is_there() {
    let served = Served::start();
    for table in ["parts", "bins", "moves"] {
        let count = served.psql(&format!("SELECT count(*) FROM depot.{table}_latest"));
        assert_eq!(count.trim(), truth(table).len().to_string(), "depot.{table}_latest");
    }
    let qty = served.psql("SELECT qty FROM depot.parts_latest WHERE sku = 'P-200'");
    let expected = truth("parts").iter().find(|r| r["sku"] == "P-200").unwrap()["qty"].clone();
    assert_eq!(qty.trim(), expected.to_string());

    let tables = served.psql("\\dt depot.*");
    for table in ["parts", "bins", "moves"] {
        assert!(tables.lines().any(|l| l.contains(&format!("|{table}|"))), "\\dt lists depot.{table}:\n{tables}");
    }
    let columns = served.psql("\\d depot.parts");
    for column in ["sku", "qty", "price", "_op_ts"] {
        assert!(columns.lines().any(|l| l.starts_with(&format!("{column}|"))), "\\d depot.parts shows {column}:\n{columns}");
    }
    let views = served.psql("\\dv depot.*");
    assert!(views.lines().any(|l| l.contains("|parts_latest|view|")), "\\dv lists the latest views:\n{views}");
    assert!(served.psql("\\dn").lines().any(|l| l.starts_with("depot|")), "\\dn lists depot");

    let file = served.dir.path().join("parts.csv");
    served.psql(&format!("\\copy (SELECT sku, qty FROM depot.parts_latest ORDER BY sku) to '{}' csv header", file.display()));
    let copied = std::fs::read_to_string(&file).unwrap();
    let mut expected: Vec<String> = truth("parts").iter().map(|r| format!("{},{}", r["sku"].as_str().unwrap(), r["qty"])).collect();
    expected.sort();
    assert_eq!(copied.lines().collect::<Vec<_>>(), [vec!["sku,qty".to_string()], expected].concat(), "\\copy to a file");
    served.assert_counted("pg");
}

#[test]
fn psycopg_runs_a_parameterised_query() {
    let served = Served::start();
    let result = served.psycopg("SELECT sku, qty FROM depot.parts_latest WHERE sku = %s", &["P-200"]);
    let expected = truth("parts").iter().find(|r| r["sku"] == "P-200").unwrap()["qty"].clone();
    assert_eq!(result["rows"], serde_json::json!([["P-200", expected]]), "{result}");
    let bins = served.psycopg("SELECT count(*) AS n FROM depot.bins_latest WHERE bin_id > %s", &["0"]);
    assert_eq!(bins["rows"][0][0], truth("bins").len(), "{bins}");
}

#[test]
fn sqlalchemys_inspector_lists_schemas_tables_views_columns_and_keys() {
    let served = Served::start();
    let port = served.port.to_string();
    let seen = run_python_json("sqlalchemy_inspect.py", &[&port, "analyst", PASSWORD, "depot", "parts_latest"]);
    // As PostgreSQL's own: every schema but pg_catalog's.
    assert_eq!(seen["schemas"], serde_json::json!(["depot", "information_schema"]), "{seen}");
    assert_eq!(seen["tables"], serde_json::json!(["bins", "moves", "parts"]), "{seen}");
    assert_eq!(seen["views"], serde_json::json!(["bins_latest", "moves_latest", "parts_latest"]), "{seen}");
    let columns = seen["columns"].as_array().unwrap();
    for column in [serde_json::json!(["sku", "TEXT", false]), serde_json::json!(["qty", "BIGINT", true])] {
        assert!(columns.contains(&column), "{column} in {seen}");
    }
    let price = columns.iter().find(|c| c[0] == "price").unwrap_or_else(|| panic!("price in {seen}"));
    assert!(price[1].as_str().unwrap().starts_with("NUMERIC("), "a decimal keeps its precision and scale: {price}");
    assert_eq!(seen["primary_key"], serde_json::json!(["sku"]), "{seen}");
    let version = served.psql("SELECT version()");
    assert!(version.starts_with("PostgreSQL 16.6 (floe "), "drivers parse the version: {version}");
}

#[test]
fn a_wrong_password_or_an_unknown_user_is_refused() {
    let served = Served::start();
    for (user, password) in [("analyst", "wrong"), ("nobody", PASSWORD)] {
        let out = served.psql_as(user, password, "SELECT 1");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{user}/{password} got in");
        assert!(stderr.to_lowercase().contains("password authentication failed"), "{stderr}");
    }
}

#[test]
fn the_endpoint_is_read_only() {
    let served = Served::start();
    let stolen = served.dir.path().join("copied.csv");
    // Refused by the read-only check; PostgreSQL's grammar does not even parse DataFusion's
    // CREATE EXTERNAL TABLE.
    let refused = "floe's SQL endpoint is read-only";
    for (statement, says) in [
        ("CREATE TABLE depot.copy AS SELECT * FROM depot.parts".to_string(), refused),
        (format!("COPY (SELECT * FROM depot.parts) TO '{}'", stolen.display()), refused),
        // Its catalog lookup is rewritten, and the rewrite does not plan: the original is judged.
        (format!("COPY (SELECT (SELECT relname FROM pg_catalog.pg_class ORDER BY relname LIMIT 1)) TO '{}'", stolen.display()), refused),
        ("INSERT INTO depot.parts (sku) VALUES ('x')".to_string(), refused),
        ("DROP VIEW depot.parts_latest".to_string(), refused),
        ("CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'".to_string(), "sql parser error"),
    ] {
        let out = served.psql_as("analyst", PASSWORD, &statement);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(says), "{statement}: {stderr}");
    }
    assert!(!stolen.exists(), "COPY wrote a file on the server");
    assert_eq!(
        served.psql("SELECT count(*) FROM depot.parts").trim(),
        floe_sql(served.dir.path(), "SELECT count(*) AS n FROM depot.parts")[0]["n"].to_string()
    );
}

#[test]
fn a_table_created_while_serving_is_readable_and_listed_without_a_restart() {
    let served = Served::start();
    assert_eq!(served.psql("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'lab'").trim(), "0");
    let events = repo_root().join("tests/captures/types-s1/events.jsonl");
    assert!(floe(served.dir.path(), &["ingest", &events.display().to_string()]).status.success());
    let expected = floe_sql(served.dir.path(), "SELECT count(*) AS n FROM lab.samples_latest")[0]["n"].to_string();
    assert_eq!(served.psql("SELECT count(*) FROM lab.samples_latest").trim(), expected);
    std::thread::sleep(Duration::from_millis(1100)); // listings are renewed at most every second
    let listed = served.psql("SELECT table_name FROM information_schema.tables WHERE table_schema = 'lab' ORDER BY 1");
    assert_eq!(listed.lines().collect::<Vec<_>>(), vec!["samples", "samples_latest"]);
}

#[test]
fn a_user_reads_only_what_is_granted_down_to_columns_however_the_query_is_written() {
    let served = Served::start();
    let denied = |user: &str, query: &str, says: &str| {
        let out = served.psql_as(user, PASSWORD, query);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(says), "{user}: {query}: {stderr}");
    };
    // intern: sku and qty of depot.parts (and floe's own columns), nothing else.
    let result = served.psycopg_as("intern", "SELECT * FROM depot.parts_latest WHERE sku = %s", &["P-200"]);
    let columns: Vec<&str> = result["columns"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    assert_eq!(columns, ["sku", "qty", "_op_ts"], "{result}");
    let raw = served.psycopg_as("intern", "SELECT * FROM depot.parts LIMIT 1", &[]);
    assert!(
        raw["columns"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| ["sku", "qty"].contains(&c.as_str().unwrap()) || c.as_str().unwrap().starts_with('_')),
        "{raw}"
    );
    let listed = served.psql_as("intern", PASSWORD, "SELECT column_name FROM information_schema.columns WHERE table_name = 'parts'");
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(listed.contains("sku") && !listed.contains("price") && !listed.contains("weight_kg"), "{listed}");
    let described = served.psql_as("intern", PASSWORD, "\\d depot.parts");
    let described = String::from_utf8_lossy(&described.stdout).to_string();
    assert!(described.contains("qty") && !described.contains("price"), "{described}");
    let tables = served.psql_as("intern", PASSWORD, "\\dt depot.*");
    let tables = String::from_utf8_lossy(&tables.stdout).to_string();
    assert!(tables.contains("|parts|") && !tables.contains("|bins|"), "{tables}");
    denied("intern", "SELECT price FROM depot.parts", "price");
    let bins = "permission denied for table depot.bins";
    denied("intern", "SELECT count(*) FROM depot.bins", bins);
    denied("intern", "SELECT count(*) FROM depot.bins_latest", bins);
    denied("intern", "SELECT p.sku FROM depot.parts p JOIN depot.bins b ON p.qty = b.capacity", bins);
    denied("intern", "WITH b AS (SELECT * FROM depot.bins) SELECT count(*) FROM b", bins);
    denied("intern", "SELECT sku FROM depot.parts WHERE qty IN (SELECT capacity FROM depot.bins)", bins);
    // outsider: nothing, not even the names.
    denied("outsider", "SELECT count(*) FROM depot.parts", "permission denied for table depot.parts");
    let names = served.psql_as("outsider", PASSWORD, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'depot'");
    assert_eq!(String::from_utf8_lossy(&names.stdout).trim(), "0");
}

#[test]
fn http_answers_in_every_format_to_users_with_what_their_grants_give() {
    let served = Served::start();
    assert_eq!(served.curl(None, "/health", &[]), (200, "ok\n".to_string()));
    let parts = truth("parts").len();

    let (status, body) = served.post_sql("analyst", "SELECT count(*) AS n FROM depot.parts_latest", "application/json");
    assert_eq!((status, body.trim()), (200, format!("[{{\"n\":{parts}}}]").as_str()));
    let (status, csv) = served.post_sql("analyst", "SELECT sku, qty FROM depot.parts_latest ORDER BY sku", "text/csv");
    assert_eq!(status, 200, "{csv}");
    assert_eq!(csv.lines().next(), Some("sku,qty"));
    assert_eq!(csv.lines().count(), parts + 1, "{csv}");
    let (status, ndjson) = served.post_sql("analyst", "SELECT sku FROM depot.parts_latest", "application/x-ndjson");
    assert_eq!((status, ndjson.lines().count()), (200, parts), "{ndjson}");
    let formats = run_python_json("http_formats.py", &[&served.http, "analyst", PASSWORD, "SELECT sku, qty FROM depot.parts_latest"]);
    for format in ["arrow", "parquet"] {
        assert_eq!(formats[format]["rows"], parts, "{formats}");
        assert_eq!(formats[format]["columns"], serde_json::json!(["sku", "qty"]), "{formats}");
    }

    assert_eq!(served.curl(None, "/tables", &[]).0, 401);
    assert_eq!(served.curl(Some("nobody"), "/tables", &[]).0, 401);
    let (status, refused) = served.post_sql("analyst", "CREATE TABLE depot.copy AS SELECT * FROM depot.parts", "application/json");
    assert_eq!(status, 403, "{refused}");
    assert!(refused.contains("read-only"), "{refused}");

    let (status, tables) = served.curl(Some("intern"), "/tables", &[]);
    let tables: Value = serde_json::from_str(&tables).unwrap();
    assert_eq!(status, 200);
    let names: Vec<&str> = tables.as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["parts", "parts_latest"], "{tables}");
    let (status, schema) = served.curl(Some("intern"), "/tables/depot.parts_latest/schema", &[]);
    assert_eq!(status, 200, "{schema}");
    assert!(schema.contains("\"qty\"") && !schema.contains("price"), "{schema}");
    let (status, denied) = served.post_sql("intern", "SELECT count(*) FROM depot.bins", "application/json");
    assert_eq!(status, 403, "{denied}");
    assert!(denied.contains("permission denied for table depot.bins"), "{denied}");

    let (status, metrics) = served.curl(None, "/metrics", &[]);
    assert_eq!(status, 200);
    assert!(metrics.contains("floe_sql_queries_total{endpoint=\"http\",outcome=\"ok\"}"), "{metrics}");
}

#[test]
fn a_query_over_its_time_is_cancelled_over_every_protocol() {
    let served = Served::start_with("query_timeout = \"1ms\"\n");
    let slow = "SELECT count(*) FROM depot.parts_latest a CROSS JOIN depot.parts_latest b CROSS JOIN depot.moves c";
    let (status, body) = served.post_sql("analyst", slow, "application/json");
    assert_eq!(status, 408, "{body}");
    assert!(body.contains("query_timeout"), "{body}");
    let flight = served.adbc("analyst", PASSWORD, &["query", slow]);
    assert!(flight["error"].as_str().is_some_and(|e| e.contains("query_timeout")), "{flight}");
    let psql = served.psql_as("analyst", PASSWORD, slow);
    assert!(!psql.status.success(), "{}", String::from_utf8_lossy(&psql.stdout));
    assert!(String::from_utf8_lossy(&psql.stderr).contains("query_timeout"), "{}", String::from_utf8_lossy(&psql.stderr));
}

fn qty_of(sku: &str) -> Value {
    truth("parts").iter().find(|r| r["sku"] == sku).unwrap()["qty"].clone()
}

#[test]
fn adbc_fetches_views_as_arrow_binds_parameters_and_lists_tables() {
    let served = Served::start();
    for table in ["parts", "bins", "moves"] {
        let answer = served.adbc("analyst", PASSWORD, &["query", &format!("SELECT count(*) AS n FROM depot.{table}_latest")]);
        assert_eq!(answer["rows"][0][0], truth(table).len(), "depot.{table}_latest: {answer}");
    }
    let skus = served.adbc("analyst", PASSWORD, &["query", "SELECT sku FROM depot.parts_latest ORDER BY sku"]);
    let mut expected: Vec<Value> = truth("parts").iter().map(|r| serde_json::json!([r["sku"]])).collect();
    expected.sort_by_key(|v| v[0].as_str().unwrap().to_string());
    assert_eq!(skus["rows"], Value::Array(expected), "{skus}");
    // JDBC's and ODBC's `?` placeholders, and Python's int bound to an int64 column.
    let bound = served.adbc("analyst", PASSWORD, &["query", "SELECT sku, qty FROM depot.parts_latest WHERE sku = ?", "P-200"]);
    assert_eq!(bound["rows"], serde_json::json!([["P-200", qty_of("P-200")]]), "{bound}");
    let by_qty = served.adbc("analyst", PASSWORD, &["query", "SELECT count(*) FROM depot.parts_latest WHERE qty > $1", "0"]);
    assert!(by_qty["rows"][0][0].as_i64().is_some_and(|n| n > 0), "{by_qty}");

    let objects = served.adbc("analyst", PASSWORD, &["objects"]);
    assert_eq!(objects["catalogs"], serde_json::json!(["floe"]), "{objects}");
    let relations = ["bins", "bins_latest", "moves", "moves_latest", "parts", "parts_latest"];
    let expected: Vec<Value> =
        relations.iter().map(|r| serde_json::json!(["depot", r, if r.ends_with("_latest") { "VIEW" } else { "TABLE" }])).collect();
    assert_eq!(objects["tables"], Value::Array(expected), "{objects}");
    let schema = served.adbc("analyst", PASSWORD, &["schema", "depot", "parts_latest"]);
    for column in ["sku", "qty", "price", "_op_ts"] {
        assert!(schema["columns"].as_array().unwrap().iter().any(|c| c == column), "{column}: {schema}");
    }
    served.assert_counted("flight");
}

#[test]
fn flight_sql_refuses_wrong_passwords_ungranted_tables_hidden_columns_and_writes() {
    let served = Served::start();
    let error = |answer: Value| answer["error"].as_str().map(str::to_string).unwrap_or_else(|| panic!("an error: {answer}"));
    assert!(error(served.adbc("analyst", "wrong", &["objects"])).contains("UNAUTHENTICATED"));
    assert!(error(served.adbc("nobody", PASSWORD, &["objects"])).contains("UNAUTHENTICATED"));
    let write = error(served.adbc("analyst", PASSWORD, &["query", "CREATE TABLE depot.x AS SELECT 1"]));
    assert!(write.contains("read-only"), "{write}");

    // intern: sku and qty of depot.parts (and floe's own columns), nothing else.
    let star = served.adbc("intern", PASSWORD, &["query", "SELECT * FROM depot.parts_latest"]);
    assert_eq!(star["columns"], serde_json::json!(["sku", "qty", "_op_ts"]), "{star}");
    let schema = served.adbc("intern", PASSWORD, &["schema", "depot", "parts"]);
    assert!(!schema["columns"].as_array().unwrap().iter().any(|c| c == "price"), "{schema}");
    let objects = served.adbc("intern", PASSWORD, &["objects"]);
    assert_eq!(objects["tables"], serde_json::json!([["depot", "parts", "TABLE"], ["depot", "parts_latest", "VIEW"]]));
    assert!(error(served.adbc("intern", PASSWORD, &["query", "SELECT price FROM depot.parts"])).contains("price"));
    let join = "SELECT p.sku FROM depot.parts p JOIN depot.bins b ON p.qty = b.capacity";
    assert!(error(served.adbc("intern", PASSWORD, &["query", join])).contains("permission denied for table depot.bins"));
    // outsider: nothing, not even the names.
    assert_eq!(served.adbc("outsider", PASSWORD, &["objects"])["tables"], serde_json::json!([]));
    let parts = error(served.adbc("outsider", PASSWORD, &["query", "SELECT count(*) FROM depot.parts"]));
    assert!(parts.contains("permission denied for table depot.parts"), "{parts}");
}

/// A self-signed certificate for 127.0.0.1 and its key, made by openssl: (cert, key) paths.
fn self_signed_certificate(dir: &Path) -> (String, String) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    (cert.display().to_string(), key.display().to_string())
}

#[test]
fn with_a_certificate_every_endpoint_speaks_tls_and_clients_verify_it() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_certificate(certs.path());
    let served = Served::start_with(&format!("tls_cert = \"{cert}\"\ntls_key = \"{key}\"\n"));

    let psql = |mode: &str| {
        Command::new("psql")
            .arg(format!("host=127.0.0.1 port={} user=analyst dbname=floe sslmode={mode} sslrootcert={cert}", served.port))
            .args(["-X", "-A", "-t", "-c", "SELECT count(*) FROM depot.parts_latest"])
            .env("PGPASSWORD", PASSWORD)
            .output()
            .expect("psql runs")
    };
    let verified = psql("verify-full");
    assert!(verified.status.success(), "psql over TLS: {}", String::from_utf8_lossy(&verified.stderr));
    assert_eq!(String::from_utf8_lossy(&verified.stdout).trim(), truth("parts").len().to_string());

    assert!(served.http.starts_with("https://"), "{}", served.http);
    let health = Command::new("curl").args(["-s", "--cacert", &cert, &format!("{}/health", served.http)]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&health.stdout), "ok\n", "curl over TLS: {}", String::from_utf8_lossy(&health.stderr));
    let plain = served.http.replace("https://", "http://");
    let refused = Command::new("curl").args(["-s", "-m", "5", &format!("{plain}/health")]).output().unwrap();
    assert_ne!(String::from_utf8_lossy(&refused.stdout), "ok\n", "plain HTTP is not served beside TLS");

    assert!(served.flight.starts_with("grpc+tls://"), "{}", served.flight);
    let count = served.adbc_trusting(Some(&cert), "analyst", PASSWORD, &["query", "SELECT count(*) FROM depot.parts_latest"]);
    assert_eq!(count["rows"][0][0], truth("parts").len(), "ADBC over TLS: {count}");
    let untrusted = served.adbc("analyst", PASSWORD, &["query", "SELECT 1"]);
    assert!(untrusted.get("error").is_some(), "an unknown certificate is refused by the client: {untrusted}");
}

#[test]
fn pgjdbc_lists_tables_columns_and_keys_and_runs_a_prepared_statement_as_bi_tools_do() {
    let served = Served::start();
    let lines = served.jdbc("analyst", PASSWORD, "P-200");
    let has = |line: &str| lines.iter().any(|l| l == line);
    for line in ["schema depot", "table depot.parts TABLE", "table depot.parts_latest VIEW", "table depot.bins TABLE"] {
        assert!(has(line), "{line}:\n{}", lines.join("\n"));
    }
    for column in ["sku", "qty", "price", "_op_ts"] {
        assert!(lines.iter().any(|l| l.starts_with(&format!("column parts.{column} "))), "{column}:\n{}", lines.join("\n"));
    }
    // The latest view's key is its primary key (the table keeps every change of a key: none).
    assert!(has("pk parts_latest sku 1"), "getPrimaryKeys:\n{}", lines.join("\n"));
    assert!(has(&format!("row qty={}", qty_of("P-200"))), "the prepared statement's row:\n{}", lines.join("\n"));
    assert!(has("done ok=6 failed=0"), "every step answered:\n{}", lines.join("\n"));

    let refused = served.jdbc("analyst", "wrong", "P-200");
    assert!(refused[0].starts_with("error connect:"), "{refused:?}");
    let intern = served.jdbc("intern", PASSWORD, "P-200");
    assert!(intern.iter().any(|l| l.starts_with("column parts.qty ")), "{intern:?}");
    assert!(!intern.iter().any(|l| l.starts_with("column parts.price ") || l.contains("depot.bins")), "{intern:?}");
    let outsider = served.jdbc("outsider", PASSWORD, "P-200");
    assert!(!outsider.iter().any(|l| l.starts_with("table ")), "{outsider:?}");
    assert!(outsider.iter().any(|l| l.starts_with("error prepared:") && l.contains("permission denied")), "{outsider:?}");
}

#[test]
fn node_postgres_runs_a_parameterised_query() {
    let served = Served::start();
    let steps = served.node_pg("analyst", PASSWORD, "P-200");
    let rows =
        |step: &str| steps.iter().filter(|s| s["step"] == step && s.get("row").is_some()).map(|s| s["row"].clone()).collect::<Vec<_>>();
    // node-postgres hands int8 over as a string, to keep every digit.
    assert_eq!(rows("param"), [serde_json::json!({"sku": "P-200", "qty": qty_of("P-200").to_string()})], "{steps:?}");
    assert_eq!(rows("count"), [serde_json::json!({"n": truth("parts").len().to_string()})], "{steps:?}");
    assert_eq!(rows("count_prepared"), rows("count"), "{steps:?}");
    let refused = served.node_pg("analyst", "wrong", "P-200");
    assert_eq!(refused[0]["code"], "28P01", "{refused:?}");
}

#[test]
fn pyiceberg_reads_tables_through_the_iceberg_rest_catalog_under_grants() {
    let served = Served::start();
    let uri = format!("{}/iceberg", served.http);
    let analyst = run_python_json("rest_catalog.py", &[&uri, "analyst", PASSWORD, "depot.parts"]);
    assert_eq!(analyst["namespaces"], serde_json::json!(["depot"]), "{analyst}");
    assert_eq!(analyst["tables"], serde_json::json!(["depot.bins", "depot.moves", "depot.parts"]), "{analyst}");
    let rows = served.psql("SELECT count(*) FROM depot.parts");
    assert_eq!(analyst["rows"].to_string(), rows.trim(), "PyIceberg reads every row of the table: {analyst}");
    assert!(analyst["create"].as_str().is_some_and(|e| e.contains("no grant with write = true")), "{analyst}");

    // Engines read the files themselves: a grant of some columns gives no table here.
    let intern = run_python_json("rest_catalog.py", &[&uri, "intern", PASSWORD, "depot.parts"]);
    assert_eq!((&intern["tables"], &intern["rows"]), (&serde_json::json!([]), &Value::Null), "{intern}");
    let refused = run_python_json("rest_catalog.py", &[&uri, "analyst", "wrong", "depot.parts"]);
    assert!(refused["error"].as_str().is_some_and(|e| e.contains("wrong password")), "{refused}");
}

#[test]
fn pyiceberg_creates_and_appends_through_the_rest_catalog_with_a_write_grant_and_floe_reads_it() {
    let served = Served::start();
    let uri = format!("{}/iceberg", served.http);
    let etl = run_python_json("rest_catalog_writes.py", &[&uri, "etl", PASSWORD]);
    // The stale handle's base had moved: the commit layer refused it once, PyIceberg rebuilt the
    // append on the current metadata, and every snapshot follows the one before it.
    assert_eq!((&etl["rows"], &etl["sum"], &etl["refused"]), (&json!(4), &json!(9), &json!(1)), "{etl}");
    assert_eq!(etl["parents"], json!([true, true, true]), "{etl}");
    assert_eq!(served.psql("SELECT count(*), sum(id) FROM scratch.events").trim(), "4|9", "floe reads what PyIceberg committed");

    // Reading everything is not writing: the analyst's grant has no `write = true`.
    let analyst = run_python_json("rest_catalog_writes.py", &[&uri, "analyst", PASSWORD]);
    assert!(analyst["error"].as_str().is_some_and(|e| e.contains("no grant with write = true covers namespace scratch")), "{analyst}");

    let read_only = Served::start_with("catalog_read_only = true\n");
    let uri = format!("{}/iceberg", read_only.http);
    let etl = run_python_json("rest_catalog_writes.py", &[&uri, "etl", PASSWORD]);
    assert!(etl["error"].as_str().is_some_and(|e| e.contains("catalog_read_only")), "{etl}");
}
