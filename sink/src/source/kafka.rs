//! Kafka topics through a consumer group (librdkafka via rdkafka).
//!
//! The tables are the source of truth for what was read: when the group assigns partitions to
//! this process, each starts right after the offset its table last committed (the
//! `floe.positions` of its snapshots), not at the group's committed offset. Group offsets are
//! committed too, after each table commit, so lag shows in the usual Kafka tools.
//!
//! One thread owns the consumer: it polls, runs rebalances, and carries out the ingest loop's
//! pause, resume and offset commits between polls, so a resume's seek and the records that
//! follow it cannot cross.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use super::{position_key, Message, Positions, Source, SourceRecord};
use crate::config::KafkaSettings;

/// Records per batch handed to the ingest loop (as the file source's: fewer hand-overs between
/// threads), and how many batches are read ahead: two, as each holds whole messages, and
/// librdkafka prefetches more. A batch goes when it is full, when a poll finds nothing, or when
/// its first record has waited `BATCH_WAIT`, so that a steady trickle is not held back for
/// seconds while a batch fills.
const BATCH_RECORDS: usize = 4096;
const BATCHES_AHEAD: usize = 2;
const BATCH_WAIT: Duration = Duration::from_millis(100);
/// How long one poll waits: also how soon a command (pause, resume, commit) is carried out.
const POLL: Duration = Duration::from_millis(50);

pub struct KafkaSource {
    settings: KafkaSettings,
    positions: Arc<Mutex<Positions>>,
    /// Set by a rebalance that assigned partitions, before any of their records is polled.
    assigned: Arc<AtomicBool>,
    commands: Option<std::sync::mpsc::Sender<Command>>,
    /// Closed when the consumer thread has closed the consumer (left the group): waited for on
    /// drop, so that it leaves before the process ends.
    closed: Option<std::sync::mpsc::Receiver<()>>,
    records: Option<mpsc::Receiver<Delivery>>,
    /// Records read before a resume, of partitions it did not rewind: handed out first.
    held: VecDeque<SourceRecord>,
    /// A revocation waiting for everything read to be committed.
    revoking: Option<std::sync::mpsc::Sender<()>>,
    consumer: Option<BaseConsumer<TablePositions>>,
}

/// What the consumer thread hands to the ingest side, in the order it happened.
enum Delivery {
    Records(std::io::Result<Vec<SourceRecord>>),
    /// Sent before a resume's seek: what follows was read after it.
    Barrier,
    /// The group is taking partitions away: commit everything read, then answer.
    Revoking(std::sync::mpsc::Sender<()>),
}

/// Records polled but not yet handed over, and the channel they go through. The consumer
/// thread and the rebalance callback (which runs inside a poll, on that thread) share it.
#[derive(Default)]
struct Outbox {
    batch: Vec<SourceRecord>,
    /// When the batch's first record was polled.
    since: Option<Instant>,
    sender: Option<mpsc::Sender<Delivery>>,
}

impl Outbox {
    fn push(&mut self, record: SourceRecord) {
        if self.batch.is_empty() {
            self.since = Some(Instant::now());
        }
        self.batch.push(record);
    }

    /// Whether the batch is to be handed over now: it is full, or its first record has waited
    /// long enough.
    fn is_due(&self) -> bool {
        self.batch.len() >= BATCH_RECORDS || self.since.is_some_and(|since| since.elapsed() >= BATCH_WAIT)
    }

    /// Hands the polled records over; `false` once the ingest side has hung up.
    fn send_batch(&mut self) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH_RECORDS));
        self.since = None;
        self.send(Delivery::Records(Ok(batch)))
    }

    fn send(&mut self, delivery: Delivery) -> bool {
        self.sender.as_ref().is_some_and(|sender| sender.blocking_send(delivery).is_ok())
    }
}

/// How long a revocation waits for the commit of what was read before it gives up the
/// partitions anyway (their records are then read again by the new owner, never twice committed).
const REVOKE_WAIT: Duration = Duration::from_secs(30);
/// How long a stopping sink waits for its consumer to leave the group.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

enum Command {
    Pause(Vec<(String, i32)>),
    /// Send an empty batch (the barrier), seek these partitions to the offsets (the beginning
    /// for none), resume them, and answer once done.
    Resume(Vec<(String, i32, Option<i64>)>, oneshot::Sender<()>),
    Commit(Positions),
    Stop,
}

