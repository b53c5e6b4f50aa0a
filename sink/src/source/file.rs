//! NDJSON files (or stdin) of `{"topic": …, "key": "<string>"|null, "value": "<string>"|null}`,
//! the shape of a Kafka message as Debezium's JsonConverter writes it. Positions are partition 0
//! and the 1-based line number.
//!
//! A thread splits and parses the input's lines ahead of the ingest loop (a few batches at
//! most), so that a quiet stdin never blocks the loop's timers. Stdin and other readers, whose
//! reads may wait on a writer, are read on a thread of their own, so that lines already parsed
//! are handed over before the parser waits. A regular file's reads never wait: on a machine
//! without cores to spare, the parsing thread reads it itself, into a chunk still in its core's
//! cache ([`super::chunks`]).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::BytesMut;
use tokio::sync::mpsc;

use super::chunk_lines::ChunkLines;
use super::chunks::{Chunks, Input, Next, READ_UNDER_WAY_WAIT};
use super::detached::detach;
use super::line::LineParser;
use super::{position_key, Positions, Source, SourceRecord};

/// Records per batch handed to the ingest loop, and how many batches are read ahead. Each
/// batch costs the loop and the decoders a few hand-overs between threads; at 4,096 records
/// they ingested 9% faster than at 1,024 (BENCHMARKS.md, fifteenth session).
const BATCH_RECORDS: usize = 4096;
const BATCHES_AHEAD: usize = 4;

/// How long a drain waits for the parser to hand over what it has read.
const DRAIN_WAIT: Duration = Duration::from_secs(2);
const _: () = assert!(READ_UNDER_WAY_WAIT.as_millis() < DRAIN_WAIT.as_millis(), "a read under way is handed over in time");

/// Reads records from `path`, or stdin for `-`. The stream name is `file:<canonical path>` or
/// `stdin`, unless `stream_name` overrides it.
pub fn open(path: &Path, stream_name: Option<String>) -> std::io::Result<FileSource> {
    if path == Path::new("-") {
        return Ok(from_reader(Box::new(std::io::stdin()), stream_name.unwrap_or_else(|| "stdin".into())));
    }
    let canonical = std::fs::canonicalize(path)?;
    File::open(&canonical)?;
    let stream = stream_name.unwrap_or_else(|| format!("file:{}", canonical.display()));
    let read_file_ahead = crate::cores() >= CORES_FOR_A_READING_THREAD;
    Ok(FileSource { path: Some(canonical), read_file_ahead, ..from_reader(Box::new(std::io::empty()), stream) })
}

/// The cores from which a file is read on a thread of its own, beside the parsing thread. On
/// two, the loop, the decoders and the writer keep both busy, and the parsing thread reading
/// the file itself ingested 13% faster on 10% less CPU (BENCHMARKS.md, fifteenth session).
/// But alone it parses fewer lines a second than two threads do, which would cap a machine
/// whose loop can take more.
const CORES_FOR_A_READING_THREAD: usize = 4;

/// Reads records from any reader; positions are recorded under `stream`. A reader cannot be
/// rewound, so resuming it after a pause continues where it was.
pub fn from_reader(reader: Box<dyn Read + Send>, stream: String) -> FileSource {
    FileSource {
        stream,
        path: None,
        read_file_ahead: false,
        reader: Some(reader),
        records: None,
        draining: Arc::default(),
        skip_through: 0,
        paused: false,
    }
}

pub struct FileSource {
    stream: String,
    /// The file, when the input is one: it can be re-read from any line.
    path: Option<PathBuf>,
    /// Whether the file is read on a thread of its own ([`CORES_FOR_A_READING_THREAD`]).
    read_file_ahead: bool,
    /// The reader not yet started (a thread takes it on the first batch).
    reader: Option<Box<dyn Read + Send>>,
    records: Option<mpsc::Receiver<std::io::Result<Vec<SourceRecord>>>>,
    /// Set on shutdown: the parser hands over what has been read, then stops.
    draining: Arc<AtomicBool>,
    /// Lines up to this number are skipped unread (seek).
    skip_through: i64,
    paused: bool,
}

