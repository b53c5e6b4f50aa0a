//! For tests and benches (feature `testing`): Debezium JSON event lines, the shape
//! `{"topic", "key", "value"}` with the Kafka Connect schema envelope, as JsonConverter writes it;
//! and [`MemorySource`], a [`Source`] of partitioned records that tests feed while it runs.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::source::{position_key, Message, Positions, Source, SourceRecord};

/// A column of a generated table: name and Connect type (`int32`, `int64`, `string`, …).
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub connect_type: String,
}

impl Column {
    pub fn new(name: &str, connect_type: &str) -> Self {
        Self { name: name.into(), connect_type: connect_type.into() }
    }
}

/// Generates change events for one table with an `int64` key column `id`, in the shape Debezium
/// 3.x's PostgreSQL connector writes them (copied from a capture under `tests/captures`): members
/// in Debezium's order, the after image in column order, the whole `source` block, `transaction`,
/// and the event's `ts_ms`/`ts_us`/`ts_ns`. Parsing and skipping those is part of every event's
/// cost, so a bench over lighter events would flatter floe. Times, LSN and transaction id follow
/// the key (an update repeats its create's), snapshot reads (`op` "r") are written like other
/// changes, and the topic is `<prefix>.<schema>.<table>`, as Debezium names it.
#[derive(Debug, Clone)]
pub struct TableEvents {
    pub topic: String,
    pub columns: Vec<Column>,
    /// Whether keys and values carry the Connect schema envelope (`schemas.enable`).
    pub schemas: bool,
}

/// The `source` block's schema, as Debezium 3.6's PostgreSQL connector writes it.
const SOURCE_SCHEMA: &str = concat!(
    r#"{"type":"struct","fields":[{"type":"string","optional":false,"field":"version"},"#,
    r#"{"type":"string","optional":false,"field":"connector"},{"type":"string","optional":false,"field":"name"},"#,
    r#"{"type":"int64","optional":false,"field":"ts_ms"},{"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,"#,
    r#""parameters":{"allowed":"true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"},"#,
    r#""default":"false","field":"snapshot"},{"type":"string","optional":false,"field":"db"},"#,
    r#"{"type":"string","optional":true,"field":"sequence"},{"type":"int64","optional":true,"field":"ts_us"},"#,
    r#"{"type":"int64","optional":true,"field":"ts_ns"},{"type":"string","optional":false,"field":"schema"},"#,
    r#"{"type":"string","optional":false,"field":"table"},{"type":"int64","optional":true,"field":"txId"},"#,
    r#"{"type":"int64","optional":true,"field":"lsn"},{"type":"int64","optional":true,"field":"xmin"},"#,
    r#"{"type":"string","optional":true,"field":"origin"},{"type":"int64","optional":true,"field":"origin_lsn"}],"#,
    r#""optional":false,"name":"io.debezium.connector.postgresql.Source","version":1,"field":"source"}"#
);

/// The schema of `transaction`, and of the event's own times, as Debezium writes them.
const TRANSACTION_AND_TIMES_SCHEMA: &str = concat!(
    r#"{"type":"struct","fields":[{"type":"string","optional":false,"field":"id"},"#,
    r#"{"type":"int64","optional":false,"field":"total_order"},{"type":"int64","optional":false,"field":"data_collection_order"}],"#,
    r#""optional":true,"name":"event.block","version":1,"field":"transaction"},{"type":"string","optional":false,"field":"op"},"#,
    r#"{"type":"int64","optional":true,"field":"ts_ms"},{"type":"int64","optional":true,"field":"ts_us"},"#,
    r#"{"type":"int64","optional":true,"field":"ts_ns"}"#
);

/// The capture's times, which each event moves on from.
const FIRST_TS_MS: i64 = 1_795_614_282_793;
const FIRST_LSN: i64 = 65_718_688;

impl TableEvents {
    pub fn new(topic: &str, columns: Vec<Column>) -> Self {
        Self { topic: topic.into(), columns, schemas: true }
    }

    /// The same events as JsonConverter writes them with `schemas.enable=false`: payloads only.
    pub fn without_schemas(mut self) -> Self {
        self.schemas = false;
        self
    }

