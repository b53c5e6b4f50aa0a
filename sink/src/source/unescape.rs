//! The content of a JSON string, unescaped: most of the work of reading an NDJSON line, whose
//! value is a whole JSON document escaped into a string, with an escaped quote every few bytes.
//!
//! The text is scanned a word (8 bytes) at a time: one mask marks the bytes that may need care
//! (quotes, backslashes, control characters), and only those are visited, where a loop over
//! bytes took a branch on each. The runs between them are copied 16 bytes at a time, past
//! their end into room the buffer keeps, which costs less than a copy of the exact length.

use bytes::BytesMut;

const WORD: usize = 8;
/// How many bytes a run's copy writes at once, and the room the buffer keeps after the text
/// for the bytes such a copy writes past a run's end.
const COPY_WIDTH: usize = 16;

/// Writes `prefix` and the unescaped content of the JSON string that `rest` is inside of to
/// `arena` (emptied first); returns what follows the string's closing quote, or what is wrong
/// with the string.
pub(super) fn unescape_into<'a>(prefix: &str, rest: &'a str, arena: &mut BytesMut) -> Result<&'a str, &'static str> {
    let bytes = rest.as_bytes();
    arena.clear();
    // Unescaped text is never longer than its escapes, so the string fits in `rest`'s length.
    arena.resize(prefix.len() + bytes.len() + COPY_WIDTH, 0);
    arena[..prefix.len()].copy_from_slice(prefix.as_bytes());
    let mut out = Output { buffer: &mut arena[..], written: prefix.len() };
    // Bytes before `at` are written (or were an escape's).
    let mut at = 0;
    for word_at in (0..bytes.len()).step_by(WORD) {
        let mut marks = marked_bytes(word(bytes, word_at)) & not_before(at, word_at);
        while marks != 0 {
            let mark = word_at + (marks.trailing_zeros() / 8) as usize;
            match bytes[mark] {
                b'\\' => {
                    out.copy(bytes, at, mark);
                    at = mark + 1 + out.escape(&bytes[mark + 1..])?;
                }
                b'"' => {
                    out.copy(bytes, at, mark);
                    let written = out.written;
                    arena.truncate(written);
                    return Ok(&rest[mark + 1..]);
                }
                0..=0x1f => return Err("a control character in a string"),
                // A mark that the word's arithmetic set beside a true one.
                _ => {}
            }
            marks &= (marks - 1) & not_before(at, word_at);
        }
    }
    Err("a string without its closing quote")
}

/// The unescaped text being written.
struct Output<'b> {
    buffer: &'b mut [u8],
    written: usize,
}

impl Output<'_> {
    /// Writes `bytes[from..to]`, a run without escapes, and perhaps bytes after it, which the
    /// next write overwrites or the end cuts off.
    fn copy(&mut self, bytes: &[u8], from: usize, to: usize) {
        let len = to - from;
        match (bytes.get(from..from + COPY_WIDTH), self.buffer.get_mut(self.written..self.written + COPY_WIDTH)) {
            (Some(run), Some(room)) if len <= COPY_WIDTH => room.copy_from_slice(run),
            _ => self.buffer[self.written..self.written + len].copy_from_slice(&bytes[from..to]),
        }
        self.written += len;
    }

    /// Writes the escape whose backslash came just before `after_backslash`; the bytes it took
    /// after the backslash.
    fn escape(&mut self, after_backslash: &[u8]) -> Result<usize, &'static str> {
        if let Some(byte) = after_backslash.first().and_then(|escaped| one_byte_escape(*escaped)) {
            self.buffer[self.written] = byte;
            self.written += 1;
            return Ok(1);
        }
        let (escaped, taken) = unicode_escape(after_backslash)?;
        self.written += escaped.encode_utf8(&mut self.buffer[self.written..]).len();
        Ok(taken)
    }
}

