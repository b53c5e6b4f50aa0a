//! One NDJSON line → a Kafka-shaped [`Message`]: `{"topic": …, "key": …, "value": …}` (other
//! members, such as a capture's `headers`, are skipped), where key and value are JSON strings
//! (Debezium's JsonConverter output, as Connect dumps write it), null, or (for producers that
//! embed the document itself) any JSON value.
//!
//! A value string is a whole JSON document escaped into a string: with the Connect schema
//! envelope, ~3.5 KB of which ~2.9 KB is the schema, the same on every line of a topic.
//! Scanning and unescaping it is most of the cost of reading a line, so [`LineParser`]
//! remembers, per topic, the escaped prefix the last strings shared and its unescaped text.
//! A line of a known topic in the usual shape (members `topic`, `key` and `value`, in any
//! order, beside any others) is then read by a byte compare of the prefix and a scan of the
//! rest; any other line goes through serde_json and teaches the parser its topic's prefixes. A
//! value's prefix is not copied into it: it is the message's [`Message::value_head`], one
//! allocation shared by the topic's values, which the decoder recognises by identity, and the
//! value's rest is handed over still escaped, a slice of the line: the parser only finds where
//! the string ends, and the decoder reads the rest's escapes as it reads the payload. A key
//! or value that comes before the topic (as in `{"key":…,"topic":…,"value":…}`, what a JSON
//! writer that sorts members makes) is read with the prefixes of the last line's topic, and the
//! line is read again when its topic is another.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{Message, ValueHead};
use crate::escapes::{string_end, unescape_into, unescaped_text};
use crate::json_text::{space_trimmed, value_len};

/// Parses lines, remembering per topic what their key and value strings began with.
pub struct LineParser {
    prefixes: Prefixes,
    /// Where keys and values are unescaped: each is split off as [`Bytes`] sharing one
    /// allocation with its neighbours, not an allocation of its own. A value of kilobytes a line,
    /// allocated on this thread and freed on another, cost the allocator more than the copy.
    arena: BytesMut,
    /// The last line's topic: a key or value that comes before its line's topic (members
    /// sorted by name) is read with this topic's prefixes instead of being scanned whole first.
    last_topic: Arc<str>,
    skipped: Skipped,
}

/// The arena's first allocation. Later ones are as large (or as large as the rest of a line),
/// as `BytesMut` remembers its first capacity up to 64 KiB: a few dozen values an allocation.
const ARENA_BYTES: usize = 64 << 10;

impl Default for LineParser {
    fn default() -> Self {
        let arena = BytesMut::with_capacity(ARENA_BYTES);
        Self { prefixes: Prefixes::default(), arena, last_topic: "".into(), skipped: Skipped::default() }
    }
}

/// Per topic, the prefixes of its keys and of its values; the topic's name is shared with
/// every message of the topic.
type Prefixes = hashbrown::HashMap<Arc<str>, [SharedPrefix; 2]>;

/// A line's text, and the bytes it is, which keys and values can be slices of.
#[derive(Clone, Copy)]
struct Line<'a> {
    text: &'a str,
    bytes: &'a Bytes,
}

impl Line<'_> {
    /// `part` of the line's text as a slice of its bytes, without a copy.
    fn slice(&self, part: &str) -> Bytes {
        self.bytes.slice_ref(part.as_bytes())
    }
}

/// The members of a line that floe reads.
#[derive(Deserialize)]
struct Members<'a> {
    #[serde(borrow)]
    topic: Option<&'a RawValue>,
    #[serde(borrow)]
    key: Option<&'a RawValue>,
    #[serde(borrow)]
    value: Option<&'a RawValue>,
}

impl LineParser {
    pub fn parse(&mut self, raw: &Bytes) -> Result<Message, String> {
        let text = crate::utf8::text(raw).map_err(|e| invalid(&e.to_string()))?;
        let line = Line { text, bytes: raw };
        let guess = Some(&*self.last_topic).filter(|topic| !topic.is_empty());
        let usual = parse_usual(&self.prefixes, line, &mut self.arena, &mut self.skipped, guess)
            .or_else(|| guess.and_then(|_| parse_usual(&self.prefixes, line, &mut self.arena, &mut self.skipped, None)));
        let message = match usual {
            Some(message) => message,
            None => self.parse_any(line)?,
        };
        if *self.last_topic != *message.topic {
            self.last_topic = message.topic.clone();
        }
        Ok(message)
    }

