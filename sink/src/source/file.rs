//! NDJSON files (or stdin) of `{"topic": …, "key": "<string>"|null, "value": "<string>"|null}`,
//! the shape of a Kafka message as Debezium's JsonConverter writes it. Positions are partition 0
//! and the 1-based line number.
//!
//! A thread reads and splits lines ahead of the ingest loop, a few batches at most, so reading
//! overlaps decoding and a quiet stdin never blocks the loop's timers.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::mpsc;

use super::{position_key, Message, Positions, Source, SourceRecord};

/// Records per batch handed to the ingest loop, and how many batches are read ahead.
const BATCH_RECORDS: usize = 1024;
const BATCHES_AHEAD: usize = 4;

/// Reads records from `path`, or stdin for `-`. The stream name is `file:<canonical path>` or
/// `stdin`, unless `stream_name` overrides it.
pub fn open(path: &Path, stream_name: Option<String>) -> std::io::Result<FileSource> {
    if path == Path::new("-") {
        return Ok(from_reader(Box::new(std::io::stdin()), stream_name.unwrap_or_else(|| "stdin".into())));
    }
    let canonical = std::fs::canonicalize(path)?;
    File::open(&canonical)?;
    let stream = stream_name.unwrap_or_else(|| format!("file:{}", canonical.display()));
    Ok(FileSource { path: Some(canonical), ..from_reader(Box::new(std::io::empty()), stream) })
}

/// Reads records from any reader; positions are recorded under `stream`. A reader cannot be
/// rewound, so resuming it after a pause continues where it was.
pub fn from_reader(reader: Box<dyn Read + Send>, stream: String) -> FileSource {
    FileSource { stream, path: None, reader: Some(reader), records: None, skip_through: 0, paused: false }
}

pub struct FileSource {
    stream: String,
    /// The file, when the input is one: it can be re-read from any line.
    path: Option<PathBuf>,
    /// The reader not yet started (a thread takes it on the first batch).
    reader: Option<Box<dyn Read + Send>>,
    records: Option<mpsc::Receiver<std::io::Result<Vec<SourceRecord>>>>,
    /// Lines up to this number are skipped unread (seek).
    skip_through: i64,
    paused: bool,
}

impl FileSource {
    fn position_key(&self) -> String {
        position_key(&self.stream, 0)
    }

    fn start(&mut self) -> std::io::Result<()> {
        let reader: Box<dyn Read + Send> = match (&self.path, self.reader.take()) {
            (Some(path), _) => Box::new(File::open(path)?),
            (None, Some(reader)) => reader,
            (None, None) => return Ok(()), // already started; a plain reader cannot restart
        };
        let (sender, receiver) = mpsc::channel(BATCHES_AHEAD);
        let (stream, skip_through) = (self.stream.clone(), self.skip_through);
        std::thread::Builder::new().name("floe-file-source".into()).spawn(move || read_lines(reader, stream, skip_through, sender))?;
        self.records = Some(receiver);
        Ok(())
    }
}

#[async_trait]
impl Source for FileSource {
    async fn seek(&mut self, committed: &Positions) -> std::io::Result<()> {
        if let Some(offset) = committed.get(&self.position_key()) {
            self.skip_through = *offset;
            if self.path.is_some() && self.records.is_some() {
                self.start()?;
            }
        }
        Ok(())
    }

    async fn next_batch(&mut self) -> std::io::Result<Option<Vec<SourceRecord>>> {
        if self.paused {
            return std::future::pending().await;
        }
        if self.records.is_none() {
            self.start()?;
        }
        let Some(records) = self.records.as_mut() else { return Ok(None) };
        records.recv().await.transpose()
    }

    fn drain(&mut self) -> Vec<SourceRecord> {
        let mut drained = vec![];
        if let Some(records) = self.records.as_mut() {
            while let Ok(Ok(batch)) = records.try_recv() {
                drained.extend(batch);
            }
        }
        drained
    }

