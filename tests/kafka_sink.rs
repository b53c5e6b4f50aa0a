//! `floe sink` against a real Kafka broker (tansu), fed real Debezium captures: each change
//! lands in its table exactly once across a crash (SIGKILL) and a clean stop (SIGTERM), and the
//! tables equal what `floe ingest` makes of the same events, which the capture tests hold to
//! PostgreSQL's final state.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::kafka::Broker;
use common::process::Running;
use common::*;
use serde_json::Value;

const CAPTURES: &[&str] = &["types-s1", "evolution-s1", "extras-s1"];

/// Every captured event as (topic, key, value), capture by capture.
fn captured_events() -> Vec<(String, Option<String>, Option<String>)> {
    let text = |v: &Value| v.as_str().map(str::to_string);
    CAPTURES
        .iter()
        .flat_map(|c| read_json_lines(&repo_root().join("tests/captures").join(c).join("events.jsonl")))
        .map(|e| (e["topic"].as_str().unwrap().to_string(), text(&e["key"]), text(&e["value"])))
        .collect()
}

fn read_json_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn topics(events: &[(String, Option<String>, Option<String>)]) -> Vec<String> {
    let mut topics: Vec<String> = events.iter().map(|e| e.0.clone()).collect();
    topics.sort();
    topics.dedup();
    topics
}

/// A sink config that commits often, so a crash falls between commits.
fn write_config(dir: &Path, broker: &Broker, topics: &[String]) -> String {
    let list = topics.iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(", ");
    let config = format!(
        "[sink]\nbatch_rows = 5\ncommit_interval = \"200ms\"\n\n[kafka]\nbrokers = \"{}\"\ngroup_id = \"floe-test\"\ntopics = [{list}]\nconnect_timeout = \"20s\"\n\n[kafka.properties]\n# the crashed member's partitions move on after 6 s, not Kafka's default 45 s\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"1000\"\n",
        broker.address
    );
    let path = dir.join("floe.toml");
    std::fs::write(&path, config).unwrap();
    path.display().to_string()
}

/// `floe sink` and `floe serve` as the tests run them.
struct Sink;

impl Sink {
    fn start(dir: &Path, config: &str, name: &str) -> Running {
        Running::start(dir, name, &["sink", "--config", config])
    }
}

/// Whether the sink has been given partitions.
fn assigned(sink: &Running) -> bool {
    sink.log().contains("Kafka partitions assigned")
}

/// Whether every expected row arrives within 90 s; then a few more commit intervals pass, in
/// which nothing more may come.
fn everything_arrives(dir: &Path, expected: &std::collections::BTreeMap<String, i64>) -> bool {
    let total: i64 = expected.values().sum();
    let arrived = eventually(Duration::from_secs(90), || row_counts(dir).values().sum::<i64>() >= total);
    std::thread::sleep(Duration::from_millis(600));
    arrived
}

/// SIGTERM; returns the log once the sink has stopped cleanly, as its report says.
fn stop(sink: Running) -> String {
    let log = sink.stop();
    assert!(log.contains("events read:"), "floe sink stopped without its report:\n{log}");
    log
}

