//! One pass over a Debezium value payload (`{"before": …, "after": …, "source": …, "op": …}`).
//!
//! When the `after` image's fields are known before the payload is read (from the envelope's
//! schema, or the fields the stream's last record had), the image is read straight into values
//! aligned with them, and the source's times are read in place: the payload is scanned once.
//! Otherwise, and for `before` (needed only by deletes), an image is kept as its raw JSON text.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::Deserializer;
use serde_json::value::RawValue;
use serde_json::Value;

use super::json_object::{Key, Members, ObjectSeed};
use super::Field;

/// The members of a payload floe reads; the rest is skipped unread.
#[derive(Debug, Default)]
pub struct Payload<'a> {
    pub before: Option<&'a RawValue>,
    pub after: Image<'a>,
    pub op: Option<Cow<'a, str>>,
    /// `source.ts_us`, else `source.ts_ms` in microseconds.
    pub source_ts_micros: Option<i64>,
}

/// The `after` image as read.
#[derive(Debug, Default)]
pub enum Image<'a> {
    /// Null or missing.
    #[default]
    Absent,
    /// Its JSON text: no fields were known, or it is not an object.
    Raw(&'a RawValue),
    /// Read into the values given, aligned with the fields given.
    Read(Members),
}

/// Reads the payload object `bytes`. With `after_fields`, the `after` image is read into
/// `after_values` (`values[i]` for `after_fields[i]`, `Null` when absent).
pub fn read_payload<'a>(bytes: &'a [u8], after_fields: Option<&[Field]>, after_values: &mut Vec<Value>) -> serde_json::Result<Payload<'a>> {
    // Checked as UTF-8 once, whole, rather than string by string as serde_json reads bytes:
    // a payload is dozens of short strings (member names, values). Bytes that are not UTF-8
    // are read as bytes, for serde_json's own error.
    match crate::utf8::text(bytes) {
        Ok(text) => read_payload_from(serde_json::Deserializer::from_str(text), after_fields, after_values),
        Err(_) => read_payload_from(serde_json::Deserializer::from_slice(bytes), after_fields, after_values),
    }
}

fn read_payload_from<'a, R: serde_json::de::Read<'a>>(
    mut de: serde_json::Deserializer<R>,
    after_fields: Option<&[Field]>,
    after_values: &mut Vec<Value>,
) -> serde_json::Result<Payload<'a>> {
    let payload = PayloadSeed { after_fields, after_values }.deserialize(&mut de)?;
    de.end()?;
    Ok(payload)
}

struct PayloadSeed<'s> {
    after_fields: Option<&'s [Field]>,
    after_values: &'s mut Vec<Value>,
}

impl<'de> DeserializeSeed<'de> for PayloadSeed<'_> {
    type Value = Payload<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Payload<'de>, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PayloadSeed<'_> {
    type Value = Payload<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Debezium payload object")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Payload<'de>, A::Error> {
        let mut payload = Payload::default();
        while let Some(Key(name)) = map.next_key()? {
            match name.as_ref() {
                "before" => payload.before = map.next_value()?,
                "after" => payload.after = self.read_after(&mut map)?,
                "op" => payload.op = map.next_value()?,
                "source" => payload.source_ts_micros = map.next_value_seed(SourceTimes)?,
                _ => _ = map.next_value::<IgnoredAny>()?,
            }
        }
        Ok(payload)
    }
}

impl PayloadSeed<'_> {
    fn read_after<'de, A: MapAccess<'de>>(&mut self, map: &mut A) -> Result<Image<'de>, A::Error> {
        let Some(fields) = self.after_fields else {
            return Ok(map.next_value::<Option<&RawValue>>()?.map_or(Image::Absent, Image::Raw));
        };
        self.after_values.clear();
        self.after_values.resize(fields.len(), Value::Null);
        Ok(match map.next_value_seed(Nullable(ObjectSeed::new(fields, self.after_values)))? {
            Some(members) => Image::Read(members),
            None => Image::Absent,
        })
    }
}

/// `null` as `None`, anything else through the inner seed.
struct Nullable<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Nullable<S> {
    type Value = Option<S::Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_option(self)
    }
}

impl<'de, S: DeserializeSeed<'de>> Visitor<'de> for Nullable<S> {
    type Value = Option<S::Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("null or a value")
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(deserializer).map(Some)
    }
}

