//! The escapes of JSON string content. An NDJSON line's value is a whole JSON document escaped
//! into a string, with an escaped quote every few bytes, and going through it is most of the
//! work of reading a line. Each way through such content here goes a word (8 bytes) or a block
//! (64 bytes, in SIMD lanes of 16) at a time, where a loop over bytes took a branch on each:
//!
//! - [`string_end`]: where a string ends, without unescaping it: the line parser hands a value's
//!   rest over still escaped, and its reader checks its escapes as it reads it;
//! - [`unescape_into`] and [`unescape_all`]: the text of the content;
//! - [`escaped_len`]: how much escaped content holds a given length of its text.
//!
//! Unescaping scans a word at a time: one mask marks the bytes that may need care (quotes,
//! backslashes, control characters), and only those are visited. The runs between them are
//! copied 16 bytes at a time, past their end into room the buffer keeps, which costs less than
//! a copy of the exact length.

use bytes::BytesMut;
use wide::u8x16;

const WORD: usize = 8;
/// How many bytes a run's copy writes at once, and the room the buffer keeps after the text
/// for the bytes such a copy writes past a run's end.
const COPY_WIDTH: usize = 16;

/// Writes `prefix` and the unescaped content of the JSON string that `rest` is inside of to
/// `arena` (emptied first); returns what follows the string's closing quote, or what is wrong
/// with the string.
///
/// The string's end is found first: `rest` is often the rest of a line, kilobytes after a short
/// key, and the arena is sized (and zeroed) for what it unescapes.
pub fn unescape_into<'a>(prefix: &str, rest: &'a str, arena: &mut BytesMut) -> Result<&'a str, &'static str> {
    let end = string_end(rest.as_bytes()).ok_or("a string without its closing quote")?;
    match write_unescaped(prefix.as_bytes(), &rest.as_bytes()[..=end], arena)? {
        Some(quote) => Ok(&rest[quote + 1..]),
        // Not reached: the escapes read up to the quote that `string_end` found end there.
        None => Err("a string without its closing quote"),
    }
}

/// Writes `prefix` and the unescaped text of `content`, all of it a JSON string's content (no
/// closing quote), to `arena` (emptied first); or says what is wrong with it.
pub fn unescape_all(prefix: &[u8], content: &[u8], arena: &mut BytesMut) -> Result<(), &'static str> {
    match write_unescaped(prefix, content, arena)? {
        Some(_) => Err("a quote that is not escaped inside a string"),
        None => Ok(()),
    }
}

/// The text of `content`, all of it a JSON string's content; or what is wrong with it.
pub fn unescaped_text(content: &[u8]) -> Result<String, &'static str> {
    let mut text = BytesMut::new();
    unescape_all(b"", content, &mut text)?;
    String::from_utf8(text.into()).map_err(|_| "a string that is not UTF-8")
}

/// `text` escaped as a JSON string's content, as serde_json escapes it.
#[cfg(test)]
pub fn escaped(text: &str) -> String {
    let quoted = serde_json::to_string(text).expect("a string");
    quoted[1..quoted.len() - 1].to_string()
}