/// Rows of every table floe made, by table name (`floe tables`).
fn row_counts(dir: &Path) -> std::collections::BTreeMap<String, i64> {
    let out = floe(dir, &["tables"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    let row = |line: &str| {
        let mut cells = line.split_whitespace();
        Some((cells.next()?.to_string(), cells.next()?.parse().ok()?))
    };
    listing.lines().skip(1).filter_map(row).collect()
}

/// Whether `done` holds within `timeout`.
fn eventually(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    true
}

/// The captures' events, topics made for them on a fresh broker (nothing produced yet), and
/// the tables `floe ingest` makes of the same events: what the sinks must make too.
struct Captures {
    events: Vec<(String, Option<String>, Option<String>)>,
    topics: Vec<String>,
    broker: Broker,
    expected_dir: tempfile::TempDir,
    expected: std::collections::BTreeMap<String, i64>,
}

impl Captures {
    fn on_a_broker() -> Captures {
        let events = captured_events();
        let topics = topics(&events);
        let broker = Broker::start();
        // Kafka orders records within a partition only. A TRUNCATE (evolution's depot.bins)
        // orders against every key, so its topic has one partition, as Debezium's table topics
        // do by default; lab.samples (no TRUNCATE) is spread over three, each resuming on its own.
        let partitions = |t: &str| if t == "pg.lab.samples" { 3 } else { 1 };
        broker.create_topics(&topics.iter().map(|t| (t.as_str(), partitions(t))).collect::<Vec<_>>());
        let expected_dir = tempfile::tempdir().unwrap();
        for capture in CAPTURES {
            let file = repo_root().join("tests/captures").join(capture).join("events.jsonl");
            floe(expected_dir.path(), &["ingest", &file.display().to_string()]);
        }
        let expected = row_counts(expected_dir.path());
        Captures { events, topics, broker, expected_dir, expected }
    }
}

#[test]
fn every_change_lands_once_across_kill_9_at_ten_random_points() {
    let Captures { events, topics, broker, expected_dir, expected } = Captures::on_a_broker();
    assert!(expected.len() >= 7, "every captured table was made: {expected:?}");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &broker, &topics);
    let (mut rng, seed) = Rng::from_clock();
    assert!(events.len() >= 10 * 5, "enough events for ten runs");

    // Each run gets its partitions, a slice of the events arrives, and the sink is killed a
    // random moment later: before it read them, between reading and committing, mid-commit, or
    // after. A killed member holds its partitions until its session times out (2 s here), so
    // the next run starts after that and gets them all.
    let session = Duration::from_secs(2);
    let text = std::fs::read_to_string(&config).unwrap().replace("\"6000\"", "\"2000\"").replace("\"1000\"", "\"500\"");
    std::fs::write(&config, text).unwrap();
    let mut logs = String::new();
    let slices: Vec<_> = events.chunks(events.len().div_ceil(10)).collect();
    for (run, slice) in slices.iter().enumerate() {
        let sink = Sink::start(dir.path(), &config, &format!("run{run}"));
        let has_partitions = eventually(Duration::from_secs(60), || assigned(&sink));
        assert!(has_partitions, "run {run} got no partitions:\n{}", sink.log());
        broker.produce(slice);
        std::thread::sleep(Duration::from_millis(rng.below(1200)));
        let log = sink.crash();
        let rows = row_counts(dir.path()).values().sum::<i64>();
        eprintln!("seed {seed}: run {run} killed at {rows} committed rows");
        logs += &format!("--- run {run}, killed at {rows} rows\n{log}");
        std::thread::sleep(session + Duration::from_millis(500));
    }

    let sink = Sink::start(dir.path(), &config, "last");
    let arrived = everything_arrives(dir.path(), &expected);
    logs += &stop(sink);
    assert!(arrived, "seed {seed}: not every row arrived: {:?} of {expected:?}\n{logs}", row_counts(dir.path()));
    assert_eq!(row_counts(dir.path()), expected, "seed {seed}: rows per table, Kafka vs file\n{logs}");
    assert_no_position_twice(dir.path(), &expected);
    assert_latest_views_equal(dir.path(), expected_dir.path(), &expected);
}

/// No two rows of a table come from one Kafka record.
fn assert_no_position_twice(dir: &Path, tables: &std::collections::BTreeMap<String, i64>) {
    for table in tables.keys().filter(|t| !t.starts_with("floe.")) {
        let twice =
            floe_sql(dir, &format!("SELECT _src_partition, _src_offset, count(*) AS n FROM {table} GROUP BY 1, 2 HAVING count(*) > 1"));
        assert!(twice.is_empty(), "{table}: records appended twice: {twice:?}");
    }
}

/// Every keyed table's `_latest` view holds the same source columns in both data dirs.
fn assert_latest_views_equal(ours: &Path, theirs: &Path, tables: &std::collections::BTreeMap<String, i64>) {
    for table in tables.keys().filter(|t| !t.starts_with("floe.")) {
        let view = format!("SELECT * FROM {table}_latest");
        let (ours, theirs) = (floe_sql(ours, &view), floe_sql(theirs, &view));
        // Source columns only (floe's own differ: positions and times), in one order.
        let strip = |rows: Vec<Value>| {
            let mut rows: Vec<String> = rows
                .into_iter()
                .map(|mut r| {
                    r.as_object_mut().unwrap().retain(|k, _| !k.starts_with('_'));
                    r.to_string()
                })
                .collect();
            rows.sort();
            rows
        };
        assert_eq!(strip(ours), strip(theirs), "{table}_latest, Kafka vs file");
    }
}

#[test]
fn two_sinks_in_one_group_share_the_partitions_and_every_change_lands_once() {
    let Captures { events, topics, broker, expected_dir, expected } = Captures::on_a_broker();

    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &broker, &topics);
    let (first, second) = (Sink::start(dir.path(), &config, "first"), Sink::start(dir.path(), &config, "second"));
    let both = eventually(Duration::from_secs(60), || assigned(&first) && assigned(&second));
    assert!(both, "both sinks took partitions:\n{}\n{}", first.log(), second.log());
    broker.produce(&events);
    let arrived = everything_arrives(dir.path(), &expected);
    let logs = format!("{}\n{}", stop(first), stop(second));
    assert!(arrived, "not every row arrived: {:?} of {expected:?}\n{logs}", row_counts(dir.path()));
    assert_eq!(row_counts(dir.path()), expected, "rows per table, two sinks vs file\n{logs}");
    assert_latest_views_equal(dir.path(), expected_dir.path(), &expected);
}