/// The 8 bytes at `at` as a little-endian word (byte `i` in bits `8i..8i+8`); past the end of
/// `bytes`, spaces, which need no care. (A space can be marked only beside a control character
/// before it, which ends the scan first: no mark falls past the end.)
fn word(bytes: &[u8], at: usize) -> u64 {
    match bytes.get(at..at + WORD) {
        Some(word) => u64::from_le_bytes(word.try_into().expect("eight bytes")),
        None => {
            let mut word = [b' '; WORD];
            word[..bytes.len() - at].copy_from_slice(&bytes[at..]);
            u64::from_le_bytes(word)
        }
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The top bit of each byte of `word` that is a quote, a backslash or a control character, and
/// perhaps of bytes after one (the subtraction borrows across bytes): the lowest mark is always
/// true, and a byte without a mark needs no care.
fn marked_bytes(word: u64) -> u64 {
    let zero_bytes = |word: u64| word.wrapping_sub(ONES) & !word & HIGHS;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    zero_bytes(word ^ (ONES * u64::from(b'"'))) | zero_bytes(word ^ (ONES * u64::from(b'\\'))) | below_space
}

/// The marks of the word at `word_at` for bytes at `at` or after.
fn not_before(at: usize, word_at: usize) -> u64 {
    match at.saturating_sub(word_at) {
        skipped if skipped >= WORD => 0,
        skipped => u64::MAX << (8 * skipped),
    }
}

/// The byte that a backslash before `escaped` stands for; `None` for `u` (see
/// [`unicode_escape`]) and for what is not an escape.
fn one_byte_escape(escaped: u8) -> Option<u8> {
    Some(match escaped {
        b'"' | b'\\' | b'/' => escaped,
        b'b' => 0x08,
        b'f' => 0x0c,
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        _ => return None,
    })
}

/// `uXXXX`, or a surrogate pair `uD83D\uDE00`, at the start of `after_backslash`: its
/// character and the bytes it took. Anything else there is an unknown escape.
fn unicode_escape(after_backslash: &[u8]) -> Result<(char, usize), &'static str> {
    if after_backslash.first() != Some(&b'u') {
        return Err("an unknown escape in a string");
    }
    let unit = |at: usize| {
        let digits = after_backslash.get(at..at + 4).filter(|digits| digits.iter().all(u8::is_ascii_hexdigit))?;
        u16::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
    };
    let first = unit(1).ok_or("a \\u escape without four hex digits")?;
    let pair = after_backslash.get(5..7) == Some(b"\\u");
    let (units, taken) = match (first, pair.then(|| unit(7)).flatten()) {
        (0xD800..=0xDBFF, Some(second)) => ([first, second], 11),
        _ => ([first, 0], 5),
    };
    match char::decode_utf16(units).next() {
        Some(Ok(escaped)) => Ok((escaped, taken)),
        _ => Err("a \\u escape of a lone surrogate"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_quotes_backslashes_and_control_characters_are_marked_first() {
        let first_mark = |text: &[u8; 8]| (marked_bytes(u64::from_le_bytes(*text)).trailing_zeros() / 8) as usize;
        assert_eq!(first_mark(b"abcdefgh"), 8, "none");
        assert_eq!(first_mark(b"abc\"efgh"), 3);
        assert_eq!(first_mark(b"ab\\\"efgh"), 2);
        assert_eq!(first_mark(b"a\x1fc\"efgh"), 1);
        assert_eq!(first_mark("é!#]\"\u{7f}x".as_bytes().try_into().unwrap()), 5, "other bytes, those next to the marked ones among them");
    }

    proptest::proptest! {
        #[test]
        fn content_unescapes_as_serde_json_reads_it_and_what_it_rejects_is_rejected(
            content in r#"([a-z #\]é😀\x01]|\\u[0-9a-fA-F]{4}|\\u[dD][89abAB][0-9a-fA-F]{2}|\\["\\/bfnrtux]){0,60}"#,
            after in "[,} ]{0,3}",
        ) {
            let mut arena = BytesMut::new();
            let ours = unescape_into("prefix:", &format!("{content}\"{after}"), &mut arena)
                .map(|rest| (String::from_utf8(arena.to_vec()).unwrap(), rest.to_string()));
            let serde_json = serde_json::from_str::<String>(&format!("\"{content}\""));
            proptest::prop_assert_eq!(ours.ok(), serde_json.ok().map(|text| (format!("prefix:{text}"), after)));
        }
    }
}
