//! Two stages of ingest on their own, each against plain serde_json doing the same job in the
//! same run, so that work on one stage can be measured without the noise of the whole
//! pipeline (`ingest_throughput` measures that):
//!
//! - **the file source**: an NDJSON file's lines (Kafka-shaped, with the Connect schema
//!   envelope) read, split and parsed into messages (on one thread below 4 cores, as floe reads
//!   a file there), against serde_json reading each line (already in memory) into its topic,
//!   key and value strings;
//! - **the Debezium JSON decoder**: those messages into change events, against serde_json
//!   reading each key and value into a `Value` tree;
//! - **the input's floor**: the file source against the least any reader of the same file
//!   does: read it in 1 MiB chunks, find each line's end and check it is UTF-8, nothing else.
//!
//! `cargo bench --bench ingest_stages` (`FLOE_BENCH_EVENTS`, default 200000).

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use floe_sink::decode::{ColumnHints, DebeziumJson, Decoded, Decoder, TableState};
use floe_sink::source::{Message, Source, SourceRecord};
use paired::{paired, PAIRS};
use serde_json::Value;
use workload::{events, ndjson, ndjson_file};

#[path = "support/paired.rs"]
mod paired;
#[path = "support/workload.rs"]
mod workload;

/// The allocator the `floe` binary ships with.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Drains the file source over the file `input`, handing each batch's records to `each`.
fn drain(input: &Path, runtime: &tokio::runtime::Runtime, mut each: impl FnMut(Vec<SourceRecord>)) {
    runtime.block_on(async {
        let mut source = floe_sink::source::file::open(input, Some("bench".into())).unwrap();
        while let Some(batch) = source.next_batch().await.unwrap() {
            each(batch);
        }
    })
}

/// Lines per second the file source makes into messages; each batch is dropped as it comes, as
/// the ingest loop drops it, inside the clock.
fn file_source(input: &Path, runtime: &tokio::runtime::Runtime) -> f64 {
    let start = Instant::now();
    let mut lines = 0;
    drain(input, runtime, |batch| lines += batch.len());
    lines as f64 / start.elapsed().as_secs_f64()
}

/// Every message the file source makes of `input`, for the decoder's runs.
fn messages(input: &Path, runtime: &tokio::runtime::Runtime) -> Vec<Message> {
    let mut messages = Vec::new();
    drain(input, runtime, |batch| messages.extend(batch.into_iter().map(|record| record.message.unwrap())));
    messages
}

/// The baseline of the file source: each line read by serde_json into its three members.
fn serde_json_lines(input: &[u8]) -> f64 {
    #[derive(serde::Deserialize)]
    struct Line {
        #[allow(dead_code)]
        topic: String,
        #[allow(dead_code)]
        key: Option<String>,
        value: Option<String>,
    }
    let start = Instant::now();
    let mut lines = 0;
    for line in input.split(|b| *b == b'\n').filter(|line| !line.is_empty()) {
        let line: Line = serde_json::from_slice(line).unwrap();
        assert!(line.value.is_some());
        lines += 1;
    }
    lines as f64 / start.elapsed().as_secs_f64()
}

/// Lines per second a reader that does nothing else reads in 1 MiB chunks, finds the end of and
/// checks as UTF-8: what any NDJSON reader pays, on one thread. The memory the input is read
/// from bounds it, not the work per byte.
fn input_floor(input: &Path, lines_in_it: usize) -> f64 {
    let start = Instant::now();
    let (mut reader, mut chunk, mut carry) = (std::fs::File::open(input).unwrap(), vec![0u8; 1 << 20], Vec::new());
    let mut lines = 0;
    let mut count = |text: &[u8]| {
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', text) {
            assert!(simdutf8::basic::from_utf8(&text[start..end]).is_ok());
            (start, lines) = (end + 1, lines + 1);
        }
        // The input's last line, when no newline ends it.
        if start < text.len() {
            assert!(simdutf8::basic::from_utf8(&text[start..]).is_ok());
            lines += 1;
        }
    };
    loop {
        let read = reader.read(&mut chunk).unwrap();
        if read == 0 {
            break;
        }
        // A line the chunk's start finishes is put together; the whole lines after it are read
        // where they are.
        let first = memchr::memchr(b'\n', &chunk[..read]).map_or(read, |at| at + 1);
        carry.extend_from_slice(&chunk[..first]);
        let whole = memchr::memrchr(b'\n', &chunk[..read]).map_or(0, |at| at + 1).max(first);
        if carry.ends_with(b"\n") {
            count(&carry);
            carry.clear();
        }
        count(&chunk[first..whole]);
        carry.extend_from_slice(&chunk[whole..read]);
    }
    count(&carry);
    let elapsed = start.elapsed();
    assert_eq!(lines, lines_in_it, "every line is read once");
    lines as f64 / elapsed.as_secs_f64()
}

/// Messages decoded per second by one Debezium JSON decoder, for a table that does not exist yet.
fn decode(messages: &[Message]) -> f64 {
    let hints = ColumnHints::default();
    let mut decoder = DebeziumJson::default();
    let start = Instant::now();
    for message in messages {
        let decoded = decoder.decode(message, TableState { schema: None, hints: &hints });
        assert!(matches!(decoded, Decoded::Change(_)), "{decoded:?}");
    }
    messages.len() as f64 / start.elapsed().as_secs_f64()
}

/// The baseline of the decoder: each key and value read by serde_json into a `Value` tree.
/// Each value is a whole copy of its text, where floe's messages of a topic share the head of
/// theirs (the schema), so the baseline reads about 1.8 KB a value from memory to floe's 0.3.
fn serde_json_values(messages: &[(Vec<u8>, Vec<u8>)]) -> f64 {
    let start = Instant::now();
    for (key, value) in messages {
        let key: Value = serde_json::from_slice(key).unwrap();
        let value: Value = serde_json::from_slice(value).unwrap();
        assert!(key.is_object() && value.is_object());
    }
    messages.len() as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    // `cargo test` runs benches without `--bench`: a quick smoke run keeps them working.
    let bench = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("FLOE_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(if bench { 200_000 } else { 2_000 });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let input = ndjson(&events(n, true));
    let file = ndjson_file(&input);
    println!("ingest_stages: {n} Debezium JSON events with the schema envelope; each stage in {PAIRS} tries paired with serde_json's");
    let source = paired(&|| serde_json_lines(&input), &|| file_source(file.path(), &runtime));
    println!("  file source, NDJSON lines → messages  {}", source.describe("lines/s", "baseline", "lines/s"));
    let floor = paired(&|| input_floor(file.path(), n), &|| file_source(file.path(), &runtime));
    println!("    the same against the input's floor    {}", floor.describe("lines/s", "floor", "lines/s"));
    let messages = messages(file.path(), &runtime);
    let texts: Vec<(Vec<u8>, Vec<u8>)> =
        messages.iter().map(|m| (m.key.as_deref().unwrap().to_vec(), m.whole_value().unwrap().unwrap().into_owned())).collect();
    let decoder = paired(&|| serde_json_values(&texts), &|| decode(&messages));
    println!("  Debezium JSON decoder → change events  {}", decoder.describe("events/s", "baseline", "messages/s"));
}
