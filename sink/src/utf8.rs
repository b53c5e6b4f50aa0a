//! Bytes checked as UTF-8 text. Ingest checks every line and every payload, kilobytes an
//! event, and std's check was 4% of the NDJSON path's CPU: simdutf8's vectorised check comes
//! first, and only bytes it refuses go through std's, for the detail of its error.

/// `bytes` as text, or why they are not.
pub fn text(bytes: &[u8]) -> Result<&str, std::str::Utf8Error> {
    simdutf8::basic::from_utf8(bytes).or_else(|_| std::str::from_utf8(bytes))
}

#[cfg(test)]
mod tests {
    #[test]
    fn text_is_text_and_other_bytes_say_where_they_stop_being_text() {
        assert_eq!(super::text("Zoë €".as_bytes()), Ok("Zoë €"));
        let error = super::text(b"ab\xffcd").unwrap_err();
        assert_eq!(error.valid_up_to(), 2);
    }
}
