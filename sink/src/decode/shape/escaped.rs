//! The scans of a shape's values in a payload still escaped inside a JSON string
//! ([`Form::Escaped`](super::Form::Escaped)), each checked as strictly as its
//! [`plain`](super::plain) twin checks the unescaped text, so that a payload read escaped is
//! read as it would be unescaped. The escapes of the string itself are checked here too: the
//! line parser leaves them to the payload's reader.
//!
//! Numbers and literals are written alike in both forms. A string of the payload is `\"…\"`,
//! and its own escapes are escaped again (`\\n`, `\\\"`); a string escaped otherwise (`\u00e9`
//! for `é`, `\/` for `/`) is not read here, and leaves the payload to be unescaped.

use std::borrow::Cow;

use serde_json::value::Value;

use super::plain;
use crate::escapes::one_byte_escape;

/// The length of the escaped JSON value that `rest` starts with; `None` when it does not start
/// with one that [`plain::value_len`] would take once unescaped, or is escaped otherwise.
pub(super) fn value_len(rest: &str) -> Option<usize> {
    let literal = |word: &str| rest.starts_with(word).then_some(word.len());
    match rest.as_bytes().first()? {
        b'\\' => string_len(rest),
        b'-' | b'0'..=b'9' => plain::number_len(rest.as_bytes()),
        b'n' => literal("null"),
        b't' => literal("true"),
        b'f' => literal("false"),
        b'{' | b'[' => container_len(rest),
        _ => None,
    }
}

/// The length of the escaped string `\"…\"` that `rest` starts with. Its own escapes are
/// checked as [`plain::string_len`] checks them once unescaped.
fn string_len(rest: &str) -> Option<usize> {
    let bytes = rest.as_bytes();
    if !rest.starts_with("\\\"") {
        return None;
    }
    let mut at = 2;
    loop {
        match *bytes.get(at)? {
            b'\\' => match *bytes.get(at + 1)? {
                b'"' => return Some(at + 2),
                b'\\' => at += 2 + own_escape_len(&bytes[at + 2..])?,
                _ => return None,
            },
            // Neither is valid inside the string that holds the payload.
            b'"' | 0..=0x1f => return None,
            _ => at += 1,
        }
    }
}

/// The length of what follows a string's own backslash (escaped as `\\`): the rest of its
/// escape, escaped. `None` for what serde_json would not take as an escape.
fn own_escape_len(bytes: &[u8]) -> Option<usize> {
    match *bytes.first()? {
        // The string's own `\"` and `\\`, escaped again.
        b'\\' => matches!(bytes.get(1)?, b'"' | b'\\').then_some(2),
        b'u' if bytes.get(1..5)?.iter().all(u8::is_ascii_hexdigit) => Some(5),
        // A raw quote ends the string that holds the payload: not valid here.
        b'"' => None,
        escaped => one_byte_escape(escaped).map(|_| 1),
    }
}

/// The length of the escaped object or array that `rest` starts with: where its brackets
/// close (its strings skipped), and then checked by serde_json on its unescaped text. Objects
/// and arrays are rare among a shape's values (a `transaction` block, JSON columns), so they
/// may cost an unescape.
fn container_len(rest: &str) -> Option<usize> {
    let bytes = rest.as_bytes();
    let (mut depth, mut at) = (0usize, 0);
    loop {
        match *bytes.get(at)? {
            b'{' | b'[' => depth += 1,
            b'}' | b']' if depth == 1 => break,
            b'}' | b']' => depth -= 1,
            b'\\' => {
                at += string_len(&rest[at..])?;
                continue;
            }
            b'"' | 0..=0x1f => return None,
            _ => {}
        }
        at += 1;
    }
    let len = at + 1;
    let text = unescaped(&rest[..len])?;
    (crate::json_text::value_len(&text) == Some(text.len())).then_some(len)
}

/// A value as [`plain::to_value`] makes it of the unescaped text.
pub(super) fn to_value(value: &str) -> Option<Value> {
    if let Some(text) = plain_content(value) {
        return Some(Value::String(text.to_owned()));
    }
    match value.as_bytes()[0] {
        b'\\' | b'{' | b'[' => plain::to_value(&unescaped(value)?),
        _ => plain::to_value(value),
    }
}

/// The `op` value as [`plain::op_value`] reads the unescaped text.
pub(super) fn op_value(value: &str) -> Option<Option<Cow<'_, str>>> {
    if let Some(text) = plain_content(value) {
        return Some(Some(Cow::Borrowed(text)));
    }
    match value.as_bytes()[0] {
        b'\\' => plain::op_value(&unescaped(value)?).map(|op| op.map(|op| Cow::Owned(op.into_owned()))),
        _ => plain::op_value(value),
    }
}

/// The content of an escaped string value `\"…\"` without escapes of its own, which is its
/// text.
fn plain_content(value: &str) -> Option<&str> {
    let content = value.strip_prefix("\\\"")?.strip_suffix("\\\"")?;
    (!content.contains('\\')).then_some(content)
}

/// The unescaped text of an escaped value.
fn unescaped(value: &str) -> Option<String> {
    crate::escapes::unescaped_text(value.as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::escapes::escaped;

    #[test]
    fn values_escaped_are_measured_and_made_as_their_text_is() {
        for value in [
            r#""plain""#,
            r#""""#,
            r#""with \"quotes\" and \\ and \n and \u00e9""#,
            "-12.5e3",
            "0",
            "null",
            "true",
            "false",
            r#"{"a":[1,{"b":"c\"d"}],"e":null}"#,
            "[]",
            r#"[{"x":"]"}]"#,
        ] {
            let text = escaped(value);
            let after = format!("{text},\\\"next\\\":1");
            assert_eq!(value_len(&after), Some(text.len()), "{value}");
            assert_eq!(to_value(&text), plain::to_value(value), "{value}");
        }
    }

    #[test]
    fn what_is_not_valid_once_unescaped_or_escaped_otherwise_is_not_read() {
        for rest in [
            r#"\"cut"#,
            r#"\"bad \\x escape\""#,
            "\\\"raw \u{1} control\\\"",
            r#"\"raw " quote\""#,
            r#"\"\u00e9 escaped otherwise\""#,
            r#"\"\/ escaped otherwise\""#,
            r#"{\"a\":}"#,
            r#"[1,]"#,
            r#"{\"a\":1"#,
            "nul",
        ] {
            assert_eq!(value_len(rest), None, "{rest}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_string_escaped_is_read_as_its_text_is(text in "\\PC*|[\\x00-\\x7f]*") {
            let value = serde_json::to_string(&text).unwrap();
            let escaped = escaped(&value);
            proptest::prop_assert_eq!(value_len(&escaped), Some(escaped.len()));
            proptest::prop_assert_eq!(to_value(&escaped), plain::to_value(&value));
        }
    }
}