    fn struct_schema(&self, name: &str) -> String {
        let mut fields = vec![r#"{"type":"int64","optional":false,"field":"id"}"#.to_string()];
        fields.extend(
            self.columns.iter().map(|c| format!(r#"{{"type":{},"optional":true,"field":{}}}"#, quoted(&c.connect_type), quoted(&c.name))),
        );
        format!(
            r#"{{"type":"struct","fields":[{}],"optional":true,"name":{},"field":"{name}"}}"#,
            fields.join(","),
            quoted(&format!("{}.Value", self.topic))
        )
    }

    fn key(&self, id: i64) -> String {
        let payload = format!(r#"{{"id":{id}}}"#);
        if !self.schemas {
            return payload;
        }
        let name = quoted(&format!("{}.Key", self.topic));
        let schema =
            format!(r#"{{"type":"struct","fields":[{{"type":"int64","optional":false,"field":"id"}}],"optional":false,"name":{name}}}"#);
        envelope(&schema, &payload)
    }

    /// A value whose images are the JSON texts given (`null` when absent); `id` moves its times
    /// and log position on from the capture's.
    fn value(&self, op: &str, id: i64, before: Option<String>, after: Option<String>) -> String {
        let (before, after) = (before.as_deref().unwrap_or("null"), after.as_deref().unwrap_or("null"));
        // The connector hands the event on about half a second after the change, as in the capture.
        let ts_ms = FIRST_TS_MS + id + 557;
        let ts_us = ts_ms * 1_000 + 832;
        let payload = format!(
            r#"{{"before":{before},"after":{after},"source":{},"transaction":null,"op":{},"ts_ms":{ts_ms},"ts_us":{ts_us},"ts_ns":{}}}"#,
            self.source(id),
            quoted(op),
            ts_us * 1_000 + 250,
        );
        if !self.schemas {
            return payload;
        }
        let schema = format!(
            r#"{{"type":"struct","fields":[{},{},{SOURCE_SCHEMA},{TRANSACTION_AND_TIMES_SCHEMA}],"optional":false,"name":{},"version":2}}"#,
            self.struct_schema("before"),
            self.struct_schema("after"),
            quoted(&format!("{}.Envelope", self.topic)),
        );
        envelope(&schema, &payload)
    }

    /// The `source` block of event `id`: connector `name`, schema and table from the topic.
    fn source(&self, id: i64) -> String {
        let mut parts = self.topic.splitn(3, '.');
        let (name, schema, table) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let (ts_ms, lsn) = (FIRST_TS_MS + id, FIRST_LSN + id * 64);
        format!(
            concat!(
                r#"{{"version":"3.6.3.Final","connector":"postgresql","name":{},"ts_ms":{},"snapshot":"false","db":"app","#,
                r#""sequence":"[\"{}\",\"{}\"]","ts_us":{},"ts_ns":{},"schema":{},"table":{},"txId":{},"lsn":{},"#,
                r#""xmin":null,"origin":null,"origin_lsn":null}}"#
            ),
            quoted(name),
            ts_ms,
            lsn,
            lsn,
            ts_ms * 1_000 + 535,
            (ts_ms * 1_000 + 535) * 1_000,
            quoted(schema),
            quoted(table),
            1_044 + id,
            lsn,
        )
    }

    /// The row of `id` in column order, as Debezium writes an image.
    fn row(&self, id: i64, values: &[Value]) -> String {
        let mut members = vec![format!(r#""id":{id}"#)];
        members.extend(self.columns.iter().zip(values).map(|(column, value)| format!("{}:{value}", quoted(&column.name))));
        format!("{{{}}}", members.join(","))
    }

    /// The NDJSON line of a message, as the capture tool writes it: topic, key, value, and the
    /// headers Debezium's connector adds.
    fn line(&self, key: Option<String>, value: Option<String>) -> String {
        let prefix = self.topic.split('.').next().unwrap_or("");
        let headers = [
            ["__debezium.context.connectorLogicalName", prefix],
            ["__debezium.context.taskId", "0"],
            ["__debezium.context.connectorName", "postgresql"],
            ["__debezium.context.runId", "01a212f3-8e1b-7e16-8481-8a944ed5cf89"],
        ];
        format!(r#"{{"topic":{},"key":{},"value":{},"headers":{}}}"#, quoted(&self.topic), json!(key), json!(value), json!(headers))
    }

    pub fn upsert(&self, op: &str, id: i64, values: &[Value]) -> String {
        let (key, value) = self.upsert_message(op, id, values);
        self.line(key, value)
    }

    /// The Kafka key and value of an upsert.
    pub fn upsert_message(&self, op: &str, id: i64, values: &[Value]) -> (Option<String>, Option<String>) {
        (Some(self.key(id)), Some(self.value(op, id, None, Some(self.row(id, values)))))
    }

    /// A delete followed by its tombstone. Its before image holds the key and nulls, as under
    /// PostgreSQL's default replica identity.
    pub fn delete(&self, id: i64) -> [String; 2] {
        let before = self.row(id, &vec![Value::Null; self.columns.len()]);
        [self.line(Some(self.key(id)), Some(self.value("d", id, Some(before), None))), self.line(Some(self.key(id)), None)]
    }

    pub fn truncate(&self) -> String {
        self.line(None, Some(self.value("t", 0, None, None)))
    }
}

/// `text` as a JSON string.
fn quoted(text: &str) -> String {
    Value::from(text).to_string()
}

/// `{"schema":…,"payload":…}` with the schema first, as Kafka's JsonConverter writes it.
fn envelope(schema: &str, payload: &str) -> String {
    format!(r#"{{"schema":{schema},"payload":{payload}}}"#)
}

/// A partitioned in-memory source, fed through its [`MemoryProducer`] while an ingest runs. It
/// keeps every record, so it can seek and rewind like a Kafka topic; partitions are
/// `<topic>/<partition>` and offsets count from 0 per partition. Input ends when every producer
/// is dropped and the unpaused partitions are drained.
pub struct MemorySource {
    incoming: mpsc::UnboundedReceiver<SourceRecord>,
    log: BTreeMap<String, Vec<SourceRecord>>,
    /// Per partition: the offset after which records are delivered, and the next log index.
    floor: BTreeMap<String, i64>,
    cursor: BTreeMap<String, usize>,
    paused: HashSet<String>,
    closed: bool,
    handled: Arc<AtomicU64>,
    delivered: u64,
}

/// Records per batch, like a Kafka consumer's `max.poll.records`.
const MAX_POLL: usize = 500;

/// Feeds a [`MemorySource`].
#[derive(Clone)]
pub struct MemoryProducer {
    sender: mpsc::UnboundedSender<SourceRecord>,
    offsets: Arc<std::sync::Mutex<BTreeMap<String, i64>>>,
    handled: Arc<AtomicU64>,
}

impl MemorySource {
    pub fn new() -> (Self, MemoryProducer) {
        let (sender, incoming) = mpsc::unbounded_channel();
        let handled = Arc::new(AtomicU64::new(0));
        let source = Self {
            incoming,
            log: BTreeMap::new(),
            floor: BTreeMap::new(),
            cursor: BTreeMap::new(),
            paused: HashSet::new(),
            closed: false,
            handled: handled.clone(),
            delivered: 0,
        };
        (source, MemoryProducer { sender, offsets: Default::default(), handled })
    }

    fn take_deliverable(&mut self) -> Vec<SourceRecord> {
        let mut batch = vec![];
        for (partition, records) in &self.log {
            if self.paused.contains(partition) {
                continue;
            }
            let floor = self.floor.get(partition).copied().unwrap_or(-1);
            let cursor = self.cursor.entry(partition.clone()).or_insert(0);
            // At most a poll's worth at a time, as a consumer receives them.
            let end = records.len().min(*cursor + MAX_POLL.saturating_sub(batch.len()));
            batch.extend(records[*cursor..end].iter().filter(|r| r.offset > floor).cloned());
            *cursor = end;
        }
        batch
    }
}

impl MemoryProducer {
    /// Appends a message to `topic`'s `partition`; returns its offset.
    pub fn send(&self, topic: &str, partition: i32, key: Option<String>, value: Option<String>) -> i64 {
        let mut offsets = self.offsets.lock().expect("not poisoned");
        let next = offsets.entry(position_key(topic, partition)).or_insert(0);
        let offset = *next;
        *next += 1;
        let raw = bytes::Bytes::from(json!({"topic": topic, "key": key, "value": value}).to_string()).into();
        let message = Message::new(topic.into(), key.map(Into::into), value.map(Into::into));
        let record = SourceRecord { stream: topic.into(), partition, offset, raw, message: Ok(message) };
        self.sender.send(record).expect("source alive");
        offset
    }

    /// Records the ingest loop has finished handling (it asks for more only then).
    pub fn handled(&self) -> u64 {
        self.handled.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Source for MemorySource {
    async fn seek(&mut self, committed: &Positions) -> std::io::Result<()> {
        self.floor.extend(committed.iter().map(|(k, v)| (k.clone(), *v)));
        self.cursor.clear();
        Ok(())
    }

    async fn next_batch(&mut self) -> std::io::Result<Option<Vec<SourceRecord>>> {
        self.handled.store(self.delivered, Ordering::SeqCst);
        loop {
            while let Ok(record) = self.incoming.try_recv() {
                self.log.entry(record.position_key()).or_default().push(record);
            }
            let batch = self.take_deliverable();
            if !batch.is_empty() {
                self.delivered += batch.len() as u64;
                return Ok(Some(batch));
            }
            if self.closed {
                return Ok(None);
            }
            match self.incoming.recv().await {
                Some(record) => self.log.entry(record.position_key()).or_default().push(record),
                None => self.closed = true,
            }
        }
    }

    fn drain(&mut self) -> Vec<SourceRecord> {
        while let Ok(record) = self.incoming.try_recv() {
            self.log.entry(record.position_key()).or_default().push(record);
        }
        let mut drained = vec![];
        loop {
            let batch = self.take_deliverable();
            if batch.is_empty() {
                return drained;
            }
            drained.extend(batch);
        }
    }

    fn pause(&mut self, partitions: &[String]) {
        self.paused.extend(partitions.iter().cloned());
    }

    async fn resume(&mut self, partitions: &[String], from: &Positions) -> std::io::Result<()> {
        for partition in partitions {
            self.paused.remove(partition);
            self.floor.insert(partition.clone(), from.get(partition).copied().unwrap_or(-1));
            self.cursor.insert(partition.clone(), 0);
        }
        Ok(())
    }
}
