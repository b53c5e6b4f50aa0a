//! Sources of change records. Each record carries its position in the input stream, which is
//! stored with every row (`_src_partition`, `_src_offset`) and in every commit, so a restart
//! skips exactly what was committed.

pub mod file;

/// One record as read, before decoding.
#[derive(Debug, Clone)]
pub struct SourceRecord {
    /// Identity of the input stream positions are counted in (`file:<path>`, `stdin`, or a
    /// Kafka topic).
    pub stream: String,
    pub partition: i32,
    pub offset: i64,
    /// The record's bytes exactly as read, kept for the dead-letter table.
    pub raw: Vec<u8>,
    /// The message, or why the input line itself could not be read as one.
    pub message: Result<Message, String>,
}

#[derive(Debug, Clone)]
pub struct Message {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

impl SourceRecord {
    /// Key under which this record's position is recorded in snapshot summaries.
    pub fn position_key(&self) -> String {
        format!("{}/{}", self.stream, self.partition)
    }
}