/// Connects to the brokers (a clear error after `connect_timeout` when none answers) and joins
/// the group; partitions are assigned once records are asked for.
pub fn connect(settings: &KafkaSettings) -> std::io::Result<KafkaSource> {
    let positions = Arc::new(Mutex::new(Positions::new()));
    let mut config = client_config(settings);
    config
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        // Consumer lag per partition for the metrics.
        .set("statistics.interval.ms", "5000");
    // [kafka.properties] win over floe's choices.
    for (key, value) in &settings.properties {
        config.set(key, value);
    }
    let assigned = Arc::new(AtomicBool::new(false));
    let context = TablePositions { positions: positions.clone(), assigned: assigned.clone(), outbox: Mutex::default() };
    let consumer: BaseConsumer<TablePositions> =
        config.create_with_context(context).map_err(|e| io_error("cannot create the Kafka consumer", e))?;
    consumer.fetch_metadata(None, settings.connect_timeout).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("Kafka brokers {} did not answer within {:?}: {e}", settings.brokers, settings.connect_timeout),
        )
    })?;
    Ok(KafkaSource {
        settings: settings.clone(),
        positions,
        assigned,
        commands: None,
        closed: None,
        records: None,
        held: VecDeque::new(),
        revoking: None,
        consumer: Some(consumer),
    })
}

impl KafkaSource {
    fn start(&mut self) -> std::io::Result<()> {
        let Some(consumer) = self.consumer.take() else { return Ok(()) };
        match &self.settings.topic_pattern {
            Some(pattern) => consumer.subscribe(&[&format!("^{}", pattern.trim_start_matches('^'))]),
            None => consumer.subscribe(&self.settings.topics.iter().map(String::as_str).collect::<Vec<_>>()),
        }
        .map_err(|e| io_error("cannot subscribe", e))?;
        let (sender, records) = mpsc::channel(BATCHES_AHEAD);
        consumer.context().outbox.lock().expect("not poisoned").sender = Some(sender);
        let (commands, receiver) = std::sync::mpsc::channel();
        let (closing, closed) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new().name("floe-kafka".into()).spawn(move || {
            // The consumer is dropped (closed) inside; then `closing` drops, which `closed` sees.
            poll_loop(consumer, receiver);
            drop(closing);
        })?;
        self.closed = Some(closed);
        self.commands = Some(commands);
        self.records = Some(records);
        Ok(())
    }

    fn send(&self, command: Command) {
        if let Some(commands) = &self.commands {
            let _ = commands.send(command);
        }
    }
}

impl Drop for KafkaSource {
    /// Stops the consumer thread and waits (boundedly) until it has closed the consumer: closing
    /// sends LeaveGroup, so the other members take over these partitions at once. A process that
    /// ends first leaves the group to notice only after `session.timeout.ms`, and tansu 0.6.0
    /// then never hands the partitions on (see the scale-out test in tests/kafka_sink.rs).
    fn drop(&mut self) {
        // The revocation that closing triggers must not wait for an ingest loop that is gone.
        drop(self.records.take());
        self.send(Command::Stop);
        let Some(closed) = self.closed.take() else { return };
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = closed.recv_timeout(CLOSE_WAIT) {
            warn!(waited = ?CLOSE_WAIT, "the Kafka consumer did not leave its group in time: the group reassigns its partitions after session.timeout.ms");
        }
    }
}

#[async_trait]
impl Source for KafkaSource {
    fn topics(&self) -> Option<Vec<String>> {
        (!self.settings.topics.is_empty()).then(|| self.settings.topics.clone())
    }

    async fn seek(&mut self, committed: &Positions) -> std::io::Result<()> {
        self.positions.lock().expect("not poisoned").extend(committed.iter().map(|(k, v)| (k.clone(), *v)));
        Ok(())
    }

    async fn next_batch(&mut self) -> std::io::Result<Option<Vec<SourceRecord>>> {
        if !self.held.is_empty() {
            return Ok(Some(self.held.drain(..).collect()));
        }
        self.start()?;
        let Some(records) = self.records.as_mut() else { return Ok(None) };
        loop {
            return match records.recv().await {
                None => Ok(None),
                Some(Delivery::Records(batch)) => batch.map(Some),
                Some(Delivery::Barrier) => continue,
                Some(Delivery::Revoking(answer)) => {
                    self.revoking = Some(answer);
                    Ok(Some(vec![]))
                }
            };
        }
    }

