//! A real Kafka broker for tests: tansu 0.6.0 on a free loopback port, in memory. The test
//! command installs it (`cargo install tansu@0.6.0 …`); without it these tests fail, they do
//! not skip.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::process::KilledOnDrop;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

pub struct Broker {
    pub address: String,
    _child: KilledOnDrop,
}

/// `$FLOE_TANSU`, else `tansu` on the PATH or in ~/.cargo/bin.
fn tansu() -> PathBuf {
    if let Ok(path) = std::env::var("FLOE_TANSU") {
        return path.into();
    }
    let cargo_bin = std::env::var("HOME").map(|h| PathBuf::from(h).join(".cargo/bin/tansu")).unwrap_or_default();
    let on_path = std::env::var("PATH").unwrap_or_default().split(':').map(|d| PathBuf::from(d).join("tansu")).find(|p| p.exists());
    on_path.or_else(|| cargo_bin.exists().then_some(cargo_bin)).expect(
        "tansu is not installed: run `cargo install tansu@0.6.0 --locked --no-default-features --features dynostore` (.ci/test does)",
    )
}

impl Broker {
    pub fn start() -> Broker {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("tcp://127.0.0.1:{port}");
        // `FLOE_TANSU_LOG=dir` keeps each broker's log there, for a test that misbehaves.
        let log = |suffix: &str| match std::env::var("FLOE_TANSU_LOG") {
            Ok(dir) => Stdio::from(std::fs::File::create(format!("{dir}/tansu-{port}.{suffix}")).unwrap()),
            Err(_) => Stdio::null(),
        };
        let child = Command::new(tansu())
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url, "--storage-engine", "memory://tansu/"])
            .stdout(log("out"))
            .stderr(log("err"))
            .spawn()
            .expect("tansu starts");
        let address = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen on {address} within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Broker { address, _child: KilledOnDrop(child) }
    }

    /// Creates `(topic, partitions)`.
    pub fn create_topics(&self, topics: &[(&str, i32)]) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", &self.address).create().unwrap();
        let new: Vec<NewTopic> = topics.iter().map(|(t, partitions)| NewTopic::new(t, *partitions, TopicReplication::Fixed(1))).collect();
        // On a thread of its own, so async tests can call it too.
        let results = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                    runtime.block_on(admin.create_topics(&new, &AdminOptions::new()))
                })
                .join()
                .unwrap()
        })
        .expect("create topics");
        for result in results {
            result.expect("topic created");
        }
    }

    /// Produces (topic, key, value) messages, partitioned by key, and waits until all are acked.
    ///
    /// One message per record batch: tansu 0.6.0 returns nothing to a fetch that starts inside a
    /// batch (checked: assign at offset 2 of a 38-record batch delivers no record), which a
    /// sink resuming after its table's position does. Kafka itself serves it.
    pub fn produce(&self, messages: &[(String, Option<String>, Option<String>)]) {
        let producer: BaseProducer =
            ClientConfig::new().set("bootstrap.servers", &self.address).set("batch.num.messages", "1").create().unwrap();
        for (topic, key, value) in messages {
            let mut record = BaseRecord::<str, str>::to(topic);
            if let Some(key) = key {
                record = record.key(key.as_str());
            }
            if let Some(value) = value {
                record = record.payload(value.as_str());
            }
            producer.send(record).map_err(|(e, _)| e).expect("queued");
            producer.poll(Duration::ZERO);
        }
        producer.flush(Duration::from_secs(30)).expect("every message acked");
    }
}