/// A crash (SIGKILL) of one of several members is not tested here: tansu 0.6.0 can hang the
/// group then. When a heartbeat is the first request to notice the dead member, tansu drops it
/// but starts no new generation, so its partitions stay assigned to nobody
/// (tansu-broker 0.6.0 `coordinator/group/administrator.rs`: `Inner<Formed>::heartbeat` keeps
/// the group formed; fixed in tansu's unreleased v0.7.0). Kafka starts a new generation. A
/// crash of a single sink, which needs no rebalance, is tested at ten random points above; a
/// clean stop (LeaveGroup) starts a new generation in tansu too, so a stopping sink waits until
/// its consumer has left the group before the process ends (CI once caught it exiting first).
#[test]
fn a_third_sink_joins_and_one_stops_in_the_middle_and_every_change_lands_once() {
    let Captures { events, topics, broker, expected_dir, expected } = Captures::on_a_broker();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &broker, &topics);
    let (first, second) = (Sink::start(dir.path(), &config, "first"), Sink::start(dir.path(), &config, "second"));
    assert!(eventually(Duration::from_secs(60), || assigned(&first) && assigned(&second)), "{}\n{}", first.log(), second.log());
    let third_of = events.len() / 3;
    broker.produce(&events[..third_of]);
    assert!(eventually(Duration::from_secs(60), || row_counts(dir.path()).values().sum::<i64>() > 0), "{}", first.log());

    let third = Sink::start(dir.path(), &config, "third");
    broker.produce(&events[third_of..2 * third_of]);
    assert!(eventually(Duration::from_secs(60), || assigned(&third)), "{}", third.log());
    let stopped = stop(first);
    broker.produce(&events[2 * third_of..]);

    let arrived = everything_arrives(dir.path(), &expected);
    let logs = format!("{stopped}\n{}\n{}", stop(second), stop(third));
    assert!(arrived, "not every row arrived: {:?} of {expected:?}\n{logs}", row_counts(dir.path()));
    assert_eq!(row_counts(dir.path()), expected, "rows per table\n{logs}");
    assert_no_position_twice(dir.path(), &expected);
    assert_latest_views_equal(dir.path(), expected_dir.path(), &expected);
}

/// A broker with `pg.lab.samples` in `partitions` partitions, and a sink on it that has its
/// partitions and commits only every `interval` (or when it gives partitions up), never on its
/// row count: (broker, data dir, config path, sink).
fn samples_sink(partitions: i32, interval: &str) -> (Broker, tempfile::TempDir, String, Running) {
    let broker = Broker::start();
    broker.create_topics(&[("pg.lab.samples", partitions)]);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &broker, &["pg.lab.samples".to_string()]);
    let text = std::fs::read_to_string(&config).unwrap().replace("batch_rows = 5", "batch_rows = 100000");
    std::fs::write(&config, text.replace("\"200ms\"", &format!("\"{interval}\""))).unwrap();
    let sink = Sink::start(dir.path(), &config, "first");
    assert!(eventually(Duration::from_secs(60), || assigned(&sink)), "{}", sink.log());
    (broker, dir, config, sink)
}