    fn parse_any(&mut self, line: Line) -> Result<Message, String> {
        let text = line.text;
        if !text.trim_ascii_start().starts_with('{') {
            return Err(match serde_json::from_str::<serde::de::IgnoredAny>(text) {
                Err(e) => invalid(&e.to_string()),
                Ok(_) => "line is not a JSON object".into(),
            });
        }
        let members: Members = serde_json::from_str(text).map_err(|e| invalid(&e.to_string()))?;
        let topic = members.topic.and_then(|t| serde_json::from_str::<String>(t.get()).ok()).ok_or("line has no \"topic\" string")?;
        if !self.prefixes.contains_key(topic.as_str()) {
            self.prefixes.insert(topic.as_str().into(), [SharedPrefix::default(), SharedPrefix::shared_as_head()]);
        }
        let (topic, [key_prefix, value_prefix]) = self.prefixes.get_key_value_mut(topic.as_str()).expect("inserted");
        let key = member_text(members.key, key_prefix, line, &mut self.arena)?;
        let value = member_text(members.value, value_prefix, line, &mut self.arena)?;
        Ok(message(topic.clone(), key, value))
    }
}

/// `{"topic": "<known topic>", "key": …, "value": …}`, members in any order (others are
/// skipped), whose strings start with their prefixes; `None` for anything else, which
/// [`LineParser::parse_any`] reads (and reports). A key or value before the topic is read with
/// the prefixes of `guess` (the last line's topic), or, without one, scanned whole first; a
/// guess the topic then belies is `None` too, and the caller reads the line again without it.
fn parse_usual(prefixes: &Prefixes, line: Line, arena: &mut BytesMut, skipped: &mut Skipped, guess: Option<&str>) -> Option<Message> {
    let mut rest = token(line.text, '{')?;
    let mut topic = None;
    let guessed = guess.and_then(|name| prefixes.get_key_value(name));
    let mut read_by_guess = false;
    // Key and value, [`Member::Read`] once their topic is known (or guessed).
    let mut members = [Member::Absent, Member::Absent];
    for n in 0.. {
        if let Some(after) = token(rest, '}') {
            rest = after;
            break;
        }
        if n > 0 {
            rest = token(rest, ',')?;
        }
        let (name, after) = plain_string(space_trimmed(rest))?;
        rest = space_trimmed(token(after, ':')?);
        let slot = match name {
            "topic" if topic.is_none() => {
                let (name, after) = plain_string(rest)?;
                if read_by_guess && guessed.is_none_or(|(guess, _)| &**guess != name) {
                    return None;
                }
                // The topic is usually the one guessed, already looked up.
                topic = match guessed {
                    Some(entry) if &**entry.0 == name => Some(entry),
                    _ => Some(prefixes.get_key_value(name)?),
                };
                rest = after;
                continue;
            }
            "key" => 0,
            "value" => 1,
            "topic" => return None,
            // Other members (a capture's `headers`, a dump's `partition` or `offset`, …) are
            // not floe's to read.
            _ => {
                rest = skipped.after(name, rest)?;
                continue;
            }
        };
        if !matches!(members[slot], Member::Absent) {
            return None;
        }
        let (member, after) = match topic.map(|(_, p)| p).or(guessed.map(|(_, p)| p)) {
            Some(prefixes) => {
                read_by_guess |= topic.is_none();
                prefixes[slot].read_member(rest, line, arena).map(|(text, after)| (Member::Read(text), after))?
            }
            None => scan_member(rest)?,
        };
        members[slot] = member;
        rest = after;
    }
    if !space_trimmed(rest).is_empty() {
        return None;
    }
    let (topic, prefixes) = topic?;
    let [key, value] = members;
    Some(message(topic.clone(), key.read(&prefixes[0], line, arena)?, value.read(&prefixes[1], line, arena)?))
}

/// The message of a line's `topic`, key and value.
fn message(topic: Arc<str>, key: Option<MemberText>, value: Option<MemberText>) -> Message {
    let (value_head, value) = match value {
        Some(MemberText::Split { head, escaped_rest }) => (Some(head), Some(escaped_rest)),
        Some(MemberText::Whole(text)) => (None, Some(text)),
        None => (None, None),
    };
    let key = key.map(|key| match key {
        MemberText::Whole(text) => text,
        MemberText::Split { .. } => unreachable!("a key's prefix is not shared as a head"),
    });
    Message { topic, key, value, value_head }
}