    fn wants_commit(&self) -> bool {
        self.revoking.is_some()
    }

    fn pause(&mut self, partitions: &[String]) {
        let partitions = partitions.iter().filter_map(|key| split_key(key)).collect();
        self.send(Command::Pause(partitions));
    }

    async fn resume(&mut self, partitions: &[String], from: &Positions) -> std::io::Result<()> {
        let targets: Vec<(String, i32, Option<i64>)> = partitions
            .iter()
            .filter_map(|key| {
                let (topic, partition) = split_key(key)?;
                Some((topic, partition, from.get(key).map(|offset| offset + 1)))
            })
            .collect();
        let (done, answered) = oneshot::channel();
        self.send(Command::Resume(targets.clone(), done));
        // The consumer thread sends an empty batch before it seeks: records of these partitions
        // ahead of it were read before the seek and come again after it, so they go; the others
        // are kept, in order. Everything behind it was read after the seek.
        if let Some(records) = self.records.as_mut() {
            while let Some(delivery) = records.recv().await {
                let batch = match delivery {
                    Delivery::Barrier => break,
                    Delivery::Records(batch) => batch?,
                    // Not now: the partitions go without a commit, and are read again elsewhere.
                    Delivery::Revoking(answer) => {
                        let _ = answer.send(());
                        continue;
                    }
                };
                let rewound = |r: &SourceRecord| targets.iter().any(|(t, p, _)| **t == *r.stream && *p == r.partition);
                self.held.extend(batch.into_iter().filter(|r| !rewound(r)));
            }
        }
        let _ = answered.await;
        Ok(())
    }

    fn reassigned(&mut self) -> bool {
        self.assigned.swap(false, Ordering::AcqRel)
    }

    fn drain(&mut self) -> Vec<SourceRecord> {
        let mut drained: Vec<SourceRecord> = self.held.drain(..).collect();
        if let Some(records) = self.records.as_mut() {
            while let Ok(delivery) = records.try_recv() {
                match delivery {
                    Delivery::Records(Ok(batch)) => drained.extend(batch),
                    Delivery::Revoking(answer) => self.revoking = Some(answer),
                    _ => {}
                }
            }
        }
        drained
    }

    async fn committed(&mut self, positions: &Positions) {
        let mut known = self.positions.lock().expect("not poisoned");
        for (key, offset) in positions {
            let entry = known.entry(key.clone()).or_insert(*offset);
            *entry = (*entry).max(*offset);
        }
        drop(known);
        self.send(Command::Commit(positions.clone()));
        if let Some(answer) = self.revoking.take() {
            let _ = answer.send(());
        }
    }
}

/// The brokers, the group and the user's [kafka.properties].
fn client_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &settings.brokers).set("group.id", &settings.group_id);
    for (key, value) in &settings.properties {
        config.set(key, value);
    }
    config
}

/// `topic/partition` → (topic, partition).
fn split_key(key: &str) -> Option<(String, i32)> {
    let (topic, partition) = key.rsplit_once('/')?;
    Some((topic.to_string(), partition.parse().ok()?))
}

fn io_error(what: &str, e: KafkaError) -> std::io::Error {
    std::io::Error::other(format!("{what}: {e}"))
}

