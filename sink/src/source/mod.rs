//! Sources of change records: the [`Source`] seam every input implements, one module per
//! connector ([`file`]: NDJSON files and stdin; [`kafka`]: topics through a consumer group).
//! Each record carries its position in the input
//! stream, which is stored with every row (`_src_partition`, `_src_offset`) and in every commit,
//! so a restart skips exactly what was committed.

mod chunk_lines;
mod chunks;
mod detached;
pub mod file;
pub mod kafka;
mod line;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

/// One record as read, before decoding.
#[derive(Debug, Clone)]
pub struct SourceRecord {
    /// Identity of the input stream positions are counted in (`file:<path>`, `stdin`, or a
    /// Kafka topic). Shared by every record of the stream.
    pub stream: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    /// The record's bytes as read, kept for the dead-letter table: a file's line, perhaps
    /// without its value's head ([`SourceRecord::raw_bytes`] puts it back). Empty for a Kafka
    /// message, whose key and value are the bytes as read.
    pub raw: Raw,
    /// The message, or why the input line itself could not be read as one.
    pub message: Result<Message, String>,
}

#[derive(Debug, Clone)]
pub struct Message {
    /// Shared by the messages of one topic where the source can (NDJSON lines).
    pub topic: Arc<str>,
    pub key: Option<bytes::Bytes>,
    /// The value, or, when `value_head` is set, only its part after the head, still escaped as
    /// it was in a JSON string: read the whole value with [`Message::whole_value`].
    pub value: Option<bytes::Bytes>,
    /// The start of the value, when a source shares it between the values of a topic that
    /// begin alike (NDJSON lines: the Connect schema envelope's text).
    pub value_head: Option<ValueHead>,
}

/// The start that the values of a topic share (NDJSON lines: the Connect schema envelope's
/// text), in one allocation instead of a copy per message, which a decoder can recognise by
/// identity instead of by content. A value with a head is the escaped content of a JSON string
/// (the line's): the head in both forms, and the message's `value` the escaped rest. Most of the
/// rest's bytes are escapes and text a decoder can compare without unescaping them, so the rest
/// is handed over as it was read, its escapes not yet checked: whoever reads it checks them.
///
/// One reference count for both forms: every message of the topic holds the head, and the
/// count's cache line goes back and forth between the thread that makes messages and the one
/// that drops them, once per change of hands.
#[derive(Debug, Clone)]
pub struct ValueHead(Arc<HeadForms>);

/// A value head's text, and the same escaped as in a JSON string.
#[derive(Debug)]
pub struct HeadForms {
    pub text: bytes::Bytes,
    pub escaped: bytes::Bytes,
}

impl ValueHead {
    pub fn new(text: bytes::Bytes, escaped: bytes::Bytes) -> Self {
        Self(Arc::new(HeadForms { text, escaped }))
    }

    /// Whether `self` and `other` are one head (one allocation), not only alike.
    pub fn is(&self, other: &ValueHead) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl std::ops::Deref for ValueHead {
    type Target = HeadForms;

    fn deref(&self) -> &HeadForms {
        &self.0
    }
}

impl Message {
    pub fn new(topic: Arc<str>, key: Option<bytes::Bytes>, value: Option<bytes::Bytes>) -> Self {
        Self { topic, key, value, value_head: None }
    }

    /// The value's bytes in one piece: the head and the unescaped rest put together when it has
    /// a head; `Err` when the rest's escapes are not valid.
    pub fn whole_value(&self) -> Option<Result<std::borrow::Cow<'_, [u8]>, &'static str>> {
        let value = self.value.as_deref()?;
        let Some(head) = &self.value_head else { return Some(Ok(std::borrow::Cow::Borrowed(value))) };
        let mut whole = bytes::BytesMut::new();
        Some(crate::escapes::unescape_all(&head.text, value, &mut whole).map(|()| std::borrow::Cow::Owned(whole.into())))
    }