/// A key or value string's text: whole, or, read by a prefix shared as a head (values'), the
/// head and the rest of the string still escaped.
enum MemberText {
    Whole(Bytes),
    Split { head: ValueHead, escaped_rest: Bytes },
}

/// `rest` after `expected`, skipping whitespace before it.
fn token(rest: &str, expected: char) -> Option<&str> {
    space_trimmed(rest).strip_prefix(expected)
}

/// The last value skipped under each of a few member names. A capture's `headers` are the same
/// on every line of a run, and reading them was a fifth of the parser's work on such lines: a
/// value that starts with the one met before is skipped by a byte compare. Only for arrays,
/// objects and strings, whose last byte ends them, so that the same start is the same value
/// (a number's is not: `1` starts `12`).
#[derive(Default)]
struct Skipped(Vec<(String, String)>);

/// Member names whose last value [`Skipped`] keeps, and the longest value it keeps: a few
/// small copies, whatever the lines hold.
const SKIPPED_KEPT: usize = 8;
const SKIPPED_KEPT_BYTES: usize = 4 << 10;

impl Skipped {
    /// What follows the value of member `name` at the start of `rest`; `None` when there is none.
    fn after<'a>(&mut self, name: &str, rest: &'a str) -> Option<&'a str> {
        let kept = self.0.iter().position(|(kept, _)| kept == name);
        if let Some(text) = kept.map(|i| self.0[i].1.as_str()) {
            if let Some(after) = rest.strip_prefix(text) {
                return Some(after);
            }
        }
        let after = &rest[value_len(rest)?..];
        let text = &rest[..rest.len() - after.len()];
        if text.starts_with(['[', '{', '"']) && text.len() <= SKIPPED_KEPT_BYTES {
            match kept {
                Some(i) => text.clone_into(&mut self.0[i].1),
                None if self.0.len() < SKIPPED_KEPT => self.0.push((name.to_string(), text.to_string())),
                None => {}
            }
        }
        Some(after)
    }
}

/// A string without escapes or control characters at the start of `rest`, and what follows it.
fn plain_string(rest: &str) -> Option<(&str, &str)> {
    let rest = rest.strip_prefix('"')?;
    let end = memchr::memchr2(b'"', b'\\', rest.as_bytes())?;
    let content = &rest[..end];
    (rest.as_bytes()[end] == b'"' && !content.bytes().any(|b| b < 0x20)).then(|| (content, &rest[end + 1..]))
}

/// A key or value member of a line being read.
enum Member<'a> {
    Absent,
    /// Read with its topic's prefix: null, or the text.
    Read(Option<MemberText>),
    /// Met before its topic: null, or the escaped content of its string, closing quote included.
    Scanned(Option<&'a str>),
}

impl Member<'_> {
    /// The member's text; `None` when it is absent or does not start with `prefix`.
    fn read(self, prefix: &SharedPrefix, line: Line, arena: &mut BytesMut) -> Option<Option<MemberText>> {
        match self {
            Member::Absent => None,
            Member::Read(text) => Some(text),
            Member::Scanned(None) => Some(None),
            Member::Scanned(Some(content)) => prefix.read_content(content, line, arena).map(Some),
        }
    }
}

/// A null or string member at the start of `rest`, scanned to its end, and what follows it.
fn scan_member(rest: &str) -> Option<(Member<'_>, &str)> {
    if let Some(rest) = rest.strip_prefix("null") {
        return Some((Member::Scanned(None), rest));
    }
    let content = rest.strip_prefix('"')?;
    let end = string_end(content.as_bytes())?;
    Some((Member::Scanned(Some(&content[..=end])), &content[end + 1..]))
}

/// A member's text: a JSON string's content, or the text of any other JSON value.
fn member_text(
    member: Option<&RawValue>,
    prefix: &mut SharedPrefix,
    line: Line,
    arena: &mut BytesMut,
) -> Result<Option<MemberText>, String> {
    match member.map(RawValue::get) {
        None | Some("null") => Ok(None),
        Some(text) if text.starts_with('"') => Ok(Some(prefix.unescape(text, line, arena)?)),
        Some(text) => Ok(Some(MemberText::Whole(line.slice(text)))),
    }
}