/// The consumer thread: polls records into batches and carries out commands between polls.
fn poll_loop(consumer: BaseConsumer<TablePositions>, commands: std::sync::mpsc::Receiver<Command>) {
    let mut streams: HashMap<String, Arc<str>> = HashMap::new();
    // Never held across a poll: the rebalance callback inside it takes the outbox too.
    let outbox = || consumer.context().outbox.lock().expect("not poisoned");
    let in_partitions =
        |r: &SourceRecord, partitions: &[(String, i32)]| partitions.iter().any(|(t, p)| **t == *r.stream && *p == r.partition);
    loop {
        while let Ok(command) = commands.try_recv() {
            match command {
                Command::Stop => return,
                Command::Pause(partitions) => {
                    if let Err(e) = consumer.pause(&partition_list(partitions.iter().map(|(t, p)| (t.as_str(), *p, None)))) {
                        warn!(error = %e, "could not pause partitions");
                    }
                    outbox().batch.retain(|r| !in_partitions(r, &partitions));
                }
                Command::Resume(targets, done) => {
                    let partitions: Vec<(String, i32)> = targets.iter().map(|(t, p, _)| (t.clone(), *p)).collect();
                    {
                        let mut outbox = outbox();
                        outbox.batch.retain(|r| !in_partitions(r, &partitions));
                        if !outbox.send_batch() || !outbox.send(Delivery::Barrier) {
                            return;
                        }
                    }
                    for (topic, partition, offset) in &targets {
                        let offset = offset.map_or(Offset::Beginning, Offset::Offset);
                        if let Err(e) = consumer.seek(topic, *partition, offset, Duration::from_secs(10)) {
                            warn!(topic, partition, ?offset, error = %e, "could not seek a resumed partition");
                        }
                    }
                    if let Err(e) = consumer.resume(&partition_list(partitions.iter().map(|(t, p)| (t.as_str(), *p, None)))) {
                        warn!(error = %e, "could not resume partitions");
                    }
                    let _ = done.send(());
                }
                Command::Commit(positions) => {
                    if let Ok(assignment) = consumer.assignment() {
                        commit_group_offsets(&consumer, &assignment, &positions);
                    }
                }
            }
        }
        let polled = consumer.poll(POLL);
        let mut outbox = outbox();
        match polled {
            Some(Ok(message)) => {
                let topic = message.topic();
                let stream = match streams.get(topic) {
                    Some(stream) => stream.clone(),
                    None => streams.entry(topic.to_string()).or_insert_with(|| topic.into()).clone(),
                };
                let (partition, offset) = (message.partition(), message.offset());
                let (key, value) = (message.key().map(bytes::Bytes::copy_from_slice), message.payload().map(bytes::Bytes::copy_from_slice));
                let message = Message::new(topic.into(), key, value);
                // The dead-letter table keeps the message's value as the raw bytes.
                outbox.push(SourceRecord { stream, partition, offset, raw: Default::default(), message: Ok(message) });
                if !outbox.is_due() {
                    continue;
                }
            }
            Some(Err(e)) => warn!(error = %e, "Kafka consumer error"),
            None => {}
        }
        if !outbox.send_batch() {
            return;
        }
    }
}

fn partition_list<'a>(partitions: impl Iterator<Item = (&'a str, i32, Option<i64>)>) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    for (topic, partition, offset) in partitions {
        let mut element = list.add_partition(topic, partition);
        if let Some(offset) = offset {
            let _ = element.set_offset(Offset::Offset(offset));
        }
    }
    list
}

/// Commits the group offsets (next offset to read) of `partitions` that the tables have
/// committed: for lag monitoring only, the tables decide where reading starts.
fn commit_group_offsets(consumer: &BaseConsumer<TablePositions>, partitions: &TopicPartitionList, positions: &Positions) {
    let elements = partitions.elements();
    let list = partition_list(elements.iter().filter_map(|element| {
        let offset = positions.get(&position_key(element.topic(), element.partition()))?;
        Some((element.topic(), element.partition(), Some(offset + 1)))
    }));
    if list.count() > 0 {
        if let Err(e) = consumer.commit(&list, CommitMode::Async) {
            warn!(error = %e, "could not commit the group's offsets (lag reporting only)");
        }
    }
}

/// The partition's end offset when `position` (the table's last offset) lies at or beyond it.
fn beyond_the_end(consumer: &BaseConsumer<TablePositions>, topic: &str, partition: i32, position: i64) -> Option<i64> {
    match consumer.fetch_watermarks(topic, partition, Duration::from_secs(10)) {
        Ok((_, end)) => (position >= end).then_some(end),
        Err(e) => {
            warn!(topic, partition, error = %e, "could not read the partition's end offset; resuming at the table's position");
            None
        }
    }
}

/// The consumer's context: on assignment, each partition starts after its table's position.
struct TablePositions {
    positions: Arc<Mutex<Positions>>,
    assigned: Arc<AtomicBool>,
    outbox: Mutex<Outbox>,
}