impl FileSource {
    fn position_key(&self) -> String {
        position_key(&self.stream, 0)
    }

    fn start(&mut self) -> std::io::Result<()> {
        let input = match (&self.path, self.reader.take()) {
            (Some(path), _) => {
                let file = File::open(path)?;
                // Only a regular file's reads never wait on a writer: a FIFO's or a terminal's
                // may, and the lines parsed before must not wait with them.
                if file.metadata()?.is_file() && !self.read_file_ahead {
                    Input::ReadHere(Box::new(file))
                } else {
                    Input::ReadAhead(Box::new(file))
                }
            }
            (None, Some(reader)) => Input::ReadAhead(reader),
            (None, None) => return Ok(()), // already started; a plain reader cannot restart
        };
        let (sender, receiver) = mpsc::channel(BATCHES_AHEAD);
        let (stream, skip_through) = (self.stream.clone(), self.skip_through);
        self.draining = Arc::default();
        let draining = self.draining.clone();
        std::thread::Builder::new()
            .name("floe-file-source".into())
            .spawn(move || read_lines(input, stream, skip_through, sender, &draining))?;
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

    /// Waits (briefly: the parser has at most a few chunks left) until the parser has handed
    /// over every line it has read, as stdin cannot give them again.
    fn drain(&mut self) -> Vec<SourceRecord> {
        let mut drained = vec![];
        let Some(records) = self.records.as_mut() else { return drained };
        self.draining.store(true, Ordering::Relaxed);
        let deadline = Instant::now() + DRAIN_WAIT;
        loop {
            match records.try_recv() {
                Ok(Ok(batch)) => drained.extend(batch),
                Ok(Err(_)) | Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
                Err(mpsc::error::TryRecvError::Empty) => break,
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

/// The parsing thread: the input's chunks → batches of records, until the input ends or the
/// loop hangs up. Lines are slices of the chunks read; a parsed line's record keeps a copy of
/// what it needs of it ([`detach`]: all but its value's shared head), and the chunk is read into
/// again once its lines are parsed ([`ChunkLines`]).
///
/// A batch is handed over when it is full, or when the next chunk has not been read yet: the
/// ingest loop gets what stdin has sent before the parser waits on it, and a file read faster
/// than it is parsed still makes full batches (small ones cost the loop a hand-over each).
fn read_lines(
    input: Input,
    stream: String,
    skip_through: i64,
    sender: mpsc::Sender<std::io::Result<Vec<SourceRecord>>>,
    draining: &Arc<AtomicBool>,
) {
    let stream: Arc<str> = stream.into();
    let mut chunks = match Chunks::of(input, draining) {
        Ok(chunks) => chunks,
        Err(e) => {
            let _ = sender.blocking_send(Err(e));
            return;
        }
    };
    let (mut parser, mut kept) = (LineParser::default(), BytesMut::new());
    let (mut chunk_lines, mut line) = (ChunkLines::default(), 0i64);
    let mut batch = Vec::with_capacity(BATCH_RECORDS);
    let hand_over = |batch: &mut Vec<SourceRecord>| {
        batch.is_empty() || sender.blocking_send(Ok(std::mem::replace(batch, Vec::with_capacity(BATCH_RECORDS)))).is_ok()
    };
    let mut ended = false;
    while !ended {
        let next = match chunks.next(draining) {
            Next::NotYet if !hand_over(&mut batch) => return,
            Next::NotYet => chunks.wait(draining),
            next => next,
        };
        let lines = match next {
            Next::Chunk(Ok(chunk)) if chunk.is_empty() => {
                ended = true;
                // At the end of the input, its last line may lack a newline.
                chunk_lines.finish().into_iter().collect()
            }
            Next::Chunk(Ok(chunk)) => {
                let lines = chunk_lines.split(chunk);
                for free in chunk_lines.reusable() {
                    chunks.recycle(free);
                }
                lines
            }
            Next::Chunk(Err(e)) => {
                if hand_over(&mut batch) {
                    let _ = sender.blocking_send(Err(e));
                }
                return;
            }
            // Only `next` says so; `wait` waits.
            Next::NotYet => continue,
            // Everything read is handed over; an unfinished line's rest was never read.
            Next::Drained => {
                hand_over(&mut batch);
                return;
            }
        };
        for mut raw in lines {
            line += 1;
            if line <= skip_through {
                continue;
            }
            while raw.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                raw.truncate(raw.len() - 1);
            }
            let (raw, message) = detach(&raw, parser.parse(&raw), &mut kept);
            batch.push(SourceRecord { stream: stream.clone(), partition: 0, offset: line, raw, message });
            if batch.len() == BATCH_RECORDS && !hand_over(&mut batch) {
                return;
            }
        }
    }
    hand_over(&mut batch);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record's line.
    fn text(record: &SourceRecord) -> String {
        String::from_utf8(record.raw_bytes()).unwrap()
    }

    /// Every record `source` yields, in order, as text.
    async fn lines_of(mut source: FileSource) -> Vec<String> {
        let mut lines = vec![];
        while let Some(batch) = source.next_batch().await.unwrap() {
            lines.extend(batch.iter().map(text));
        }
        lines
    }

    #[tokio::test]
    async fn the_last_line_counts_with_or_without_a_newline_at_the_end() {
        for (input, expected) in
            [("a\nb\n", vec!["a", "b"]), ("a\nb", vec!["a", "b"]), ("a\r\nb\r\n", vec!["a", "b"]), ("only", vec!["only"]), ("", vec![])]
        {
            let source = from_reader(Box::new(std::io::Cursor::new(input.as_bytes().to_vec())), "test".into());
            assert_eq!(lines_of(source).await, expected, "{input:?}");
        }
    }

    #[tokio::test]
    async fn lines_a_pipe_has_delivered_are_handed_over_while_it_stays_open() {
        let (reader, mut writer) = std::io::pipe().unwrap();
        let mut source = from_reader(Box::new(reader), "test".into());
        std::io::Write::write_all(&mut writer, b"one\ntwo\nthree\n").unwrap();
        let batch = tokio::time::timeout(std::time::Duration::from_secs(30), source.next_batch()).await;
        let lines: Vec<_> = batch.expect("the lines come before the pipe closes").unwrap().unwrap().iter().map(text).collect();
        assert_eq!(lines, ["one", "two", "three"]);
        drop(writer);
        assert!(source.next_batch().await.unwrap().is_none(), "the input ended");
    }

    #[tokio::test]
    async fn a_drain_takes_every_line_read_even_when_the_loop_is_behind() {
        let (reader, mut writer) = std::io::pipe().unwrap();
        // More than the batches that wait for the loop: the parser holds the rest until a drain.
        let lines: Vec<String> = (0..(BATCHES_AHEAD + 2) * BATCH_RECORDS).map(|i| format!("line {i}")).collect();
        let input = lines.join("\n") + "\n";
        // More than a pipe holds, so written from a thread; the pipe stays open: the lines are
        // read, and more could come.
        let (written, open) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            std::io::Write::write_all(&mut writer, input.as_bytes()).unwrap();
            written.send(writer).unwrap();
        });
        let mut source = from_reader(Box::new(reader), "test".into());
        let mut read: Vec<_> = source.next_batch().await.unwrap().unwrap().iter().map(text).collect();
        let _open = open.recv_timeout(std::time::Duration::from_secs(30)).expect("every line is written");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        read.extend(source.drain().iter().map(text));
        assert!(read == lines, "{} of the {} lines, in order", read.len(), lines.len());
    }

    /// Gives each of `reads` after its pause (a writer's last lines arriving as the sink shuts
    /// down), then nothing more for a long while; says on `started` when each read starts.
    struct LastLinesLate {
        reads: Vec<(Duration, &'static [u8])>,
        started: std::sync::mpsc::Sender<()>,
    }

    impl Read for LastLinesLate {
        fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
            let _ = self.started.send(());
            let (pause, bytes) = if self.reads.is_empty() { (Duration::from_secs(5), &b""[..]) } else { self.reads.remove(0) };
            std::thread::sleep(pause);
            buffer[..bytes.len()].copy_from_slice(bytes);
            Ok(bytes.len())
        }
    }

    #[tokio::test]
    async fn a_drain_takes_the_lines_of_a_read_under_way() {
        let reads = vec![(Duration::ZERO, &b"first\n"[..]), (Duration::from_millis(300), b"second\n")];
        let (started, reading) = std::sync::mpsc::channel();
        let mut source = from_reader(Box::new(LastLinesLate { reads, started }), "test".into());
        let first: Vec<_> = source.next_batch().await.unwrap().unwrap().iter().map(text).collect();
        assert_eq!(first, ["first"], "handed over while the second read waits");
        for read in ["first", "second"] {
            reading.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| panic!("the {read} read starts"));
        }
        let drained: Vec<_> = source.drain().iter().map(text).collect();
        assert_eq!(drained, ["second"], "the read under way returned its line during the drain");
    }

    /// Gives `first`, then panics.
    struct PanicsAfter(Option<&'static [u8]>);

    impl Read for PanicsAfter {
        fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
            let first = self.0.take().expect("the reader breaks on its second read");
            buffer[..first.len()].copy_from_slice(first);
            Ok(first.len())
        }
    }

    #[tokio::test]
    async fn a_reader_that_breaks_is_an_error_not_the_end_of_the_input() {
        let mut source = from_reader(Box::new(PanicsAfter(Some(b"whole\ncut"))), "test".into());
        let first = source.next_batch().await.unwrap().unwrap();
        assert_eq!(first.iter().map(text).collect::<Vec<_>>(), ["whole"], "the cut line is not a line");
        let error = source.next_batch().await.expect_err("the input did not end");
        assert!(error.to_string().contains("reader stopped"), "{error}");
    }

    /// Gives its input a byte a read, as a slow pipe may.
    struct ByteByByte(std::io::Cursor<Vec<u8>>);

    impl Read for ByteByByte {
        fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
            let end = buffer.len().min(1);
            self.0.read(&mut buffer[..end])
        }
    }