    fn value_len(&self) -> usize {
        self.value.as_ref().map_or(0, bytes::Bytes::len) + self.value_head.as_ref().map_or(0, |head| head.escaped.len())
    }
}

/// A record's bytes as read. An NDJSON line whose value starts with its topic's shared head is
/// kept without the head (most of the line, the same on every line of the topic): the head is
/// the message's [`Message::value_head`], put back at `head_at`, escaped, when the bytes are
/// asked for ([`SourceRecord::raw_bytes`]: for a dead letter, rarely).
#[derive(Debug, Clone, PartialEq)]
pub enum Raw {
    Whole(bytes::Bytes),
    WithoutHead { bytes: bytes::Bytes, head_at: usize },
}

impl Default for Raw {
    fn default() -> Self {
        Raw::Whole(bytes::Bytes::new())
    }
}

impl From<bytes::Bytes> for Raw {
    fn from(bytes: bytes::Bytes) -> Self {
        Raw::Whole(bytes)
    }
}

impl SourceRecord {
    /// The record's bytes as read, in one piece: empty for a Kafka message.
    pub fn raw_bytes(&self) -> Vec<u8> {
        match (&self.raw, self.head()) {
            (Raw::WithoutHead { bytes, head_at }, Some(head)) => [&bytes[..*head_at], &head.escaped, &bytes[*head_at..]].concat(),
            (Raw::WithoutHead { bytes, .. } | Raw::Whole(bytes), _) => bytes.to_vec(),
        }
    }

    /// The input bytes this record takes, for the sink's `batch_bytes`.
    pub fn size(&self) -> usize {
        match (&self.raw, &self.message) {
            (Raw::Whole(bytes), Ok(m)) if bytes.is_empty() => m.key.as_ref().map_or(0, bytes::Bytes::len) + m.value_len(),
            (Raw::Whole(bytes), _) => bytes.len(),
            (Raw::WithoutHead { bytes, .. }, _) => bytes.len() + self.head().map_or(0, |head| head.escaped.len()),
        }
    }

    fn head(&self) -> Option<&ValueHead> {
        self.message.as_ref().ok()?.value_head.as_ref()
    }

    /// Key under which this record's position is recorded in snapshot summaries.
    pub fn position_key(&self) -> String {
        position_key(&self.stream, self.partition)
    }
}

/// `<stream>/<partition>`: how positions are keyed in snapshot summaries and [`Positions`].
pub fn position_key(stream: &str, partition: i32) -> String {
    format!("{stream}/{partition}")
}

/// Last handled offset per position key.
pub type Positions = BTreeMap<String, i64>;

/// An input of change records.
///
/// The ingest loop asks for records batch by batch, tells the source where the tables it feeds
/// have committed, and pauses the partitions of a table that must stop without stopping the
/// others. Sources never decide what is committed: the tables' snapshots do.
#[async_trait]
pub trait Source: Send {
    /// The topics this source will deliver, when it knows them up front (Kafka does, a file
    /// does not). Their tables are opened before the first record, and the source is seeked to
    /// their committed positions.
    fn topics(&self) -> Option<Vec<String>> {
        None
    }

    /// Continue each listed partition after its committed offset. Partitions not listed start
    /// where the source starts. Records at or before a table's position are skipped anyway, so
    /// a source that cannot seek (stdin) only reads more.
    async fn seek(&mut self, committed: &Positions) -> std::io::Result<()>;

    /// The next records, waiting until some arrive. `Ok(None)`: the input has ended.
    async fn next_batch(&mut self) -> std::io::Result<Option<Vec<SourceRecord>>>;

    /// Stop delivering records of these partitions (position keys) until resumed.
    fn pause(&mut self, partitions: &[String]);

    /// Deliver these partitions again, from their offsets in `from` (re-reading what was
    /// delivered but not committed while they were paused).
    async fn resume(&mut self, partitions: &[String], from: &Positions) -> std::io::Result<()>;

    /// Whether partitions were assigned to this source since the last call (Kafka rebalances):
    /// their tables may have been written by another sink meanwhile.
    fn reassigned(&mut self) -> bool {
        false
    }

    /// Whether everything read so far must be committed now (Kafka: partitions are being
    /// revoked). The loop commits, then says so through [`Source::committed`].
    fn wants_commit(&self) -> bool {
        false
    }

    /// Records already read that [`Source::next_batch`] has not handed out yet, without waiting.
    /// On shutdown they are ingested before the last commit: stdin cannot give them again.
    fn drain(&mut self) -> Vec<SourceRecord> {
        vec![]
    }

    /// Positions now committed in the tables (Kafka commits its group offsets here).
    async fn committed(&mut self, _positions: &Positions) {}
}
