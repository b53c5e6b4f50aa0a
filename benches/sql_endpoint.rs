//! The SQL endpoint against floe's in-process query path, in the same run:
//!
//! - a full scan of a `_latest` view: time to the first row and rows/s, in process
//!   (`floe_views`, DataFusion's stream), over the PostgreSQL wire (floe-server, read by sqlx's
//!   PostgreSQL client, row by row) and over Flight SQL (arrow-flight's client, batch by batch);
//! - point lookups by key over the PostgreSQL wire, per second, with filter pushdown
//!   (`WHERE id = $1`: only the file whose statistics hold the key is read) and without
//!   (`WHERE id + 0 = $1`: the same rows, but no predicate the scan can use).
//!
//! `cargo bench --bench sql_endpoint` (`FLOE_BENCH_ROWS`, default 200000, written as 4 files of
//! disjoint key ranges; `FLOE_BENCH_LOOKUPS`, default 200).

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_flight::sql::client::FlightSqlServiceClient;
use floe_catalog::{Catalog, SqlCatalog};
use floe_server::flight::FlightSqlEndpoint;
use floe_server::iceberg_rest::CatalogService;
use floe_server::pg::PgEndpoint;
use floe_server::session::{Access, Limits, Serving};

use floe_sink::source::file::from_reader;
use floe_sink::testing::{Column, TableEvents};
use floe_sink::{Ingestor, SinkConfig};
use floe_views::catalog_provider::FloeCatalogProvider;
use futures::StreamExt;
use serde_json::json;
use sqlx::Connection;

/// The allocator the `floe` binary ships with.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const FILES: usize = 4;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// `rows` upserts of distinct keys, committed as [`FILES`] files of consecutive key ranges.
async fn table(catalog: &SqlCatalog, rows: usize) {
    let gen = TableEvents::new("pg.bench.customers", vec![Column::new("name", "string"), Column::new("score", "int32")]);
    let per_file = rows / FILES;
    for file in 0..FILES {
        let lines: Vec<String> = (file * per_file..(file + 1) * per_file)
            .map(|id| gen.upsert("c", id as i64, &[json!(format!("customer {id}")), json!(id % 1000)]))
            .collect();
        let source = from_reader(Box::new(std::io::Cursor::new(lines.join("\n").into_bytes())), format!("file-{file}"));
        let config = SinkConfig::parse("[sink]\nbatch_rows = 10000000\n", "bench").unwrap();
        Ingestor::new(catalog, config).run(source, &|_| {}).await.unwrap();
    }
}

/// Time to the first row, and to the last, reading `sql` in process.
async fn in_process(catalog: &SqlCatalog, sql: &str) -> (Duration, Duration, usize) {
    let started = Instant::now();
    let ctx = floe_views::session(catalog).await.unwrap();
    let stream = ctx.sql(sql).await.unwrap().execute_stream().await.unwrap();
    timed(started, stream).await
}

/// Time from `started` to the first row of `batches`, and to the last; the rows.
async fn timed<E: std::fmt::Debug>(
    started: Instant,
    mut batches: impl futures::Stream<Item = Result<arrow_array::RecordBatch, E>> + Unpin,
) -> (Duration, Duration, usize) {
    let (mut first, mut rows) = (None, 0);
    while let Some(batch) = batches.next().await {
        let batch = batch.unwrap();
        if batch.num_rows() > 0 {
            first.get_or_insert_with(|| started.elapsed());
        }
        rows += batch.num_rows();
    }
    (first.expect("rows"), started.elapsed(), rows)
}

/// Time to the first row, and to the last, reading `sql` over the PostgreSQL wire.
async fn over_the_wire(url: &str, sql: &str) -> (Duration, Duration, usize) {
    let mut connection = sqlx::PgConnection::connect(url).await.unwrap();
    let started = Instant::now();
    let mut rows = sqlx::raw_sql(sql).fetch(&mut connection);
    let (mut first, mut count) = (None, 0);
    while let Some(row) = rows.next().await {
        row.unwrap();
        first.get_or_insert_with(|| started.elapsed());
        count += 1;
    }
    (first.expect("rows"), started.elapsed(), count)
}