/// The escaped start that the last strings of one member shared, and its unescaped text.
#[derive(Default)]
struct SharedPrefix {
    /// Escaped text after the opening quote, ending just after a `,`: no escape sequence
    /// contains one, so the text is complete escapes and unescapes on its own.
    escaped: String,
    unescaped: String,
    /// `unescaped` and `escaped`, shared by the strings read with it as their head (values'
    /// prefixes, see [`SharedPrefix::shared_as_head`], once one is learned).
    head: Option<ValueHead>,
    shares_head: bool,
    /// The last string that did not start with `escaped`, to learn the next prefix from.
    previous: String,
    /// Whether the prefix was learned from two strings in a row. An empty one then means the
    /// strings share no start (short schemaless values): they are still read without
    /// serde_json. One learned against an older string is tried on the next string only.
    settled: bool,
    /// Whether `previous` is the last string read.
    previous_is_last: std::cell::Cell<bool>,
    /// Strings read by an empty prefix since it was learned: after [`RELEARN_EMPTY`], the
    /// parser learns again, in case the strings have come to share a start.
    read_by_empty: std::cell::Cell<u32>,
}

/// How often a settled empty prefix is learned again.
const RELEARN_EMPTY: u32 = 100;

impl SharedPrefix {
    /// A prefix whose strings share its unescaped text as their head instead of a copy each:
    /// values, whose prefix (the schema envelope) is most of their text.
    fn shared_as_head() -> Self {
        Self { shares_head: true, ..Self::default() }
    }

    /// A key or value member at the start of `rest` (null, or a string starting with the
    /// prefix) and what follows it; `None` for anything else.
    fn read_member<'a>(&self, rest: &'a str, line: Line, arena: &mut BytesMut) -> Option<(Option<MemberText>, &'a str)> {
        if let Some(rest) = rest.strip_prefix("null") {
            return Some((None, rest));
        }
        let tail = self.after_prefix(rest.strip_prefix('"')?)?;
        let (text, rest) = self.read_tail(tail, line, arena).ok()?;
        Some((Some(text), rest))
    }

    /// The text of a string's escaped `content` (closing quote included, nothing after it);
    /// `None` unless it starts with the prefix.
    fn read_content(&self, content: &str, line: Line, arena: &mut BytesMut) -> Option<MemberText> {
        match self.read_tail(self.after_prefix(content)?, line, arena).ok()? {
            (text, "") => Some(text),
            _ => None,
        }
    }

    /// The text of a string whose content after the prefix starts `tail`, and what follows the
    /// string: with a head, the rest still escaped, found by where the string ends; else the
    /// prefix and the rest unescaped.
    fn read_tail<'a>(&self, tail: &'a str, line: Line, arena: &mut BytesMut) -> Result<(MemberText, &'a str), String> {
        if let Some(head) = &self.head {
            let end = string_end(tail.as_bytes()).ok_or_else(|| invalid("a string without its closing quote"))?;
            return Ok((MemberText::Split { head: head.clone(), escaped_rest: line.slice(&tail[..end]) }, &tail[end + 1..]));
        }
        let rest = unescape_into(&self.unescaped, tail, arena).map_err(invalid)?;
        Ok((MemberText::Whole(arena.split().freeze()), rest))
    }

    /// `content` after the prefix; `None` when it does not start with it, when none is learned,
    /// and when an empty prefix is due to be learned again.
    fn after_prefix<'a>(&self, content: &'a str) -> Option<&'a str> {
        let tail = if self.escaped.is_empty() {
            let read = self.read_by_empty.get();
            self.read_by_empty.set(read + 1);
            (self.settled && read < RELEARN_EMPTY).then_some(content)
        } else {
            content.strip_prefix(self.escaped.as_str())
        };
        if tail.is_some() {
            self.previous_is_last.set(false);
        }
        tail
    }

    /// The text of the JSON string literal `quoted` (quotes included), which serde_json has
    /// read.
    fn unescape(&mut self, quoted: &str, line: Line, arena: &mut BytesMut) -> Result<MemberText, String> {
        let body = &quoted[1..];
        if let Some(tail) = self.after_prefix(body) {
            return Ok(self.read_tail(tail, line, arena)?.0);
        }
        let text = joined("", body, arena)?;
        self.learn(body)?;
        Ok(MemberText::Whole(text))
    }

    /// Takes as the prefix what `body` shares with the previous string, up to its last `,`.
    fn learn(&mut self, body: &str) -> Result<(), String> {
        let shared = body.bytes().zip(self.previous.bytes()).take_while(|(a, b)| a == b).count();
        let end = body.as_bytes()[..shared].iter().rposition(|b| *b == b',').map_or(0, |comma| comma + 1);
        self.unescaped = unescaped_text(&body.as_bytes()[..end]).map_err(invalid)?;
        self.escaped = body[..end].to_owned();
        self.head = (self.shares_head && end > 0)
            .then(|| ValueHead::new(Bytes::copy_from_slice(self.unescaped.as_bytes()), Bytes::copy_from_slice(self.escaped.as_bytes())));
        self.settled = self.previous_is_last.get();
        self.previous = body.to_owned();
        self.previous_is_last.set(true);
        self.read_by_empty.set(0);
        Ok(())
    }
}