    #[tokio::test]
    async fn lines_cut_anywhere_by_the_reads_are_the_same_lines() {
        let input = "first\r\nsecond line\n\nlast without newline";
        let source = from_reader(Box::new(ByteByByte(std::io::Cursor::new(input.as_bytes().to_vec()))), "test".into());
        assert_eq!(lines_of(source).await, ["first", "second line", "", "last without newline"]);
    }

    #[tokio::test]
    async fn a_last_line_without_a_newline_after_many_chunks_is_read() {
        // Longer than one read, so the unfinished last line waited for more before the input ended.
        let lines: Vec<String> = (0..60_000).map(|i| format!("line {i} {}", "x".repeat(40))).collect();
        let source = from_reader(Box::new(std::io::Cursor::new(lines.join("\n").into_bytes())), "test".into());
        assert_eq!(lines_of(source).await, lines);
    }

    #[tokio::test]
    async fn a_file_is_read_whole_across_chunks_by_the_parsing_thread_or_a_reading_one() {
        // Many chunks' worth, the last line without a newline.
        let lines: Vec<String> = (0..70_000).map(|i| format!("line {i} {}", "x".repeat(40))).collect();
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), lines.join("\n")).unwrap();
        for read_file_ahead in [false, true] {
            let mut source = FileSource { read_file_ahead, ..open(file.path(), None).unwrap() };
            let mut read = vec![];
            while let Some(batch) = source.next_batch().await.unwrap() {
                // The parser never waits on its own reads; a reading thread's may keep it waiting.
                let full = batch.len() == BATCH_RECORDS || read.len() + batch.len() == lines.len();
                assert!(full || read_file_ahead, "full batches until the end when the parser reads");
                read.extend(batch.iter().map(text));
            }
            assert!(read == lines, "read ahead: {read_file_ahead}; {} of the {} lines, in order", read.len(), lines.len());
        }
    }
}
