//! The Kafka sink on a real broker (tansu, as the tests start it), against baselines in the same
//! run:
//!
//! - **throughput**: floe's Kafka source → decode → Parquet → committed Iceberg, against
//!   librdkafka's raw consume rate of the same topic (every message polled, nothing done);
//! - **freshness**: at a steady produce rate, the time from each message's delivery to the
//!   commit that makes it visible in the table (and so in its `_latest` view), p50 and p99,
//!   against `commit_interval` + 1 s.
//!
//! `cargo bench --bench kafka_sink` (`FLOE_BENCH_EVENTS`, default 200000; `FLOE_BENCH_RATE`,
//! default 20000 events/s, for `FLOE_BENCH_SECONDS`, default 10; `FLOE_BENCH_KAFKA="k=v,…"`:
//! librdkafka properties for both consumers, default `fetch.wait.max.ms=5`).

#[allow(unused_imports)]
#[path = "../tests/common/mod.rs"]
mod common;

use common::kafka;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use floe_catalog::layout::committed_positions;
use floe_catalog::{Catalog, SqlCatalog};
use floe_sink::source::{position_key, Positions};
use floe_sink::testing::{Column, TableEvents};
use floe_sink::{Control, Ingestor, SinkConfig};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientConfig, ClientContext, Message, Offset, TopicPartitionList};
use serde_json::json;

/// The allocator the `floe` binary ships with.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const PARTITIONS: i32 = 3;

/// `FLOE_BENCH_KAFKA="k=v,…"`: consumer properties, for floe and the baseline alike. By default
/// `fetch.wait.max.ms=5`: tansu 0.6.0 holds every fetch for the full wait (librdkafka's default
/// 500 ms) even when it has records, which Kafka does only when it has none.
fn consumer_properties() -> Vec<(String, String)> {
    let text = std::env::var("FLOE_BENCH_KAFKA").unwrap_or_else(|_| "fetch.wait.max.ms=5".into());
    text.split(',').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect()
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Debezium events with the schema envelope: creates over `n / 4` keys, then updates.
fn message(generator: &TableEvents, i: u64, n: u64) -> (String, String) {
    let keys = (n / 4).max(1);
    let values = [json!(format!("customer {i}")), json!(["new", "active", "churned"][i as usize % 3]), json!(i % 10_000)];
    let (key, value) = generator.upsert_message(if i < keys { "c" } else { "u" }, (i % keys) as i64, &values);
    (key.expect("keyed"), value.expect("not a tombstone"))
}

fn generator(topic: &str) -> TableEvents {
    TableEvents::new(topic, vec![Column::new("name", "string"), Column::new("status", "string"), Column::new("score", "int32")])
}

/// Each message's partition, offset and the moment it was handed to the producer.
#[derive(Default)]
struct Sent(Mutex<Vec<(i32, i64, Instant)>>);

impl ClientContext for Sent {}

impl ProducerContext for Sent {
    type DeliveryOpaque = Box<Instant>;

    fn delivery(&self, result: &DeliveryResult<'_>, sent: Box<Instant>) {
        let delivered = result.as_ref().expect("delivered");
        self.0.lock().unwrap().push((delivered.partition(), delivered.offset(), *sent));
    }
}

fn producer(broker: &kafka::Broker) -> BaseProducer<Sent> {
    ClientConfig::new().set("bootstrap.servers", &broker.address).set("linger.ms", "5").create_with_context(Sent::default()).unwrap()
}

/// Produces the `n` messages of the workload as fast as the broker takes them.
fn produce_all(broker: &kafka::Broker, topic: &str, n: u64) {
    let producer = producer(broker);
    let generator = generator(topic);
    for i in 0..n {
        let (key, value) = message(&generator, i, n);
        send(&producer, topic, &key, &value);
    }
    producer.flush(Duration::from_secs(60)).unwrap();
}

fn send(producer: &BaseProducer<Sent>, topic: &str, key: &str, value: &str) {
    let mut record = BaseRecord::with_opaque_to(topic, Box::new(Instant::now())).key(key).payload(value);
    loop {
        match producer.send(record) {
            Ok(()) => break,
            // Queue full: let deliveries drain, then try again.
            Err((_, back)) => {
                record = back;
                producer.poll(Duration::from_millis(10));
            }
        }
    }
    producer.poll(Duration::ZERO);
}

/// librdkafka alone: every message of the topic polled from the beginning; the time from the
/// first message to the last.
fn raw_consume(broker: &kafka::Broker, topic: &str, n: u64) -> Duration {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &broker.address).set("group.id", "raw").set("enable.auto.commit", "false");
    for (key, value) in consumer_properties() {
        config.set(key, value);
    }
    let consumer: BaseConsumer = config.create().unwrap();
    let mut partitions = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        partitions.add_partition_offset(topic, partition, Offset::Beginning).unwrap();
    }
    consumer.assign(&partitions).unwrap();
    let (mut seen, mut bytes, mut first) = (0, 0, None);
    while seen < n {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.unwrap();
            first.get_or_insert_with(Instant::now);
            bytes += message.payload().map_or(0, <[u8]>::len) + message.key().map_or(0, <[u8]>::len);
            seen += 1;
        }
    }
    assert!(bytes > 0);
    first.expect("messages").elapsed()
}