    fn pause(&mut self, partitions: &[String]) {
        self.paused |= partitions.contains(&self.position_key());
    }

    async fn resume(&mut self, partitions: &[String], from: &Positions) -> std::io::Result<()> {
        if !partitions.contains(&self.position_key()) {
            return Ok(());
        }
        self.paused = false;
        if let (Some(_), Some(offset)) = (&self.path, from.get(&self.position_key())) {
            self.skip_through = *offset;
            self.start()?;
        }
        Ok(())
    }
}

/// The reading thread: lines → batches of records, until the input ends or the loop hangs up.
fn read_lines(reader: Box<dyn Read + Send>, stream: String, skip_through: i64, sender: mpsc::Sender<std::io::Result<Vec<SourceRecord>>>) {
    let mut lines = BufReader::with_capacity(1 << 20, reader);
    let stream: std::sync::Arc<str> = stream.into();
    let (mut line, mut batch, mut last_len) = (0i64, Vec::with_capacity(BATCH_RECORDS), 256);
    loop {
        // Lines of one stream are alike in length: start where the last one ended.
        let mut raw = Vec::with_capacity(last_len + 64);
        match lines.read_until(b'\n', &mut raw) {
            Err(e) => {
                let _ = sender.blocking_send(Err(e));
                return;
            }
            Ok(0) => break,
            Ok(_) => {}
        }
        line += 1;
        last_len = raw.len();
        if line <= skip_through {
            continue;
        }
        while raw.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            raw.pop();
        }
        let message = parse_line(&raw);
        batch.push(SourceRecord { stream: stream.clone(), partition: 0, offset: line, raw, message });
        if batch.len() == BATCH_RECORDS || lines.buffer().is_empty() {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_RECORDS));
            if sender.blocking_send(Ok(full)).is_err() {
                return;
            }
        }
    }
    if !batch.is_empty() {
        let _ = sender.blocking_send(Ok(batch));
    }
}

/// The common shape, read in one pass: key and value are JSON strings (or null).
#[derive(Deserialize)]
struct StringLine {
    topic: Option<String>,
    key: Option<String>,
    value: Option<String>,
}

/// Any shape, for producers that embed the documents themselves.
#[derive(Deserialize)]
struct Line<'a> {
    topic: Option<&'a RawValue>,
    #[serde(borrow)]
    key: Option<&'a RawValue>,
    #[serde(borrow)]
    value: Option<&'a RawValue>,
}

fn parse_line(raw: &[u8]) -> Result<Message, String> {
    if raw.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(match serde_json::from_slice::<serde::de::IgnoredAny>(raw) {
            Err(e) => format!("line is not valid JSON: {e}"),
            Ok(_) => "line is not a JSON object".into(),
        });
    }
    // sonic-rs unescapes with SIMD: a value is a whole JSON document escaped into a string.
    if let Ok(StringLine { topic: Some(topic), key, value }) = sonic_rs::from_slice::<StringLine>(raw) {
        return Ok(Message { topic, key: key.map(String::into_bytes), value: value.map(String::into_bytes) });
    }
    let line: Line = serde_json::from_slice(raw).map_err(|e| format!("line is not valid JSON: {e}"))?;
    let topic = line.topic.and_then(|t| serde_json::from_str::<String>(t.get()).ok()).ok_or("line has no \"topic\" string")?;
    Ok(Message { topic, key: bytes(line.key)?, value: bytes(line.value)? })
}

/// A member's bytes: a JSON string's content, or (for producers that embed the JSON document
/// instead of its string) the document's text.
fn bytes(member: Option<&RawValue>) -> Result<Option<Vec<u8>>, String> {
    match member.map(RawValue::get) {
        None | Some("null") => Ok(None),
        Some(text) if text.starts_with('"') => {
            let s: String = serde_json::from_str(text).map_err(|e| format!("line is not valid JSON: {e}"))?;
            Ok(Some(s.into_bytes()))
        }
        Some(text) => Ok(Some(text.as_bytes().to_vec())),
    }
}
