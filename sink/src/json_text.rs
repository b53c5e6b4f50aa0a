//! Scans over JSON text that the line parser and the decoder share: what JSON counts as
//! whitespace, and where a value ends.

/// `text` without the whitespace JSON allows at its start (not Rust's ASCII whitespace, which
/// has the form feed too).
pub fn space_trimmed(text: &str) -> &str {
    text.trim_start_matches([' ', '\t', '\n', '\r'])
}

/// The length of the JSON value at the start of `rest` (whitespace before it included), as
/// serde_json measures it while checking it; `None` when none starts there.
pub fn value_len(rest: &str) -> Option<usize> {
    let mut values = serde_json::Deserializer::from_str(rest).into_iter::<serde::de::IgnoredAny>();
    values.next()?.ok()?;
    Some(values.byte_offset())
}