#[test]
fn a_few_events_on_a_quiet_topic_are_visible_within_the_commit_interval() {
    let events: Vec<_> = captured_events().into_iter().filter(|e| e.0 == "pg.lab.samples").take(3).collect();
    let (broker, dir, _, sink) = samples_sink(1, "2s");
    broker.produce(&events);
    let produced = Instant::now();
    let visible = eventually(Duration::from_secs(10), || row_counts(dir.path()).get("lab.samples") == Some(&3));
    let waited = produced.elapsed();
    let log = stop(sink);
    assert!(visible, "{log}");
    assert!(waited <= Duration::from_secs(3), "visible after {waited:?}, more than commit_interval + 1 s\n{log}");
}

#[test]
fn a_sink_commits_what_it_read_before_it_gives_partitions_up() {
    let events: Vec<_> = captured_events().into_iter().filter(|e| e.0 == "pg.lab.samples").collect();
    // Neither the row count nor the interval flushes: only a revocation (or a stop) commits.
    let (broker, dir, config, first) = samples_sink(3, "1h");
    broker.produce(&events);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(row_counts(dir.path()).get("lab.samples").copied().unwrap_or(0), 0, "nothing committed yet:\n{}", first.log());

    let second = Sink::start(dir.path(), &config, "second");
    let committed = eventually(Duration::from_secs(60), || row_counts(dir.path()).get("lab.samples") == Some(&34));
    let logs = format!("{}\n{}", stop(first), stop(second));
    assert!(committed, "the first sink committed on revocation:\n{logs}");
    assert!(!logs.contains("committed by another writer"), "no batch was fenced:\n{logs}");
    assert_eq!(row_counts(dir.path()).get("lab.samples"), Some(&34), "{logs}");
}

#[test]
fn a_topic_recreated_behind_its_table_is_reported_and_not_read() {
    let events: Vec<_> = captured_events().into_iter().filter(|e| e.0 == "pg.depot.parts").collect();
    let topics = vec!["pg.depot.parts".to_string()];
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = Broker::start();
        broker.create_topics(&[("pg.depot.parts", 1)]);
        broker.produce(&events);
        let config = write_config(dir.path(), &broker, &topics);
        let sink = Sink::start(dir.path(), &config, "first");
        let all = eventually(Duration::from_secs(60), || row_counts(dir.path()).get("depot.parts") == Some(&21));
        let log = stop(sink);
        assert!(all, "{log}");
    }
    // The same topic on a new cluster, holding fewer records than the table has read.
    let broker = Broker::start();
    broker.create_topics(&[("pg.depot.parts", 1)]);
    broker.produce(&events[..5]);
    let config = write_config(dir.path(), &broker, &topics);
    let sink = Sink::start(dir.path(), &config, "second");
    let reported = eventually(Duration::from_secs(60), || sink.log().contains("read past the end"));
    std::thread::sleep(Duration::from_millis(600));
    let log = stop(sink);
    assert!(reported, "{log}");
    let line = log.lines().find(|l| l.contains("read past the end")).unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains("table_position=22") && line.contains("topic_end=5"), "both numbers: {line}");
    assert_eq!(row_counts(dir.path()).get("depot.parts"), Some(&21), "nothing read from the recreated topic");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `GET /metrics` from a local exporter.
fn metrics(port: u16) -> String {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return String::new() };
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).unwrap_or_default();
    body
}