/// Writes `prefix` and the unescaped content at the start of `bytes` to `arena`, up to the
/// first quote that is not escaped (`Some` of where it is) or to the end (`None`).
fn write_unescaped(prefix: &[u8], bytes: &[u8], arena: &mut BytesMut) -> Result<Option<usize>, &'static str> {
    arena.clear();
    // Unescaped text is never longer than its escapes, so the string fits in `bytes`' length.
    arena.resize(prefix.len() + bytes.len() + COPY_WIDTH, 0);
    arena[..prefix.len()].copy_from_slice(prefix);
    let mut out = Output { buffer: &mut arena[..], written: prefix.len() };
    // Bytes before `at` are written (or were an escape's).
    let mut at = 0;
    let mut quote = None;
    'words: for word_at in (0..bytes.len()).step_by(WORD) {
        let mut marks = marked_bytes(word(bytes, word_at)) & not_before(at, word_at);
        while marks != 0 {
            let mark = word_at + (marks.trailing_zeros() / 8) as usize;
            match bytes[mark] {
                b'\\' => {
                    out.copy(bytes, at, mark);
                    at = mark + 1 + out.escape(&bytes[mark + 1..])?;
                }
                b'"' => {
                    quote = Some(mark);
                    break 'words;
                }
                0..=0x1f => return Err("a control character in a string"),
                // A mark that the word's arithmetic set beside a true one.
                _ => {}
            }
            marks &= (marks - 1) & not_before(at, word_at);
        }
    }
    out.copy(bytes, at, quote.unwrap_or(bytes.len()));
    let written = out.written;
    arena.truncate(written);
    Ok(quote)
}

/// Where the JSON string whose content `bytes` starts with ends: its first quote that no
/// backslash escapes. Nothing else is checked: the content's escapes are its reader's to check.
///
/// A block of 64 bytes at a time, as simdjson finds the quotes that end strings: a bit per byte
/// for the quotes and one for the backslashes, and the escaped bytes (those after an odd run of
/// backslashes) found by an addition that carries across each run.
pub fn string_end(bytes: &[u8]) -> Option<usize> {
    // Whether the first byte of the next block is escaped (a block ended in an odd run).
    let mut next_escaped = 0;
    for block_at in (0..bytes.len()).step_by(BLOCK) {
        let (quotes, backslashes) = match bytes.get(block_at..block_at + BLOCK) {
            Some(block) => block_bits(block.try_into().expect("a block")),
            None => {
                let mut last = [b' '; BLOCK];
                last[..bytes.len() - block_at].copy_from_slice(&bytes[block_at..]);
                block_bits(&last)
            }
        };
        let escaped = escaped_bits(backslashes, &mut next_escaped);
        let ending = quotes & !escaped;
        if ending != 0 {
            return Some(block_at + ending.trailing_zeros() as usize);
        }
    }
    None
}

const BLOCK: usize = 64;
const ODD_BITS: u64 = 0xAAAA_AAAA_AAAA_AAAA;

/// The bytes of a SIMD lane ([`block_bits`]).
const LANE: usize = 16;

/// A bit per byte of `block` (bit `i` for byte `i`): which are quotes, and which backslashes.
/// Compared 16 bytes at a time in SIMD lanes (SSE2 on x86_64): six times as fast as the same
/// bits from 8-byte words, and finding a value's end was a tenth of reading an NDJSON line.
fn block_bits(block: &[u8; BLOCK]) -> (u64, u64) {
    let (quote, backslash) = (u8x16::splat(b'"'), u8x16::splat(b'\\'));
    let (mut quotes, mut backslashes) = (0, 0);
    for (i, lane) in block.chunks_exact(LANE).enumerate() {
        let lane = u8x16::new(lane.try_into().expect("a lane"));
        quotes |= lane_bits(lane.cmp_eq(quote)) << (LANE * i);
        backslashes |= lane_bits(lane.cmp_eq(backslash)) << (LANE * i);
    }
    (quotes, backslashes)
}

/// A bit per lane of `equal` (all ones where equal), lane `i`'s as bit `i`.
fn lane_bits(equal: u8x16) -> u64 {
    u64::from(equal.move_mask() as u16)
}

/// The bits of the bytes a backslash escapes, given the bits of the backslashes: the byte after
/// each odd-length run of them. `next_escaped` carries a run's oddness from the block before
/// (its last byte, a backslash that escapes this block's first byte) to the next.
fn escaped_bits(backslashes: u64, next_escaped: &mut u64) -> u64 {
    let escaping = backslashes & !*next_escaped;
    // An addition at each escaping backslash in an even position runs through the run and
    // stops after it; in an odd position, the odd bits stand in for it.
    let runs_ends = ((escaping << 1) | ODD_BITS).wrapping_sub(escaping) ^ ODD_BITS;
    let escaped = runs_ends ^ (backslashes | *next_escaped);
    *next_escaped = (runs_ends & backslashes) >> 63;
    escaped
}