/// A `source` block's time: `ts_us`, else `ts_ms` in microseconds (none when that overflows).
pub fn source_micros(ts_us: Option<i64>, ts_ms: Option<i64>) -> Option<i64> {
    ts_us.or_else(|| ts_ms?.checked_mul(1_000))
}

/// The time of a payload's `source` block: `ts_us`, else `ts_ms` in microseconds. Read
/// leniently: a source that is not an object, or without integer times, has none, and the
/// record goes on without it.
struct SourceTimes;

impl<'de> DeserializeSeed<'de> for SourceTimes {
    type Value = Option<i64>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<i64>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for SourceTimes {
    type Value = Option<i64>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Debezium source block")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<i64>, A::Error> {
        let (mut us, mut ms) = (None, None);
        while let Some(Key(name)) = map.next_key()? {
            match name.as_ref() {
                "ts_us" => us = map.next_value::<Value>()?.as_i64(),
                "ts_ms" => ms = map.next_value::<Value>()?.as_i64(),
                _ => _ = map.next_value::<IgnoredAny>()?,
            }
        }
        Ok(source_micros(us, ms))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Option<i64>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Option<i64>, E> {
        Ok(None)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Option<i64>, E> {
        Ok(None)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Option<i64>, E> {
        Ok(None)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Option<i64>, E> {
        Ok(None)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Option<i64>, E> {
        Ok(None)
    }

    fn visit_str<E>(self, _: &str) -> Result<Option<i64>, E> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::json_object::tests::fields;
    use serde_json::json;

    #[test]
    fn the_after_image_is_read_into_its_fields_in_the_same_pass() {
        let text = br#"{"before": {"id": 1}, "after": {"name": "b", "id": 1, "extra": [1]}, "source": {"ts_ms": 5, "db": "x"}, "op": "u", "ts_ms": 9}"#;
        let mut values = vec![];
        let payload = read_payload(text, Some(&fields(&["id", "name", "gone"])), &mut values).unwrap();
        assert!(matches!(payload.after, Image::Read(Members { members: 3, matched: 2 })), "{payload:?}");
        assert_eq!(values, vec![json!(1), json!("b"), json!(null)]);
        assert_eq!((payload.op.as_deref(), payload.source_ts_micros), (Some("u"), Some(5_000)));
        assert_eq!(payload.before.map(RawValue::get), Some(r#"{"id": 1}"#));
    }

    #[test]
    fn without_fields_or_with_a_null_image_nothing_is_read() {
        let mut values = vec![];
        let delete = br#"{"before": {"id": 1}, "after": null, "source": {"ts_us": 7}, "op": "d"}"#;
        let payload = read_payload(delete, Some(&fields(&["id"])), &mut values).unwrap();
        assert!(matches!(payload.after, Image::Absent));
        assert_eq!(payload.source_ts_micros, Some(7));
        let payload = read_payload(br#"{"after": {"id": 2}, "op": "c"}"#, None, &mut values).unwrap();
        assert!(matches!(payload.after, Image::Raw(raw) if raw.get() == r#"{"id": 2}"#));
        assert!(read_payload(br#"{"after": "text", "op": "c"}"#, Some(&fields(&["id"])), &mut values).is_err(), "not an object");
        for source in [r#""text""#, "[1, 2]", "null", r#"{"ts_ms": "soon"}"#] {
            let text = format!(r#"{{"after": null, "source": {source}, "op": "d"}}"#);
            let payload = read_payload(text.as_bytes(), None, &mut values).unwrap_or_else(|e| panic!("{source}: {e}"));
            assert_eq!(payload.source_ts_micros, None, "a source without times: {source}");
        }
    }

    #[test]
    fn text_is_read_whatever_its_script_and_bytes_that_are_not_utf8_are_an_error_that_says_so() {
        let mut values = vec![];
        let text = r#"{"after": {"id": 1, "name": "Zoë \u00e9 €"}, "op": "c"}"#;
        read_payload(text.as_bytes(), Some(&fields(&["id", "name"])), &mut values).unwrap();
        assert_eq!(values, vec![json!(1), json!("Zoë é €")]);
        let not_utf8 = b"{\"after\": {\"id\": 1, \"name\": \"Zo\xeb\"}, \"op\": \"c\"}";
        let error = read_payload(not_utf8, Some(&fields(&["id", "name"])), &mut values).unwrap_err();
        assert!(error.to_string().contains("invalid unicode code point"), "{error}");
    }
}