#[test]
fn serve_runs_the_kafka_sink_beside_compaction_and_exports_its_metrics() {
    let events: Vec<_> = captured_events().into_iter().filter(|e| e.0 == "pg.lab.samples").collect();
    let broker = Broker::start();
    broker.create_topics(&[("pg.lab.samples", 2)]);
    broker.produce(&events);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &broker, &["pg.lab.samples".to_string()]);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    // Compaction at 03:00 on 1 January: not during the test.
    let serve = Running::start(dir.path(), "serve", &["serve", "--config", &config, "--metrics-addr", &addr, "--schedule", "0 0 3 1 1 *"]);
    let arrived = eventually(Duration::from_secs(60), || row_counts(dir.path()).get("lab.samples") == Some(&34));
    let lag_reported = eventually(Duration::from_secs(20), || metrics(port).contains("floe_sink_consumer_lag{"));
    let exported = metrics(port);
    let status = floe(dir.path(), &["status", "--config", &config]);
    let status = String::from_utf8_lossy(&status.stdout).to_string();
    let log = stop(serve);
    assert!(arrived && lag_reported, "{log}\n{exported}");
    for metric in [
        "floe_sink_events_total 38",
        "floe_sink_commits_total{table=\"lab.samples\"}",
        "floe_sink_last_op_ts_seconds{table=\"lab.samples\"}",
    ] {
        assert!(exported.contains(metric), "{metric} missing from\n{exported}");
    }
    assert!(log.contains("Kafka sink running") && log.contains("floe serve: stopped"), "{log}");
    // rows, last commit, latest _op_ts, lag (every record of both partitions read), dead
    // letters, paused since
    let line = status.lines().find(|l| l.starts_with("lab.samples")).unwrap_or_else(|| panic!("{status}"));
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!((cells[1], cells[cells.len() - 3], cells[cells.len() - 2], cells[cells.len() - 1]), ("34", "0", "0", "-"), "{status}");
}

#[test]
fn an_incompatible_change_pauses_one_table_raises_the_alert_metric_and_the_others_go_on() {
    // shop.prices changes a decimal's scale mid-stream; shop.stock changes on.
    let capture = repo_root().join("tests/captures/incompatible-s1/events.jsonl");
    let text = |v: &Value| v.as_str().map(str::to_string);
    let events: Vec<_> =
        read_json_lines(&capture).iter().map(|e| (e["topic"].as_str().unwrap().to_string(), text(&e["key"]), text(&e["value"]))).collect();
    let expected_dir = tempfile::tempdir().unwrap();
    floe(expected_dir.path(), &["ingest", &capture.display().to_string()]);
    let expected = row_counts(expected_dir.path());
    let broker = Broker::start();
    broker.create_topics(&[("pg.shop.prices", 1), ("pg.shop.stock", 2)]);
    broker.produce(&events);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &broker, &topics(&events));
    let port = free_port();
    let sink = Running::start(dir.path(), "sink", &["sink", "--config", &config, "--metrics-addr", &format!("127.0.0.1:{port}")]);
    let alerted = eventually(Duration::from_secs(60), || metrics(port).contains("floe_sink_table_paused{table=\"shop.prices\"} 1"));
    let arrived = eventually(Duration::from_secs(30), || row_counts(dir.path()) == expected);
    let status = String::from_utf8_lossy(&floe(dir.path(), &["status", "--config", &config]).stdout).to_string();
    let log = stop(sink);
    assert!(alerted && arrived, "{log}\n{:?} != {expected:?}", row_counts(dir.path()));
    assert!(status.contains("shop.prices is paused: incompatible schema change"), "{status}");
    let prices = status.lines().find(|l| l.starts_with("shop.prices")).unwrap_or_else(|| panic!("{status}"));
    let lag: i64 = prices.split_whitespace().rev().nth(2).unwrap().parse().unwrap_or_else(|_| panic!("{status}"));
    assert_eq!(lag, 2, "the two changes after the incompatible one wait in the topic\n{status}");
    assert!(log.contains("paused table:       shop.prices"), "{log}");
}

