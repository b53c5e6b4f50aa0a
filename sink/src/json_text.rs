//! Scans over JSON text that the line parser and the decoder share: what JSON counts as
//! whitespace, and where a value ends.

/// Whether JSON counts `byte` as whitespace (Rust's ASCII whitespace has the form feed too,
/// which JSON does not).
pub fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
}

/// `text` without the whitespace JSON allows at its start.
pub fn space_trimmed(text: &str) -> &str {
    &text[text.len() - bytes_space_trimmed(text.as_bytes()).len()..]
}

/// `bytes` without the whitespace JSON allows at its start.
pub fn bytes_space_trimmed(bytes: &[u8]) -> &[u8] {
    &bytes[bytes.iter().take_while(|byte| is_space(**byte)).count()..]
}

/// The length of the JSON value at the start of `rest` (whitespace before it included), as
/// serde_json measures it while checking it; `None` when none starts there.
pub fn value_len(rest: &str) -> Option<usize> {
    let mut values = serde_json::Deserializer::from_str(rest).into_iter::<serde::de::IgnoredAny>();
    values.next()?.ok()?;
    Some(values.byte_offset())
}