/// Time to the first row, and to the last, reading `sql` over Flight SQL at `addr`.
async fn over_flight(addr: std::net::SocketAddr, sql: &str) -> (Duration, Duration, usize) {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    let mut client = FlightSqlServiceClient::new(channel);
    let started = Instant::now();
    let info = client.execute(sql.to_string(), None).await.unwrap();
    let ticket = info.endpoint[0].ticket.clone().expect("a ticket");
    let batches = client.do_get(ticket).await.unwrap();
    timed(started, batches).await
}

/// Lookups of `lookups` keys spread over the table, per second, by `sql` with `$1` the key.
async fn lookups_per_second(url: &str, sql: &str, rows: usize, lookups: usize) -> f64 {
    let mut connection = sqlx::PgConnection::connect(url).await.unwrap();
    let started = Instant::now();
    for i in 0..lookups {
        let key = ((i * 7919) % rows) as i64;
        let found = sqlx::query(sql).bind(key).fetch_all(&mut connection).await.unwrap();
        assert_eq!(found.len(), 1, "{sql} with {key}");
    }
    lookups as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let rows = env_or("FLOE_BENCH_ROWS", if bench { 200_000 } else { 4_000 });
    let lookups = env_or("FLOE_BENCH_LOOKUPS", if bench { 200 } else { 10 });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    runtime.block_on(async {
        let catalog = SqlCatalog::open_embedded(dir.path()).await.unwrap();
        table(&catalog, rows).await;
        let partitions = std::thread::available_parallelism().map_or(1, usize::from);
        let provider = Arc::new(FloeCatalogProvider::new(catalog.shared(), partitions));
        provider.refresh().await.unwrap();
        let limits = Limits::new(Duration::from_secs(600), 4 << 30, 16);
        let loopback = "127.0.0.1:0".parse().unwrap();
        let serving = Serving {
            provider,
            access: Access::Anonymous,
            limits,
            tls: None,
            catalog_service: CatalogService { read_only: true, ..Default::default() },
        };
        let endpoint = PgEndpoint::bind(loopback, serving.clone()).await.unwrap();
        let url = format!("postgres://bench@{}/floe", endpoint.local_addr().unwrap());
        tokio::spawn(endpoint.serve(std::future::pending()));
        let flight = FlightSqlEndpoint::bind(loopback, serving).await.unwrap();
        let flight_addr = flight.local_addr().unwrap();
        tokio::spawn(flight.serve(std::future::pending()));

        // Best of three each, alternating, so that a noisy moment flatters neither side.
        let scan = "SELECT * FROM bench.customers_latest";
        let unmeasured = (Duration::MAX, Duration::MAX);
        let (mut local, mut wire, mut arrow) = (unmeasured, unmeasured, unmeasured);
        for _ in 0..3 {
            let (first, all, n) = in_process(&catalog, scan).await;
            assert_eq!(n, rows);
            local = (local.0.min(first), local.1.min(all));
            let (first, all, n) = over_the_wire(&url, scan).await;
            assert_eq!(n, rows);
            wire = (wire.0.min(first), wire.1.min(all));
            let (first, all, n) = over_flight(flight_addr, scan).await;
            assert_eq!(n, rows);
            arrow = (arrow.0.min(first), arrow.1.min(all));
        }
        let per_second = |d: Duration| rows as f64 / d.as_secs_f64();
        println!("sql_endpoint: {rows} rows in {FILES} files, full scan of a _latest view (best of 3)");
        println!("  in process (floe_views)      first row {:>9.1?}  {:>10.0} rows/s", local.0, per_second(local.1));
        println!(
            "  Postgres wire (sqlx client)  first row {:>9.1?}  {:>10.0} rows/s  {:.2} of in process",
            wire.0,
            per_second(wire.1),
            local.1.as_secs_f64() / wire.1.as_secs_f64()
        );
        println!(
            "  Flight SQL (arrow-flight)    first row {:>9.1?}  {:>10.0} rows/s  {:.2} of in process",
            arrow.0,
            per_second(arrow.1),
            local.1.as_secs_f64() / arrow.1.as_secs_f64()
        );

        let pushed = lookups_per_second(&url, "SELECT * FROM bench.customers_latest WHERE id = $1", rows, lookups).await;
        let unpushed = lookups_per_second(&url, "SELECT * FROM bench.customers_latest WHERE id + 0 = $1", rows, lookups).await;
        println!("  point lookups over the wire: {pushed:>7.1}/s with pushdown, {unpushed:>7.1}/s without  ({:.1}×)", pushed / unpushed);
    });
}
