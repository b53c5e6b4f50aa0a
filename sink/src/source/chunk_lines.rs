//! Lines cut out of the chunks a reader reads, as slices of them: nothing is copied but a line
//! that a chunk's end cuts in two. A chunk goes back to the reader, to be read into again, once
//! every line cut out of it is dropped (the file source drops them once parsed: each record
//! keeps a copy of what it needs), so the input's memory circulates instead of being allocated
//! on one thread and freed on others (which the allocator keeps for a while, and which doubled
//! the peak memory once).

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};

#[derive(Default)]
pub struct ChunkLines {
    /// The start of a line that the last chunk's end cut.
    carry: BytesMut,
    /// Chunks whose lines may still be alive, oldest first.
    in_use: VecDeque<Bytes>,
}

impl ChunkLines {
    /// The whole lines that `chunk` ends (each with its newline), the first one completed from
    /// what the chunk before cut.
    pub fn split(&mut self, chunk: BytesMut) -> Vec<Bytes> {
        let chunk = chunk.freeze();
        let mut rest = chunk.clone();
        let mut lines = vec![];
        if !self.carry.is_empty() {
            let Some(end) = memchr::memchr(b'\n', &rest) else {
                // A line longer than the chunk: all of it is carried, and the chunk can be read
                // into again.
                self.carry.extend_from_slice(&rest);
                self.in_use.push_back(chunk);
                return lines;
            };
            self.carry.extend_from_slice(&rest[..=end]);
            lines.push(self.carry.split().freeze());
            rest.advance(end + 1);
        }
        let whole = memchr::memrchr(b'\n', &rest).map_or(0, |at| at + 1);
        self.carry.extend_from_slice(&rest[whole..]);
        rest.truncate(whole);
        while !rest.is_empty() {
            let end = memchr::memchr(b'\n', &rest).map_or(rest.len(), |at| at + 1);
            lines.push(rest.split_to(end));
        }
        self.in_use.push_back(chunk);
        lines
    }

    /// The input's last line, when no newline ends it.
    pub fn finish(&mut self) -> Option<Bytes> {
        (!self.carry.is_empty()).then(|| self.carry.split().freeze())
    }

    /// The oldest chunks whose lines are all dropped, to read into again.
    pub fn reusable(&mut self) -> impl Iterator<Item = BytesMut> + '_ {
        std::iter::from_fn(move || match self.in_use.pop_front()?.try_into_mut() {
            Ok(free) => Some(free),
            Err(in_use) => {
                self.in_use.push_front(in_use);
                None
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(text: &str) -> BytesMut {
        BytesMut::from(text.as_bytes())
    }

    #[test]
    fn lines_cut_by_a_chunk_end_are_put_together() {
        let mut lines = ChunkLines::default();
        let mut read = vec![];
        for text in ["one\ntw", "o\nthree and", " more and more", "\nfour\n", "five"] {
            read.extend(lines.split(chunk(text)));
        }
        read.extend(lines.finish());
        assert_eq!(read, ["one\n", "two\n", "three and more and more\n", "four\n", "five"]);
        assert_eq!(lines.finish(), None, "nothing is left");
    }

    #[test]
    fn a_chunk_is_reusable_once_its_lines_are_dropped_and_not_before() {
        let mut lines = ChunkLines::default();
        let first = lines.split(chunk("a\nb\n"));
        let second = lines.split(chunk("c\n"));
        assert_eq!(lines.reusable().count(), 0, "lines of both are alive");
        drop(second);
        assert_eq!(lines.reusable().count(), 0, "the oldest goes back first");
        drop(first);
        let free: Vec<BytesMut> = lines.reusable().collect();
        assert_eq!(free, [chunk("a\nb\n"), chunk("c\n")], "read into again, as they were");
    }
}
