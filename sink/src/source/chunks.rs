//! Where the file source's parser gets the input's chunks: from its own reads, or from a
//! reading thread's.
//!
//! A regular file's reads never wait on a writer, so on a machine without cores to spare the
//! parser reads it itself, into a chunk still in its core's cache. Stdin, FIFOs and any other
//! reader may wait, and the lines already parsed must not wait with them: a thread of its own
//! reads those ahead, and the parser hands its batch over whenever the next chunk is not read
//! yet. Either way a chunk comes back to be read into again once its lines are parsed.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;

/// How the parsing thread gets its input.
pub enum Input {
    /// Read by the parsing thread itself: a regular file, on a machine without cores to spare.
    ReadHere(Box<dyn Read + Send>),
    /// Read on a thread of its own: stdin, FIFOs and any other reader, whose reads may wait on
    /// a writer, and a regular file on a machine with cores to spare.
    ReadAhead(Box<dyn Read + Send>),
}

/// The parser's source of chunks: its own reads, or the reading thread's.
pub enum Chunks {
    Own { reader: Box<dyn Read + Send>, free: Vec<BytesMut> },
    Read { chunks: Receiver<std::io::Result<BytesMut>>, recycler: Sender<BytesMut> },
}

/// What the parser takes next.
pub enum Next {
    /// What was read (empty at the end of the input), or why reading stopped.
    Chunk(std::io::Result<BytesMut>),
    /// The reading thread's next read has not returned yet: hand over what is parsed, then
    /// [`Chunks::wait`].
    NotYet,
    /// The source is draining, and every chunk read is taken.
    Drained,
}

/// How often a parser waiting on the reading thread looks for a drain, and how long it waits
/// in a drain for a read under way: less than the source's own drain wait (2 s), so that what
/// the read returns is handed over before the drain stops waiting.
const DRAIN_POLL: Duration = Duration::from_millis(50);
pub const READ_UNDER_WAY_WAIT: Duration = Duration::from_secs(1);

/// Chunks read ahead of the parser (one more can be on its way), and the size of each read:
/// small enough that a chunk the parser reads itself is still in its core's cache when it
/// parses it (256 KiB ingested 6% faster than 1 MiB; BENCHMARKS.md, fifteenth session).
const CHUNKS_AHEAD: usize = 4;
const CHUNK_BYTES: usize = 256 << 10;

impl Chunks {
    /// Reads `input` here, or starts a thread that reads it until the source drains.
    pub fn of(input: Input, draining: &Arc<AtomicBool>) -> std::io::Result<Self> {
        let reader = match input {
            Input::ReadHere(reader) => return Ok(Chunks::Own { reader, free: vec![] }),
            Input::ReadAhead(reader) => reader,
        };
        let (chunk_sender, chunks) = std::sync::mpsc::sync_channel(CHUNKS_AHEAD);
        let (recycler, recycled) = std::sync::mpsc::channel();
        let stop_reading = draining.clone();
        std::thread::Builder::new()
            .name("floe-file-reader".into())
            .spawn(move || read_chunks(reader, chunk_sender, recycled, &stop_reading))?;
        Ok(Chunks::Read { chunks, recycler })
    }

    /// The next chunk, without waiting on a reading thread.
    pub fn next(&mut self, draining: &AtomicBool) -> Next {
        match self {
            Chunks::Own { .. } if draining.load(Ordering::Relaxed) => Next::Drained,
            Chunks::Own { reader, free } => Next::Chunk(read_chunk(reader, free.pop().unwrap_or_default())),
            Chunks::Read { chunks, .. } => match chunks.try_recv() {
                Ok(chunk) => Next::Chunk(chunk),
                // The reader stops reading once the source drains: what it read is all there is,
                // and a read under way may still return some.
                Err(TryRecvError::Empty) if draining.load(Ordering::Relaxed) => read_under_way(chunks),
                Err(TryRecvError::Disconnected) if draining.load(Ordering::Relaxed) => Next::Drained,
                Err(TryRecvError::Empty) => Next::NotYet,
                Err(TryRecvError::Disconnected) => Next::Chunk(Err(reader_gone())),
            },
        }
    }

    /// The next chunk, waiting for the reading thread's until the source drains.
    pub fn wait(&mut self, draining: &AtomicBool) -> Next {
        let Chunks::Read { chunks, .. } = self else { return self.next(draining) };
        loop {
            if draining.load(Ordering::Relaxed) {
                return read_under_way(chunks);
            }
            match chunks.recv_timeout(DRAIN_POLL) {
                Ok(chunk) => return Next::Chunk(chunk),
                Err(RecvTimeoutError::Timeout) => continue,
                // The reader saw the drain before it read again: nothing more was read.
                Err(RecvTimeoutError::Disconnected) if draining.load(Ordering::Relaxed) => return Next::Drained,
                Err(RecvTimeoutError::Disconnected) => return Next::Chunk(Err(reader_gone())),
            }
        }
    }

    /// A chunk to be read into again.
    pub fn recycle(&mut self, chunk: BytesMut) {
        match self {
            Chunks::Own { free, .. } => free.push(chunk),
            Chunks::Read { recycler, .. } => {
                let _ = recycler.send(chunk);
            }
        }
    }
}

/// Once the source drains: the chunk of the reader's read under way, if it returns soon (its
/// bytes are gone from stdin: they must be ingested), or `Drained` once the reader has stopped
/// or when it is still waiting on a quiet input, which will not be read any more.
fn read_under_way(chunks: &Receiver<std::io::Result<BytesMut>>) -> Next {
    match chunks.recv_timeout(READ_UNDER_WAY_WAIT) {
        Ok(chunk) => Next::Chunk(chunk),
        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => Next::Drained,
    }
}

/// The reader's thread ended without saying the input ended (it panicked).
fn reader_gone() -> std::io::Error {
    std::io::Error::other("the input's reader stopped before the input ended")
}

/// The reader's thread: the input in chunks as each read returns them (an empty one when it
/// ends), until it ends, fails, the parser hangs up, or the source drains. Chunks come back
/// through `recycled` to be read into again; a new one is made only when none has.
fn read_chunks(
    mut reader: Box<dyn Read + Send>,
    chunks: SyncSender<std::io::Result<BytesMut>>,
    recycled: Receiver<BytesMut>,
    draining: &AtomicBool,
) {
    while !draining.load(Ordering::Relaxed) {
        let read = read_chunk(&mut reader, recycled.try_recv().unwrap_or_default());
        let last = !matches!(&read, Ok(chunk) if !chunk.is_empty());
        if chunks.send(read).is_err() || last {
            return;
        }
    }
}

/// One read into `chunk` (an empty chunk at the end of the input).
fn read_chunk(reader: &mut Box<dyn Read + Send>, mut chunk: BytesMut) -> std::io::Result<BytesMut> {
    // Only what the last read left short is zeroed: a recycled chunk was read into whole.
    chunk.resize(CHUNK_BYTES, 0);
    let read = loop {
        match reader.read(&mut chunk) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            result => break result,
        }
    };
    read.map(|n| {
        chunk.truncate(n);
        chunk
    })
}