fn sink_config(broker: &kafka::Broker, topic: &str, group: &str, extra: &str) -> SinkConfig {
    let mut text =
        format!("{extra}\n[kafka]\nbrokers = \"{}\"\ngroup_id = \"{group}\"\ntopics = [\"{topic}\"]\n[kafka.properties]\n", broker.address);
    for (key, value) in consumer_properties() {
        text += &format!("\"{key}\" = \"{value}\"\n");
    }
    SinkConfig::parse(&text, "bench").unwrap()
}

/// floe's Kafka sink over the whole topic, in this process: the time from the first batch to
/// the last commit.
fn floe_sink(broker: &kafka::Broker, topic: &str, n: u64, group: &str, runtime: &tokio::runtime::Runtime) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let config = sink_config(broker, topic, group, "");
    runtime.block_on(async {
        let catalog = SqlCatalog::open_embedded(dir.path()).await.unwrap();
        let source = floe_sink::source::kafka::connect(config.kafka.as_ref().unwrap()).unwrap();
        let mut ingestor = Ingestor::new(&catalog, config.clone());
        let control = ingestor.control();
        let first = OnceLock::new();
        let progress = |read: u64| {
            first.get_or_init(Instant::now);
            if read >= n {
                control.send(Control::Shutdown);
            }
        };
        let report = ingestor.run(source, &progress).await.unwrap();
        assert_eq!(report.rows.values().sum::<u64>(), n);
        first.get().expect("records").elapsed()
    })
}

