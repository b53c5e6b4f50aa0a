//! NDJSON files (or stdin) of `{"topic": …, "key": "<string>"|null, "value": "<string>"|null}`,
//! the shape of a Kafka message as Debezium's JsonConverter writes it. Positions are partition 0
//! and the 1-based line number.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde_json::Value;

use super::{Message, SourceRecord};

/// Reads records from `path`, or stdin for `-`. The stream name is `file:<canonical path>` or
/// `stdin`, unless `stream_name` overrides it.
pub fn open(path: &Path, stream_name: Option<String>) -> std::io::Result<FileSource> {
    let (reader, default_name): (Box<dyn Read + Send>, String) = if path == Path::new("-") {
        (Box::new(std::io::stdin()), "stdin".into())
    } else {
        let canonical = std::fs::canonicalize(path)?;
        (Box::new(File::open(&canonical)?), format!("file:{}", canonical.display()))
    };
    Ok(from_reader(reader, stream_name.unwrap_or(default_name)))
}

/// Reads records from any reader; positions are recorded under `stream`.
pub fn from_reader(reader: Box<dyn Read + Send>, stream: String) -> FileSource {
    FileSource { lines: BufReader::with_capacity(1 << 20, reader), stream, line: 0 }
}

pub struct FileSource {
    lines: BufReader<Box<dyn Read + Send>>,
    stream: String,
    line: i64,
}

impl Iterator for FileSource {
    type Item = std::io::Result<SourceRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut raw = Vec::new();
        match self.lines.read_until(b'\n', &mut raw) {
            Ok(0) => None,
            Err(e) => Some(Err(e)),
            Ok(_) => {
                self.line += 1;
                while raw.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    raw.pop();
                }
                let message = parse_line(&raw);
                Some(Ok(SourceRecord { stream: self.stream.clone(), partition: 0, offset: self.line, raw, message }))
            }
        }
    }
}

fn parse_line(raw: &[u8]) -> Result<Message, String> {
    let value: Value = serde_json::from_slice(raw).map_err(|e| format!("line is not valid JSON: {e}"))?;
    let object = value.as_object().ok_or("line is not a JSON object")?;
    let topic = object.get("topic").and_then(Value::as_str).ok_or("line has no \"topic\" string")?;
    let bytes = |field: &str| -> Result<Option<Vec<u8>>, String> {
        match object.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone().into_bytes())),
            // Tolerate producers that embed the JSON document instead of its string.
            Some(other) => Ok(Some(other.to_string().into_bytes())),
        }
    };
    Ok(Message { topic: topic.to_string(), key: bytes("key")?, value: bytes("value")? })
}