#[test]
fn an_unreachable_broker_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let path = dir.path().join("floe.toml");
    std::fs::write(
        &path,
        format!("[kafka]\nbrokers = \"127.0.0.1:{port}\"\ngroup_id = \"g\"\ntopics = [\"t\"]\nconnect_timeout = \"2s\"\n"),
    )
    .unwrap();
    let started = Instant::now();
    let out = floe(dir.path(), &["sink", "--config", &path.display().to_string()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(&format!("127.0.0.1:{port}")) && stderr.contains("did not answer"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(20), "gave up in bounded time");
}

#[test]
fn a_config_without_kafka_says_what_to_add() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("floe.toml");
    std::fs::write(&path, "[sink]\nbatch_rows = 10\n").unwrap();
    let out = floe(dir.path(), &["sink", "--config", &path.display().to_string()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("floe.toml") && stderr.contains("kafka") && stderr.contains("fix: add [kafka]"), "{stderr}");
}

/// The `_src_offset` of every committed row of `shop.<table>`, in order; empty before it exists.
async fn committed_offsets(catalog: &dyn floe_catalog::Catalog, table: &str) -> Vec<i64> {
    use arrow_array::cast::AsArray;
    let Ok(table) = catalog.load_table(&floe_catalog::testing::ident("shop", table)).await else { return vec![] };
    let batches = floe_catalog::read::scan_rows(&table, &["_src_offset".to_string()], None).await.unwrap();
    let mut offsets: Vec<i64> =
        batches.iter().flat_map(|b| b.column(0).as_primitive::<arrow_array::types::Int64Type>().values().to_vec()).collect();
    offsets.sort_unstable();
    offsets
}

fn upserts(topic: &str, ids: std::ops::Range<i64>) -> Vec<(String, Option<String>, Option<String>)> {
    let gen = floe_sink::testing::TableEvents::new(topic, vec![floe_sink::testing::Column::new("note", "string")]);
    ids.map(|id| {
        let (key, value) = gen.upsert_message("c", id, &[serde_json::json!(format!("row {id}"))]);
        (topic.to_string(), key, value)
    })
    .collect()
}

async fn until(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_table_stops_alone_and_resumes_from_its_committed_position_by_seeking() {
    let (orders, customers) = ("pg.shop.orders", "pg.shop.customers");
    let broker = Broker::start();
    broker.create_topics(&[(orders, 1), (customers, 1)]);
    let t = floe_catalog::testing::test_catalog().await;
    let text = format!(
        "[sink]\nbatch_rows = 10\ncommit_interval = \"1h\"\n[kafka]\nbrokers = \"{}\"\ngroup_id = \"pause\"\ntopics = [\"{orders}\", \"{customers}\"]\n",
        broker.address
    );
    let config = floe_sink::SinkConfig::parse(&text, "test").unwrap();
    let source = floe_sink::source::kafka::connect(config.kafka.as_ref().unwrap()).unwrap();
    let mut ingestor = floe_sink::Ingestor::new(&t.catalog, config);
    let control = ingestor.control();
    let ingest = ingestor.run(source, &|_| {});
    let feed = async {
        broker.produce(&upserts(orders, 0..10));
        until("orders commits its first ten", async || committed_offsets(&t.catalog, "orders").await.len() == 10).await;
        // Read but not committed when the table is paused: dropped, and read again on resume.
        broker.produce(&upserts(orders, 10..13));
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(control.send(floe_sink::Control::Pause("shop.orders".into())));
        broker.produce(&upserts(orders, 13..16));
        broker.produce(&upserts(customers, 0..10));
        until("customers commits while orders is paused", async || committed_offsets(&t.catalog, "customers").await.len() == 10).await;
        assert_eq!(committed_offsets(&t.catalog, "orders").await, (0..10).collect::<Vec<_>>(), "a paused table commits nothing");
        assert!(control.send(floe_sink::Control::Resume("shop.orders".into())));
        broker.produce(&upserts(orders, 16..20));
        until("orders has every record", async || committed_offsets(&t.catalog, "orders").await.len() >= 20).await;
        assert!(control.send(floe_sink::Control::Shutdown));
    };
    let (report, ()) = tokio::join!(ingest, feed);
    let report = report.unwrap();
    assert!(report.failed_tables.is_empty(), "{report:?}");
    assert_eq!(committed_offsets(&t.catalog, "orders").await, (0..20).collect::<Vec<_>>(), "every order exactly once");
    assert_eq!(committed_offsets(&t.catalog, "customers").await, (0..10).collect::<Vec<_>>());
}