impl TablePositions {
    /// Hands over what was polled and waits until the ingest side has committed it all, so
    /// that the next owner of these partitions starts after it instead of reading it again.
    fn commit_before_revoking(&self) {
        let (answer, answered) = std::sync::mpsc::channel();
        {
            let mut outbox = self.outbox.lock().expect("not poisoned");
            if outbox.sender.is_none() || !outbox.send_batch() || !outbox.send(Delivery::Revoking(answer)) {
                return;
            }
        }
        if answered.recv_timeout(REVOKE_WAIT).is_err() {
            warn!(waited = ?REVOKE_WAIT, "partitions revoked before what was read of them was committed: their new owner reads it again");
        }
    }
}

impl ClientContext for TablePositions {
    fn stats(&self, statistics: rdkafka::Statistics) {
        for (name, topic) in &statistics.topics {
            for (partition, stats) in &topic.partitions {
                if *partition >= 0 && stats.consumer_lag >= 0 {
                    crate::metrics::consumer_lag(name, *partition, stats.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for TablePositions {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, assignment: &mut TopicPartitionList) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let positions = self.positions.lock().expect("not poisoned").clone();
                let mut taken = TopicPartitionList::new();
                let mut from_tables = 0;
                for element in assignment.elements() {
                    let (topic, partition) = (element.topic(), element.partition());
                    let Some(position) = positions.get(&position_key(topic, partition)) else {
                        taken.add_partition(topic, partition);
                        continue;
                    };
                    match beyond_the_end(consumer, topic, partition, *position) {
                        Some(end) => error!(
                            topic,
                            partition,
                            table_position = position,
                            topic_end = end,
                            "the table has read past the end of this partition (the topic was recreated or its offsets \
                             reset): the partition is not read, so nothing is skipped; move the table's position or \
                             the topic back to reconcile"
                        ),
                        None => {
                            let _ = taken.add_partition_offset(topic, partition, Offset::Offset(position + 1));
                            from_tables += 1;
                        }
                    }
                }
                info!(partitions = taken.count(), from_table_positions = from_tables, "Kafka partitions assigned");
                self.assigned.store(true, Ordering::Release);
                if let Err(e) = consumer.assign(&taken) {
                    warn!(error = %e, "could not take the assigned partitions");
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                info!(partitions = assignment.count(), "Kafka partitions revoked: committing what was read of them first");
                self.commit_before_revoking();
                let positions = self.positions.lock().expect("not poisoned").clone();
                commit_group_offsets(consumer, assignment, &positions);
                if let Err(e) = consumer.unassign() {
                    warn!(error = %e, "could not give up the revoked partitions");
                }
            }
            other => warn!(error = ?other, "Kafka rebalance failed"),
        }
    }
}

/// The end offset (the next offset to be written) of each partition, by position key: for lag
/// reports (`floe status`). Joins no group.
pub fn partition_ends(settings: &KafkaSettings, partitions: &[(String, i32)]) -> std::io::Result<Positions> {
    let consumer: BaseConsumer = client_config(settings).create().map_err(|e| io_error("cannot create the Kafka consumer", e))?;
    let mut ends = Positions::new();
    for (topic, partition) in partitions {
        let (_, end) = consumer
            .fetch_watermarks(topic, *partition, settings.connect_timeout)
            .map_err(|e| io_error(&format!("cannot read the end of {topic}/{partition} from {}", settings.brokers), e))?;
        ends.insert(position_key(topic, *partition), end);
    }
    Ok(ends)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offset: i64) -> SourceRecord {
        let message = Message::new("t".into(), None, Some(bytes::Bytes::from_static(b"{}")));
        SourceRecord { stream: "t".into(), partition: 0, offset, raw: Default::default(), message: Ok(message) }
    }

    #[test]
    fn a_batch_is_due_when_full_or_when_its_first_record_has_waited() {
        let mut outbox = Outbox::default();
        assert!(!outbox.is_due(), "nothing to hand over");
        outbox.push(record(0));
        assert!(!outbox.is_due(), "one fresh record waits for more");
        std::thread::sleep(BATCH_WAIT);
        outbox.push(record(1));
        assert!(outbox.is_due(), "the first record has waited long enough");
        outbox.send_batch(); // nobody listens: the batch is dropped, and the wait starts over
        assert!(!outbox.is_due(), "nothing to hand over");
        (0..BATCH_RECORDS as i64).for_each(|offset| outbox.push(record(offset)));
        assert!(outbox.is_due(), "a full batch goes at once");
    }
}
