//! A parsed line's bytes moved out of the chunk it was read into, so that the chunk is read
//! into again at once, while it is still in the cache, instead of living as long as the last of
//! its lines' records (several batches later).
//!
//! A line with the Connect schema envelope is about 3.8 KB, of which about 2.9 KB is its
//! value's head: the same on every line of its topic, and already shared by their messages
//! ([`ValueHead`](super::ValueHead)). So only the rest of the line is copied out, next to the
//! rest of the lines before it, and the message's key and value are moved to that copy. The
//! line's raw bytes are that copy and the message's head, put back together for a dead letter
//! ([`SourceRecord::raw_bytes`](super::SourceRecord::raw_bytes)).

use bytes::{Bytes, BytesMut};

use super::{Message, Raw};

/// The smallest allocation the copies are split off: a few dozen lines' worth, allocated and
/// freed in one piece.
const KEPT_BYTES: usize = 64 << 10;

/// `line`'s raw bytes and `message` (parsed from it), holding nothing of `line` itself: what
/// they need of it is copied into `kept`, all but the value's head.
pub fn detach(line: &Bytes, message: Result<Message, String>, kept: &mut BytesMut) -> (Raw, Result<Message, String>) {
    let Ok(mut message) = message else { return (Raw::Whole(Bytes::copy_from_slice(line)), message) };
    let head = head_in(line, &message);
    let (head_at, head_len) = head.unwrap_or((line.len(), 0));
    let len = line.len() - head_len;
    if kept.capacity() < len {
        kept.reserve(len.max(KEPT_BYTES));
    }
    kept.extend_from_slice(&line[..head_at]);
    kept.extend_from_slice(&line[head_at + head_len..]);
    let copy = kept.split().freeze();
    let moved = |piece: Bytes| match offset_in(line, &piece) {
        Some(at) if at < head_at => copy.slice(at..at + piece.len()),
        Some(at) => copy.slice(at - head_len..at - head_len + piece.len()),
        // Not the line's: unescaped by the parser into its own buffer.
        None => piece,
    };
    message.key = message.key.take().map(moved);
    message.value = message.value.take().map(moved);
    let raw = if head.is_some() { Raw::WithoutHead { bytes: copy, head_at } } else { Raw::Whole(copy) };
    (raw, Ok(message))
}

/// Where the escaped text of `message`'s value head is in `line`, and its length: right before
/// the value's rest, which the parser handed over as a slice of the line.
fn head_in(line: &Bytes, message: &Message) -> Option<(usize, usize)> {
    let (head, rest) = (message.value_head.as_ref()?, message.value.as_ref()?);
    let at = offset_in(line, rest)?.checked_sub(head.escaped.len())?;
    debug_assert_eq!(&line[at..at + head.escaped.len()], &head.escaped[..], "the head is where the rest begins");
    Some((at, head.escaped.len()))
}

/// Where `piece` starts in `line`, when it is a slice of it (an empty piece is not).
fn offset_in(line: &Bytes, piece: &Bytes) -> Option<usize> {
    let at = (piece.as_ptr() as usize).checked_sub(line.as_ptr() as usize)?;
    (!piece.is_empty() && at + piece.len() <= line.len()).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::line::LineParser;
    use crate::source::SourceRecord;

    /// Lines of one topic whose values share a long start, and whose keys are read from the
    /// line as they are or unescaped.
    fn lines() -> Vec<String> {
        let value = |id: u32| {
            serde_json::to_string(&format!(r#"{{"schema":{{"type":"struct","optional":false}},"payload":{{"id":{id},"name":"n\t{id}"}}}}"#))
                .unwrap()
        };
        let key = |id: u32| serde_json::to_string(&format!(r#"{{"id":{id}}}"#)).unwrap();
        (1..=6)
            .map(|id| match id % 3 {
                0 => format!(r#"{{"value":{},"topic":"t","key":{}}}"#, value(id), key(id)),
                1 => format!(r#"{{"topic":"t","key":{},"value":{}}}"#, key(id), value(id)),
                _ => format!(r#"{{"topic": "t", "key": {{"id": {id}}}, "value": {}, "headers": []}}"#, value(id)),
            })
            .chain(["not json".into(), r#"{"topic":"t","key":null,"value":null}"#.into()])
            .collect()
    }

    #[test]
    fn a_detached_line_reads_as_the_line_and_gives_its_bytes_back_whole() {
        let (mut parser, mut kept) = (LineParser::default(), BytesMut::new());
        let mut without_head = 0;
        for text in lines() {
            let line = Bytes::copy_from_slice(text.as_bytes());
            let parsed = parser.parse(&line);
            let (raw, detached) = detach(&line, parsed.clone(), &mut kept);
            without_head += usize::from(matches!(raw, Raw::WithoutHead { .. }));
            let record = SourceRecord { stream: "s".into(), partition: 0, offset: 1, raw, message: detached.clone() };
            assert_eq!(record.raw_bytes(), text.as_bytes(), "the raw bytes are the line's");
            assert_eq!(record.size(), text.len());
            match (parsed, detached) {
                (Ok(parsed), Ok(detached)) => {
                    assert_eq!(detached.key, parsed.key, "{text}");
                    assert_eq!(detached.whole_value(), parsed.whole_value(), "{text}");
                    for piece in detached.key.iter().chain(&detached.value) {
                        assert!(offset_in(&line, piece).is_none(), "{text}: nothing of the line is kept");
                    }
                }
                (Err(parsed), Err(detached)) => assert_eq!(detached, parsed),
                (parsed, detached) => panic!("{text}: {parsed:?} became {detached:?}"),
            }
        }
        assert!(without_head >= 3, "the lines after the first two share their head: {without_head}");
    }
}