/// Delivery-to-visible latencies of messages produced at `rate` for `seconds` to a running sink
/// with `commit_interval`.
fn freshness(
    broker: &kafka::Broker,
    topic: &str,
    rate: u64,
    seconds: u64,
    commit_interval: Duration,
    runtime: &tokio::runtime::Runtime,
) -> Vec<Duration> {
    let dir = tempfile::tempdir().unwrap();
    let config = sink_config(broker, topic, "fresh", &format!("[sink]\ncommit_interval = \"{}ms\"", commit_interval.as_millis()));
    let producer = producer(broker);
    let generator = generator(topic);
    let n = rate * seconds;
    let steady = AtomicBool::new(false);
    let sent_all = AtomicBool::new(false);
    let history: Mutex<Vec<(Instant, Positions)>> = Mutex::default();
    std::thread::scope(|scope| {
        // One message per partition first; the steady stream starts once the sink committed them
        // (joined the group), so that the group join is not counted as latency.
        scope.spawn(|| {
            for i in 0..PARTITIONS as u64 * 4 {
                let (key, value) = message(&generator, n + i, n * 2);
                send(&producer, topic, &key, &value);
            }
            producer.flush(Duration::from_secs(30)).unwrap();
            producer.context().0.lock().unwrap().clear();
            while !steady.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(10));
            }
            let start = Instant::now();
            for i in 0..n {
                let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let (key, value) = message(&generator, i, n);
                send(&producer, topic, &key, &value);
            }
            producer.flush(Duration::from_secs(30)).unwrap();
            sent_all.store(true, Ordering::Release);
        });
        runtime.block_on(async {
            let catalog = SqlCatalog::open_embedded(dir.path()).await.unwrap();
            let source = floe_sink::source::kafka::connect(config.kafka.as_ref().unwrap()).unwrap();
            let mut ingestor = Ingestor::new(&catalog, config.clone());
            let control = ingestor.control();
            let watch = async {
                let ident = config.route(topic).ident;
                loop {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let Ok(table) = catalog.load_table(&ident).await else { continue };
                    let positions = committed_positions(&table);
                    steady.store(true, Ordering::Release);
                    let done = sent_all.load(Ordering::Acquire) && covers(&positions, &producer.context().0.lock().unwrap(), topic);
                    history.lock().unwrap().push((Instant::now(), positions));
                    if done {
                        control.send(Control::Shutdown);
                        return;
                    }
                }
            };
            let (report, ()) = tokio::join!(ingestor.run(source, &|_| {}), watch);
            report.unwrap();
        });
    });
    let history = history.into_inner().unwrap();
    let sent = producer.context().0.lock().unwrap();
    sent.iter()
        .map(|(partition, offset, at)| {
            let key = position_key(topic, *partition);
            let (visible, _) =
                history.iter().find(|(_, p)| p.get(&key).is_some_and(|o| o >= offset)).expect("every message became visible");
            visible.duration_since(*at)
        })
        .collect()
}

/// Whether `positions` hold every sent message.
fn covers(positions: &Positions, sent: &[(i32, i64, Instant)], topic: &str) -> bool {
    sent.iter().all(|(partition, offset, _)| positions.get(&position_key(topic, *partition)).is_some_and(|o| o >= offset))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    // `cargo test` runs benches without `--bench`: a quick smoke run keeps them working.
    let bench = std::env::args().any(|a| a == "--bench");
    let n = env_or("FLOE_BENCH_EVENTS", if bench { 200_000 } else { 2_000 });
    let rate = env_or("FLOE_BENCH_RATE", if bench { 20_000 } else { 1_000 });
    let seconds = env_or("FLOE_BENCH_SECONDS", if bench { 10 } else { 2 });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let broker = kafka::Broker::start();
    broker.create_topics(&[("pg.bench.customers", PARTITIONS), ("pg.bench.fresh", PARTITIONS)]);
    produce_all(&broker, "pg.bench.customers", n);

    // Best of three each, alternating, so that a noisy moment flatters neither side.
    let per_second = |d: Duration| n as f64 / d.as_secs_f64();
    let (mut raw, mut floe) = (0f64, 0f64);
    for round in 0..3 {
        raw = raw.max(per_second(raw_consume(&broker, "pg.bench.customers", n)));
        floe = floe.max(per_second(floe_sink(&broker, "pg.bench.customers", n, &format!("floe-{round}"), &runtime)));
    }
    println!("kafka_sink: {n} Debezium JSON events (schema envelope) on {PARTITIONS} partitions (best of 3 each)");
    println!("  librdkafka raw consume (baseline)    {raw:>10.0} events/s");
    println!("  floe Kafka sink → committed Iceberg   {floe:>10.0} events/s  {:.2} of raw consume", floe / raw);

    let commit_interval = Duration::from_secs(1);
    let mut latencies = freshness(&broker, "pg.bench.fresh", rate, seconds, commit_interval, &runtime);
    latencies.sort();
    let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    let goal = commit_interval + Duration::from_secs(1);
    println!("  freshness at {rate} events/s for {seconds} s, commit_interval {commit_interval:?}: delivery → visible");
    println!(
        "    p50 {p50:>8.3?}  p99 {p99:>8.3?}  max {:>8.3?}  (goal: p99 ≤ {goal:?}, {:.2} of it)",
        latencies[latencies.len() - 1],
        p99.as_secs_f64() / goal.as_secs_f64()
    );
}
