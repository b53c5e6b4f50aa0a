//! The scans of a shape's values in a payload written as JSON: a value's length, and what
//! serde_json makes of it.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::escapes::one_byte_escape;

/// The length of the JSON value `rest` starts with; `None` when it does not start with one.
/// Strings, numbers and literals are scanned; objects and arrays are measured by serde_json.
pub(super) fn value_len(rest: &str) -> Option<usize> {
    let literal = |word: &str| rest.starts_with(word).then_some(word.len());
    match rest.as_bytes().first()? {
        b'"' => string_len(rest),
        b'-' | b'0'..=b'9' => number_len(rest.as_bytes()),
        b'n' => literal("null"),
        b't' => literal("true"),
        b'f' => literal("false"),
        b'{' | b'[' => crate::json_text::value_len(rest),
        _ => None,
    }
}

/// The length of the JSON string `rest` starts with, quotes included. Escapes are checked as
/// serde_json checks them when it skips a string: a known escape, or `u` and four hex digits.
pub(super) fn string_len(rest: &str) -> Option<usize> {
    let bytes = rest.as_bytes();
    let mut at = 1;
    loop {
        match *bytes.get(at)? {
            b'"' => return Some(at + 1),
            b'\\' => {
                at += match *bytes.get(at + 1)? {
                    b'u' if bytes.get(at + 2..at + 6)?.iter().all(u8::is_ascii_hexdigit) => 6,
                    escaped => one_byte_escape(escaped).map(|_| 2)?,
                }
            }
            0..=0x1f => return None,
            _ => at += 1,
        }
    }
}

/// The length of the JSON number `bytes` starts with: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE]
/// [+-]? [0-9]+)?`.
pub(super) fn number_len(bytes: &[u8]) -> Option<usize> {
    let digits = |at: usize| bytes[at.min(bytes.len())..].iter().take_while(|b| b.is_ascii_digit()).count();
    let mut at = usize::from(bytes.first() == Some(&b'-'));
    match bytes.get(at)? {
        b'0' => at += 1,
        b'1'..=b'9' => at += digits(at),
        _ => return None,
    }
    if bytes.get(at) == Some(&b'.') {
        let fraction = digits(at + 1);
        (fraction > 0).then_some(())?;
        at += 1 + fraction;
    }
    if matches!(bytes.get(at), Some(b'e' | b'E')) {
        at += 1 + usize::from(matches!(bytes.get(at + 1), Some(b'+' | b'-')));
        let exponent = digits(at);
        (exponent > 0).then_some(())?;
        at += exponent;
    }
    Some(at)
}

/// A value as serde_json reads it into a [`Value`] inside a payload's `after` or `source`.
/// Plain strings and integers are made here; the rest is parsed by serde_json. `-0` is among
/// the rest: serde_json reads it as a float. `None` for what serde_json would refuse there.
pub(super) fn to_value(value: &str) -> Option<Value> {
    if let Some(text) = plain_content(value) {
        return Some(Value::String(text.to_owned()));
    }
    let bytes = value.as_bytes();
    match bytes[0] {
        b'n' => return Some(Value::Null),
        b't' => return Some(Value::Bool(true)),
        b'f' => return Some(Value::Bool(false)),
        b'0'..=b'9' | b'-' if value.len() <= 18 && value != "-0" && bytes[1..].iter().all(u8::is_ascii_digit) => {
            return value.parse::<i64>().ok().map(Value::from)
        }
        b'{' | b'[' if value.len() > 2 * MAX_VALUE_DEPTH && depth(value) > MAX_VALUE_DEPTH => return None,
        _ => {}
    }
    serde_json::from_str(value).ok()
}

/// How deep serde_json reads a value nested in a payload's `after` or `source`: it reads 127
/// levels in all (`RecursionLimitExceeded` beyond), and the payload and its image take two.
/// A value parsed on its own has all 127, so a deeper one is refused here.
pub(super) const MAX_VALUE_DEPTH: usize = 125;

/// How deeply objects and arrays nest in `value`, valid JSON.
fn depth(value: &str) -> usize {
    let (mut depth, mut deepest, mut at) = (0usize, 0, 0);
    let bytes = value.as_bytes();
    while at < bytes.len() {
        match bytes[at] {
            b'"' => at += string_len(&value[at..]).unwrap_or(1) - 1,
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        at += 1;
    }
    deepest
}

/// The `op` value: a string, or null for none; `None` for anything else.
pub(super) fn op_value(value: &str) -> Option<Option<Cow<'_, str>>> {
    if let Some(text) = plain_content(value) {
        return Some(Some(Cow::Borrowed(text)));
    }
    match value.as_bytes()[0] {
        b'n' => Some(None),
        b'"' => serde_json::from_str::<String>(value).ok().map(|op| Some(Cow::Owned(op))),
        _ => None,
    }
}

/// The content of a string value without escapes, which is its text.
pub(super) fn plain_content(value: &str) -> Option<&str> {
    value.strip_prefix('"').filter(|_| !value.contains('\\')).map(|content| &content[..content.len() - 1])
}

/// The `before` value's text; null for none.
pub(super) fn before_value(value: &str) -> Option<Option<&RawValue>> {
    match value {
        "null" => Some(None),
        _ => Option::<&RawValue>::deserialize(&mut serde_json::Deserializer::from_str(value)).ok(),
    }
}