/// `prefix` followed by the unescaped `tail` (escaped string content, closing quote included,
/// nothing after it), split off `arena`.
fn joined(prefix: &str, tail: &str, arena: &mut BytesMut) -> Result<Bytes, String> {
    match unescape_into(prefix, tail, arena).map_err(invalid)? {
        "" => Ok(arena.split().freeze()),
        rest => Err(invalid(&format!("{rest:.20} after a string"))),
    }
}

fn invalid(what: &str) -> String {
    format!("line is not valid JSON: {what}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line_of(document: &str) -> String {
        let quoted = serde_json::to_string(document).unwrap();
        format!(r#"{{"topic": "t", "key": null, "value": {quoted}}}"#)
    }

    fn message(line: &str, parser: &mut LineParser) -> Message {
        parser.parse(&line_bytes(line)).unwrap()
    }

    fn line_bytes(line: &str) -> Bytes {
        Bytes::copy_from_slice(line.as_bytes())
    }

    fn text(bytes: Option<Bytes>) -> String {
        String::from_utf8(bytes.unwrap().into()).unwrap()
    }

    /// A message's whole value, head and rest.
    fn value(message: &Message) -> String {
        String::from_utf8(message.whole_value().unwrap().unwrap().into_owned()).unwrap()
    }

    #[test]
    fn values_that_share_a_start_share_it_as_one_head_and_keys_stay_whole() {
        let document = |id: u32| format!(r#"{{"schema": {{"a": "x\ty"}}, "payload": {{"id": {id}}}}}"#);
        let line = |id: u32| {
            let quoted = |text: String| serde_json::to_string(&text).unwrap();
            format!(r#"{{"topic": "t", "key": {}, "value": {}}}"#, quoted(document(id)), quoted(document(id)))
        };
        let mut parser = LineParser::default();
        let messages: Vec<Message> = (1..=4).map(|id| message(&line(id), &mut parser)).collect();
        for (id, message) in (1..=4).zip(&messages) {
            assert_eq!(value(message), document(id));
            assert_eq!(text(message.key.clone()), document(id), "a key is whole, whatever its prefix");
        }
        let heads: Vec<_> = messages[2..].iter().map(|m| m.value_head.as_ref().expect("read by the prefix").text.as_ptr()).collect();
        assert!(heads.windows(2).all(|pair| pair[0] == pair[1]), "one allocation for every value's head");
    }

    #[test]
    fn strings_that_share_an_escaped_start_unescape_as_a_whole_would() {
        let documents = [
            r#"{"schema": {"a": "x\ty"}, "payload": {"id": 1, "name": "caf\u00e9 \"1\""}}"#,
            r#"{"schema": {"a": "x\ty"}, "payload": {"id": 2, "name": "tab\there, \\ back"}}"#,
            r#"{"schema": {"a": "x\ty"}, "payload": {"id": 3, "name": "emoji \ud83d\ude00"}}"#,
            r#"{"schema": {"a": "x\ty"}, "payload": {"id": 4, "name": ",,,"}}"#,
            r#"{"schema": {"b": 1}, "payload": {"id": 5}}"#,
            r#"{"schema": {"a": "x\ty"}, "payload": {"id": 6, "name": "x"}}"#,
        ];
        let mut parser = LineParser::default();
        for document in documents.iter().cycle().take(20) {
            assert_eq!(value(&message(&line_of(document), &mut parser)), *document);
        }
        // Strings of the first schema from now on: they come to be read by its start.
        for document in documents[..4].iter().cycle().take(2 * RELEARN_EMPTY as usize) {
            assert_eq!(value(&message(&line_of(document), &mut parser)), *document);
        }
        assert!(!parser.prefixes["t"][1].escaped.is_empty(), "a shared start was learned");
        let usual = read_usual(&parser, &line_of(documents[1]), None).expect("read by the prefix");
        assert_eq!(value(&usual), documents[1]);
    }

    #[test]
    fn strings_that_share_no_start_are_read_without_serde_json_and_learned_again_now_and_then() {
        let documents = [r#"{"b": 1}"#, r#"{"a": 2}"#, r#"{"c": "x"}"#];
        let mut parser = LineParser::default();
        for document in documents {
            message(&line_of(document), &mut parser);
        }
        assert!(read_usual(&parser, &line_of(r#"{"d": 1}"#), None).is_some(), "read by the empty prefix");
        let shared = |i: usize| format!(r#"{{"schema": "a long schema", "payload": {i}}}"#);
        let learned = (0..2 * RELEARN_EMPTY as usize).find(|i| {
            assert_eq!(value(&message(&line_of(&shared(*i)), &mut parser)), shared(*i));
            !parser.prefixes["t"][1].escaped.is_empty()
        });
        assert!(learned.is_some(), "a shared start is learned again");
    }

    #[test]
    fn members_in_any_order_are_read_by_the_prefix() {
        let document = |id: i32| format!(r#"{{"schema": {{"a": "x	y"}}, "payload": {{"id": {id}}}}}"#);
        let key = |id: i32| format!(r#"{{"schema": "k", "payload": {id}}}"#);
        let mut parser = LineParser::default();
        for id in 0..3 {
            message(&serde_json::json!({"topic": "t", "key": key(id), "value": document(id)}).to_string(), &mut parser);
        }
        // serde_json's own maps sort their members: key, topic, value.
        let sorted = serde_json::json!({"value": document(7), "topic": "t", "key": key(7)}).to_string();
        assert!(sorted.starts_with(r#"{"key":"#));
        let usual = read_usual(&parser, &sorted, None).expect("read by the prefix");
        assert_eq!((value(&usual), text(usual.key)), (document(7), key(7)));
        let value_first = format!(r#"{{"value": {}, "key": null, "topic": "t"}}"#, serde_json::to_string(&document(8)).unwrap());
        let usual = read_usual(&parser, &value_first, None).expect("read by the prefix");
        assert_eq!((value(&usual), usual.key), (document(8), None));
        assert!(
            read_usual(&parser, r#"{"topic": "t", "key": null, "key": null}"#, None).is_none(),
            "a repeated member is left to serde_json"
        );
        assert!(read_usual(&parser, r#"{"topic": "t", "key": null}"#, None).is_none(), "so is a missing one");
        assert!(
            parser.parse(&Bytes::from_static(br#"{"key": "abc\"#)).unwrap_err().contains("not valid JSON"),
            "a line cut after a backslash"
        );
    }

    #[test]
    fn other_members_such_as_a_captures_headers_are_skipped_by_the_prefix_too() {
        let document = |id: i32| format!(r#"{{"schema": {{"a": "x"}}, "payload": {{"id": {id}}}}}"#);
        let mut parser = LineParser::default();
        for id in 0..3 {
            message(&serde_json::json!({"topic": "t", "key": null, "value": document(id)}).to_string(), &mut parser);
        }
        let headers = r#"[["__debezium.context.connectorLogicalName", "pg"], ["n", "a \"quoted\" } value"]]"#;
        let value_9 = serde_json::to_string(&document(9)).unwrap();
        let line = format!(r#"{{"topic": "t", "partition": 1, "key": null, "value": {value_9}, "headers": {headers}}}"#);
        let usual = read_usual(&parser, &line, None).expect("read by the prefix");
        assert_eq!((value(&usual), usual.key), (document(9), None));
        assert_eq!(value(&parser.parse(&line_bytes(&line)).unwrap()), document(9));
        for broken in [
            r#"{"topic": "t", "key": null, "value": null, "headers": [1,}"#,
            r#"{"topic": "t", "headers": 1 2, "key": null, "value": null}"#,
        ] {
            assert!(read_usual(&parser, broken, None).is_none(), "{broken}");
            assert!(parser.parse(&line_bytes(broken)).unwrap_err().contains("not valid JSON"), "{broken}");
        }
        // Headers met before are skipped by a compare, and still end where they end.
        let again = format!(r#"{{"topic": "t", "partition": 12, "key": null, "value": {value_9}, "headers": {headers}}}"#);
        let mut skipped = Skipped::default();
        for line in [&line, &again] {
            let usual = parse_usual(&parser.prefixes, as_line(&line_bytes(line)), &mut BytesMut::new(), &mut skipped, None)
                .expect("read by the prefix");
            assert_eq!(value(&usual), document(9));
        }
        let kept: Vec<&str> = skipped.0.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(kept, ["headers"], "a number's start is not kept: 1 starts 12");
        let trailing = format!(r#"{{"topic": "t", "key": null, "value": {value_9}, "headers": {headers}x}}"#);
        assert!(
            parse_usual(&parser.prefixes, as_line(&line_bytes(&trailing)), &mut BytesMut::new(), &mut skipped, None).is_none(),
            "what follows is read"
        );
        assert!(parser.parse(&line_bytes(&trailing)).unwrap_err().contains("not valid JSON"));
        // A kept value is skipped without being read again: one that serde_json would refuse,
        // put there by hand, shows it.
        let mut primed = Skipped(vec![("headers".into(), "[1,]".into())]);
        let primed_line = r#"{"topic": "t", "key": null, "value": null, "headers": [1,]}"#;
        assert!(parse_usual(&parser.prefixes, as_line(&line_bytes(primed_line)), &mut BytesMut::new(), &mut primed, None).is_some());
        // What serde_json refuses in a line is refused here too.
        for refused in
            ["{\"topic\": \"t\", \"a\tb\": 0, \"key\": null, \"value\": null}", "{\"topic\": \"t\",\u{c}\"key\": null, \"value\": null}"]
        {
            assert!(read_usual(&parser, refused, None).is_none(), "{refused:?}");
            assert!(parser.parse(&line_bytes(refused)).unwrap_err().contains("not valid JSON"), "{refused:?}");
        }
        let twice = r#"{"topic": "t", "topic": "t", "key": null, "value": null}"#;
        assert!(read_usual(&parser, twice, None).is_none(), "a repeated topic is left to serde_json");
    }

    /// A parser that has read three values `{"schema": 1, "payload": {"id": …}}`, and so reads
    /// the next by their shared start.
    fn knowing_schema_1() -> LineParser {
        let mut parser = LineParser::default();
        for id in 0..3 {
            message(&line_of(&format!(r#"{{"schema": 1, "payload": {{"id": {id}}}}}"#)), &mut parser);
        }
        parser
    }

    #[test]
    fn a_line_of_a_known_topic_that_is_not_valid_is_still_reported() {
        let mut parser = knowing_schema_1();
        let cut = line_of(r#"{"schema": 1, "payload": {"id": 9}}"#).replace("}\"}", "}");
        assert!(parser.parse(&line_bytes(&cut)).unwrap_err().contains("not valid JSON"), "a value string never closed");
        let trailing = line_of(r#"{"schema": 1, "payload": {"id": 9}}"#) + " x";
        assert!(parser.parse(&line_bytes(&trailing)).unwrap_err().contains("not valid JSON"));
    }

    #[test]
    fn escapes_after_a_values_shared_start_are_left_to_the_values_reader() {
        let mut parser = knowing_schema_1();
        let broken = line_of(r#"{"schema": 1, "payload": {"id": 9}}"#).replace("9", "\\x");
        let parsed = parser.parse(&line_bytes(&broken)).expect("the line's own JSON is whole");
        assert!(parsed.value_head.is_some(), "read by the shared start");
        assert_eq!(parsed.whole_value().unwrap().err(), Some("an unknown escape in a string"));
    }

    #[test]
    fn topics_keep_their_own_prefix() {
        let mut parser = LineParser::default();
        for i in 0..6 {
            for topic in ["a", "b"] {
                let document = format!(r#"{{"schema": "{topic}{topic}{topic}", "payload": {{"n": {i}, "m": 1}}}}"#);
                let line = serde_json::json!({"topic": topic, "key": "{\"k\": 1}", "value": document}).to_string();
                let parsed = message(&line, &mut parser);
                assert_eq!(value(&parsed), document);
                assert_eq!(text(parsed.key), "{\"k\": 1}");
            }
        }
        assert!(parser.prefixes["a"][1].escaped.contains("aaa"));
        assert!(parser.prefixes["b"][1].escaped.contains("bbb"));
        // Members sorted by name put the key before the topic: it is read with the guessed
        // topic's prefixes, and a guess the topic belies leaves the line to be read again.
        let document = r#"{"schema": "bbb", "payload": {"n": 9, "m": 1}}"#;
        let sorted = serde_json::json!({"topic": "b", "key": "{\"k\": 1}", "value": document}).to_string();
        assert!(sorted.starts_with(r#"{"key":"#));
        let read = read_usual(&parser, &sorted, Some("b")).expect("the guess holds");
        assert_eq!((value(&read), text(read.key)), (document.to_string(), "{\"k\": 1}".to_string()));
        assert!(read_usual(&parser, &sorted, Some("a")).is_none(), "belied");
        assert_eq!(value(&message(&sorted, &mut parser)), document, "read again without the guess");
    }

    #[test]
    fn embedded_documents_and_nulls_are_kept_as_written() {
        let mut parser = LineParser::default();
        let parsed = message(r#"{"topic": "t", "key": {"id": 1}, "value": null}"#, &mut parser);
        assert_eq!(text(parsed.key), r#"{"id": 1}"#);
        assert_eq!(parsed.value, None);
    }

    /// [`parse_usual`] of `line` with `parser`'s prefixes, a fresh arena and nothing skipped before.
    fn read_usual(parser: &LineParser, line: &str, guess: Option<&str>) -> Option<Message> {
        parse_usual(&parser.prefixes, as_line(&line_bytes(line)), &mut BytesMut::new(), &mut Skipped::default(), guess)
    }

    fn as_line(bytes: &Bytes) -> Line<'_> {
        Line { text: std::str::from_utf8(bytes).unwrap(), bytes }
    }

    /// [`unescape_into`]'s text and what follows the string.
    fn unescaped<'a>(prefix: &str, rest: &'a str) -> Result<(String, &'a str), String> {
        let mut arena = BytesMut::new();
        let rest = unescape_into(prefix, rest, &mut arena).map_err(invalid)?;
        Ok((String::from_utf8(arena.to_vec()).unwrap(), rest))
    }

    /// What serde_json makes of the JSON string literal `quoted`, as [`unescaped`] reports it.
    fn serde_json_reading(quoted: &str) -> Result<String, ()> {
        serde_json::from_str::<String>(quoted).map_err(|_| ())
    }

    #[test]
    fn strings_unescape_as_serde_json_reads_them_and_what_it_rejects_is_rejected() {
        let literals = [
            r#""plain""#,
            r#""\"quoted\" \\ \/ \b\f\n\r\t""#,
            r#""caf\u00e9 \u20AC \ud83d\ude00 \uD83D\uDE00""#,
            r#""\u0000 and \u001f""#,
            r#""lone \udc00""#,
            r#""lone \ud83d x""#,
            r#""high then high \ud83d\ud83d""#,
            r#""short \u12""#,
            r#""signed \u+123""#,
            r#""unknown \x""#,
            "\"raw \u{1} control\"",
            "\"raw tab\tinside\"",
            r#""cut \"#,
            r#""unclosed"#,
        ];
        for quoted in literals {
            let ours = unescaped("", &quoted[1..]).map(|(text, rest)| (text, rest.len())).map_err(|_| ());
            assert_eq!(ours, serde_json_reading(quoted).map(|text| (text, 0)), "{quoted}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_string_round_trips_through_its_json_literal(text in "\\PC*|[\\x00-\\x7f]*") {
            let quoted = serde_json::to_string(&text).unwrap();
            let inside = format!("{}, more", &quoted[1..]);
            let (unescaped, rest) = unescaped("prefix:", &inside).unwrap();
            proptest::prop_assert_eq!(unescaped, format!("prefix:{text}"));
            proptest::prop_assert_eq!(rest, ", more");
        }
    }

    #[test]
    fn bad_lines_say_why() {
        let mut parser = LineParser::default();
        assert!(parser.parse(&Bytes::from_static(b"[1]")).unwrap_err().contains("not a JSON object"));
        assert!(parser.parse(&Bytes::from_static(b"{\"topic\": ")).unwrap_err().contains("not valid JSON"));
        assert!(parser.parse(&Bytes::from_static(b"{\"key\": null}")).unwrap_err().contains("no \"topic\""));
        assert!(parser.parse(&Bytes::from_static(b"{\"topic\": \"t\", \"value\": \"\\x\"}")).unwrap_err().contains("not valid JSON"));
    }
}
