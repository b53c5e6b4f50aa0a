//! For tests and benches (feature `testing`): Debezium JSON event lines, the shape
//! `{"topic", "key", "value"}` with the Kafka Connect schema envelope, as JsonConverter writes it;
//! and [`MemorySource`], a [`Source`] of partitioned records that tests feed while it runs.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Map, Value};
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

/// Generates change events for one table with an `int64` key column `id`.
#[derive(Debug, Clone)]
pub struct TableEvents {
    pub topic: String,
    pub columns: Vec<Column>,
    /// Whether keys and values carry the Connect schema envelope (`schemas.enable`).
    pub schemas: bool,
}

impl TableEvents {
    pub fn new(topic: &str, columns: Vec<Column>) -> Self {
        Self { topic: topic.into(), columns, schemas: true }
    }

    /// The same events as JsonConverter writes them with `schemas.enable=false`: payloads only.
    pub fn without_schemas(mut self) -> Self {
        self.schemas = false;
        self
    }

    fn struct_schema(&self, name: &str) -> Value {
        let mut fields = vec![json!({"type": "int64", "optional": false, "field": "id"})];
        fields.extend(self.columns.iter().map(|c| json!({"type": c.connect_type, "optional": true, "field": c.name})));
        json!({"type": "struct", "fields": fields, "optional": true, "name": format!("{}.Value", self.topic), "field": name})
    }

    fn key(&self, id: i64) -> String {
        if !self.schemas {
            return json!({"id": id}).to_string();
        }
        let schema = json!({"type": "struct", "fields": [{"type": "int64", "optional": false, "field": "id"}], "optional": false});
        envelope(&schema, &json!({"id": id}))
    }

    fn value(&self, op: &str, before: Option<Value>, after: Option<Value>) -> String {
        let payload = json!({"before": before, "after": after, "op": op, "source": {"ts_ms": 1_700_000_000_000i64}});
        if !self.schemas {
            return payload.to_string();
        }
        let schema = json!({
            "type": "struct", "optional": false,
            "fields": [self.struct_schema("before"), self.struct_schema("after"),
                       {"type": "struct", "field": "source", "optional": false,
                        "fields": [{"type": "int64", "optional": false, "field": "ts_ms"}]},
                       {"type": "string", "optional": false, "field": "op"}]
        });
        envelope(&schema, &payload)
    }

    fn row(&self, id: i64, values: &[Value]) -> Value {
        let mut row = Map::new();
        row.insert("id".into(), Value::from(id));
        for (column, value) in self.columns.iter().zip(values) {
            row.insert(column.name.clone(), value.clone());
        }
        Value::Object(row)
    }

    fn line(&self, key: Option<String>, value: Option<String>) -> String {
        json!({"topic": self.topic, "key": key, "value": value}).to_string()
    }

    pub fn upsert(&self, op: &str, id: i64, values: &[Value]) -> String {
        let (key, value) = self.upsert_message(op, id, values);
        self.line(key, value)
    }

    /// The Kafka key and value of an upsert.
    pub fn upsert_message(&self, op: &str, id: i64, values: &[Value]) -> (Option<String>, Option<String>) {
        (Some(self.key(id)), Some(self.value(op, None, Some(self.row(id, values)))))
    }

    /// A delete (key-only before image) followed by its tombstone.
    pub fn delete(&self, id: i64) -> [String; 2] {
        let before = json!({"id": id});
        [self.line(Some(self.key(id)), Some(self.value("d", Some(before), None))), self.line(Some(self.key(id)), None)]
    }

    pub fn truncate(&self) -> String {
        self.line(None, Some(self.value("t", None, None)))
    }
}

/// `{"schema":…,"payload":…}` with the schema first, as Kafka's JsonConverter writes it.
fn envelope(schema: &Value, payload: &Value) -> String {
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
        let raw = json!({"topic": topic, "key": key, "value": value}).to_string().into();
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