/// How many bytes of the escaped string content `escaped` hold the first `text_len` bytes of its
/// text; `None` when `escaped` is shorter, or when no escape ends there.
pub fn escaped_len(escaped: &[u8], text_len: usize) -> Option<usize> {
    let (mut at, mut text) = (0, 0);
    while text < text_len {
        if *escaped.get(at)? != b'\\' {
            (at, text) = (at + 1, text + 1);
            continue;
        }
        let after = &escaped[at + 1..];
        let (len, taken) = match after.first().and_then(|escaped| one_byte_escape(*escaped)) {
            Some(_) => (1, 1),
            None => unicode_escape(after).ok().map(|(escaped, taken)| (escaped.len_utf8(), taken))?,
        };
        (at, text) = (at + 1 + taken, text + len);
    }
    (text == text_len).then_some(at)
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
pub fn one_byte_escape(escaped: u8) -> Option<u8> {
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
            let quote_inside = unescaped_text(format!("{content}\"{after}").as_bytes());
            proptest::prop_assert!(quote_inside.is_err(), "a quote that is not escaped is not content");
            let mut arena = BytesMut::new();
            let ours = unescape_into("prefix:", &format!("{content}\"{after}"), &mut arena)
                .map(|rest| (String::from_utf8(arena.to_vec()).unwrap(), rest.to_string()));
            let serde_json = serde_json::from_str::<String>(&format!("\"{content}\""));
            proptest::prop_assert_eq!(ours.ok(), serde_json.ok().map(|text| (format!("prefix:{text}"), after)));
            let mut arena = BytesMut::new();
            let all = unescape_all(b"", content.as_bytes(), &mut arena).map(|()| String::from_utf8(arena.to_vec()).unwrap());
            proptest::prop_assert_eq!(all.ok(), serde_json::from_str::<String>(&format!("\"{content}\"")).ok(), "all of it");
        }

        #[test]
        fn a_string_ends_at_its_first_quote_that_no_backslash_escapes(bytes in "[a\\\\\"]{0,300}") {
            let naive = bytes.bytes().enumerate().scan(false, |escaped, (at, byte)| {
                let ends = byte == b'"' && !*escaped;
                *escaped = byte == b'\\' && !*escaped;
                Some((at, ends))
            });
            let first = naive.into_iter().find(|(_, ends)| *ends).map(|(at, _)| at);
            proptest::prop_assert_eq!(string_end(bytes.as_bytes()), first);
        }

        #[test]
        fn escaped_text_is_measured_by_the_text_it_holds(text in "[a\"\\\\é😀\n\x01]{0,40}") {
            let escaped = |text: &str| serde_json::to_string(text).unwrap().len() - 2;
            let quoted = serde_json::to_string(&text).unwrap();
            let content = &quoted.as_bytes()[1..quoted.len() - 1];
            for (at, _) in text.char_indices().chain([(text.len(), ' ')]) {
                proptest::prop_assert_eq!(escaped_len(content, at), Some(escaped(&text[..at])), "{}", at);
            }
            proptest::prop_assert_eq!(escaped_len(content, text.len() + 1), None, "longer than it");
        }
    }

    #[test]
    fn a_string_end_is_found_past_runs_of_backslashes_across_blocks() {
        for run in [1, 2, 63, 64, 65, 127, 128] {
            for start in [0, 1, 62, 63] {
                let content = format!("{}{}\"", "a".repeat(start), "\\".repeat(run));
                let expected = (run % 2 == 0).then_some(start + run);
                assert_eq!(string_end(content.as_bytes()), expected, "a run of {run} from {start}");
            }
        }
    }
}
