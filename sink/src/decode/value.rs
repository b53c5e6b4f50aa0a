//! Source JSON value + its [`Kind`] → the value stored in the table: a [`Cell`] that an Arrow
//! builder takes directly, or (for nested columns, and for tests) the canonical JSON that
//! arrow-json decodes into the table's Arrow type: integers for dates (days), times and
//! timestamps (microseconds, UTC), decimal strings for decimals, hex for binary. Both are
//! independent of how the source encoded the value, so values decoded under an older, narrower
//! schema still load into a widened table.

use base64::Engine;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use floe_catalog::layout::{INFINITE_DATE_DAYS, INFINITE_TIMESTAMP_MICROS};
use num_bigint::{BigInt, Sign};
use serde_json::{Map, Value};

use super::kind::{Field, Kind, TimeUnit};
use super::DecodeError;

const EPOCH: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();

/// One value converted for its column, ready for an Arrow builder.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Bool(bool),
    /// Integers, and dates (days), times and timestamps (microseconds).
    Int(i64),
    Float(f64),
    Text(String),
    /// Text known when floe was built (an operation's code): no allocation per row.
    Static(&'static str),
    Bytes(Vec<u8>),
    /// An exact decimal string, scaled into the column's decimal type by the builder.
    Decimal(String),
    /// A list, struct or map in canonical JSON.
    Nested(Value),
}

/// Converts `value` of kind `kind` into a [`Cell`]; the same conversion as [`canonical`].
pub fn cell(value: Value, kind: &Kind) -> Result<Cell, DecodeError> {
    // The usual scalars directly: what `canonical` would give, without its copy of the value.
    match (kind, &value) {
        (_, Value::Null) => return Ok(Cell::Null),
        (Kind::Boolean, Value::Bool(b)) => return Ok(Cell::Bool(*b)),
        (Kind::Int | Kind::Long, Value::Number(n)) if n.is_i64() => return Ok(Cell::Int(n.as_i64().expect("an i64"))),
        (Kind::Float | Kind::Double, Value::Number(n)) => return Ok(Cell::Float(n.as_f64().expect("serde_json numbers are finite"))),
        _ => {}
    }
    Ok(match kind {
        Kind::String => match value {
            Value::String(s) => Cell::Text(s),
            other => Cell::Text(other.to_string()),
        },
        Kind::Bytes => Cell::Bytes(base64_bytes(&value).ok_or_else(|| mismatch(kind, &value))?),
        Kind::List(_) | Kind::Struct(_) | Kind::Map(..) => Cell::Nested(canonical(&value, kind)?),
        _ => match canonical(&value, kind)? {
            Value::Bool(b) => Cell::Bool(b),
            Value::Number(n) => match n.as_i64() {
                Some(i) if !matches!(kind, Kind::Float | Kind::Double) => Cell::Int(i),
                _ => Cell::Float(n.as_f64().expect("serde_json numbers are finite")),
            },
            Value::String(s) => match kind {
                Kind::Float | Kind::Double => Cell::Float(s.parse().map_err(|_| mismatch(kind, &value))?),
                Kind::Decimal { .. } => Cell::Decimal(s),
                _ => Cell::Text(s),
            },
            _ => return Err(mismatch(kind, &value)),
        },
    })
}

fn mismatch(kind: &Kind, value: &Value) -> DecodeError {
    DecodeError::new(format!("expected {kind:?}, got {value}"))
}

/// Converts `value` of kind `kind`. `Null` stays `Null`; nullability is checked by the writer.
pub fn canonical(value: &Value, kind: &Kind) -> Result<Value, DecodeError> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    let mismatch = || DecodeError::new(format!("expected {kind:?}, got {value}"));
    Ok(match kind {
        Kind::Boolean => Value::Bool(value.as_bool().ok_or_else(mismatch)?),
        Kind::Int | Kind::Long => Value::from(value.as_i64().ok_or_else(mismatch)?),
        Kind::Float | Kind::Double => number_or_special(value).ok_or_else(mismatch)?,
        Kind::String => match value {
            Value::String(_) => value.clone(),
            // Json columns and schemaless nested values are kept as their JSON text.
            other => Value::String(other.to_string()),
        },
        Kind::Bytes => Value::String(hex(&base64_bytes(value).ok_or_else(mismatch)?)),
        Kind::Decimal { scale, .. } => Value::String(decimal(value, *scale).ok_or_else(mismatch)?),
        Kind::VariableDecimal => Value::String(variable_decimal(value).ok_or_else(mismatch)?),
        Kind::Date => Value::from(infinite_date(date_days(value).ok_or_else(mismatch)?)),
        Kind::Time(unit) => match value {
            Value::String(s) => Value::from(time_micros(s).ok_or_else(mismatch)?),
            _ => Value::from(unit.to_micros(value.as_i64().ok_or_else(mismatch)?)),
        },
        Kind::Timestamp(unit) => match value {
            Value::String(s) => Value::from(naive_timestamp_micros(s).ok_or_else(mismatch)?),
            _ => Value::from(timestamp_micros(*unit, value.as_i64().ok_or_else(mismatch)?)),
        },
        Kind::TimestampTz => match value {
            Value::String(s) => Value::from(timestamptz_micros(s).ok_or_else(mismatch)?),
            _ => Value::from(value.as_i64().ok_or_else(mismatch)?),
        },
        Kind::List(element) => {
            Value::Array(value.as_array().ok_or_else(mismatch)?.iter().map(|v| canonical(v, &element.kind)).collect::<Result<_, _>>()?)
        }
        Kind::Struct(fields) => Value::Object(canonical_struct(value.as_object().ok_or_else(mismatch)?, fields)?),
        Kind::Map(k, v) => Value::Object(canonical_map(value, &k.kind, &v.kind)?),
    })
}

/// Converts the named fields of `object`; fields not in `fields` are ignored.
pub fn canonical_struct(object: &Map<String, Value>, fields: &[Field]) -> Result<Map<String, Value>, DecodeError> {
    let mut out = Map::with_capacity(fields.len());
    for field in fields {
        let value = object.get(&field.name).unwrap_or(&Value::Null);
        let converted = canonical(value, &field.kind).map_err(|e| e.in_column(&field.name))?;
        out.insert(field.name.clone(), converted);
    }
    Ok(out)
}

/// JsonConverter writes a map with required string keys as a JSON object, and any other map as
/// an array of `[key, value]` pairs. Both become an object keyed by the canonical key's text,
/// which is how arrow-json reads a map.
fn canonical_map(value: &Value, key: &Kind, item: &Kind) -> Result<Map<String, Value>, DecodeError> {
    let entry = |k: &Value, x: &Value| -> Result<(String, Value), DecodeError> {
        let k = match canonical(k, key)? {
            Value::String(s) => s,
            other => other.to_string(),
        };
        Ok((k, canonical(x, item)?))
    };
    match value {
        Value::Object(map) => map.iter().map(|(k, x)| entry(&Value::String(k.clone()), x)).collect(),
        Value::Array(pairs) => pairs
            .iter()
            .map(|pair| match pair.as_array().map(Vec::as_slice) {
                Some([k, x]) => entry(k, x),
                _ => Err(DecodeError::new(format!("map entry is not a [key, value] pair: {pair}"))),
            })
            .collect(),
        other => Err(DecodeError::new(format!("expected a map, got {other}"))),
    }
}

/// Debezium encodes NaN and infinities as strings.
fn number_or_special(value: &Value) -> Option<Value> {
    match value {
        Value::Number(_) => Some(value.clone()),
        Value::String(s) if matches!(s.as_str(), "NaN" | "Infinity" | "-Infinity") => Some(value.clone()),
        _ => None,
    }
}

fn base64_bytes(value: &Value) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(value.as_str()?).ok()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A decimal as an exact string: base64 big-endian two's-complement unscaled bytes with the
/// column's scale (Debezium `precise`), or a JSON number as written.
fn decimal(value: &Value, scale: u32) -> Option<String> {
    match value {
        Value::Number(n) => Some(n.to_string()),
        Value::String(_) => Some(scaled(&unscaled(&base64_bytes(value)?)?, scale)),
        _ => None,
    }
}

fn variable_decimal(value: &Value) -> Option<String> {
    let scale = value.get("scale")?.as_u64()? as u32;
    decimal(value.get("value")?, scale)
}

/// Big-endian two's complement of any length: PostgreSQL's `numeric` has up to 131072 digits,
/// far beyond `i128`.
fn unscaled(bytes: &[u8]) -> Option<BigInt> {
    (!bytes.is_empty()).then(|| BigInt::from_signed_bytes_be(bytes))
}

fn scaled(unscaled: &BigInt, scale: u32) -> String {
    let digits = unscaled.magnitude().to_string();
    let sign = if unscaled.sign() == Sign::Minus { "-" } else { "" };
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let scale = scale as usize;
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{sign}{int}.{frac}")
}

fn date_days(value: &Value) -> Option<i64> {
    match value {
        Value::String(s) => Some((NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()? - EPOCH).num_days()),
        _ => value.as_i64(),
    }
}

// PostgreSQL's ±infinity dates and timestamps become the layout's infinities, whatever Debezium
// made of them: for `timestamp` a value near the integer's limit (in the column's unit), for
// `timestamptz` the strings `infinity` and `-infinity`, and for `date` day counts that no
// PostgreSQL date has, which differ between snapshot and streaming.

fn infinite_date(days: i64) -> i64 {
    match days {
        -622_191_234 | -2_147_472_692 => INFINITE_DATE_DAYS as i64,
        -625_821_272 | -2_147_472_691 => -INFINITE_DATE_DAYS as i64,
        days => days,
    }
}

fn timestamp_micros(unit: TimeUnit, count: i64) -> i64 {
    match (unit, count) {
        (TimeUnit::Micros, 9_223_372_036_825_200_000) | (TimeUnit::Millis, 9_223_372_036_825_200) => INFINITE_TIMESTAMP_MICROS,
        (TimeUnit::Micros, -9_223_372_036_832_400_000) | (TimeUnit::Millis, -9_223_372_036_832_400) => -INFINITE_TIMESTAMP_MICROS,
        _ => unit.to_micros(count),
    }
}

/// Debezium's `ZonedTimestamp` text, or `infinity`/`-infinity`.
fn timestamptz_micros(s: &str) -> Option<i64> {
    match s {
        "infinity" => Some(INFINITE_TIMESTAMP_MICROS),
        "-infinity" => Some(-INFINITE_TIMESTAMP_MICROS),
        _ => Some(DateTime::parse_from_rfc3339(s).ok()?.timestamp_micros()),
    }
}

fn time_micros(s: &str) -> Option<i64> {
    let t = NaiveTime::parse_from_str(s.trim_end_matches('Z'), "%H:%M:%S%.f").ok()?;
    Some(t.num_seconds_from_midnight() as i64 * 1_000_000 + (t.nanosecond() / 1_000) as i64)
}

fn naive_timestamp_micros(s: &str) -> Option<i64> {
    let t = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f"))
        .ok()?;
    Some(t.and_utc().timestamp_micros())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decimals_decode_from_debezium_precise_bytes() {
        // 4643729118 unscaled = 0x0114C9A4DE → "AUyaTd4=" is not it; build from bytes instead.
        let bytes = 4643729118i128.to_be_bytes();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes[11..]);
        assert_eq!(canonical(&json!(b64), &Kind::Decimal { precision: 14, scale: 2 }).unwrap(), json!("46437291.18"));
        let neg = (-5i128).to_be_bytes();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&neg[15..]);
        assert_eq!(canonical(&json!(b64), &Kind::Decimal { precision: 5, scale: 3 }).unwrap(), json!("-0.005"));
        let var = json!({"scale": 1, "value": base64::engine::general_purpose::STANDARD.encode([0x01, 0x00])});
        assert_eq!(canonical(&var, &Kind::VariableDecimal).unwrap(), json!("25.6"));
        // Wider than i128: numeric '12345678901234567890.123456789012345678901234567890'.
        let big: BigInt = "12345678901234567890123456789012345678901234567890".parse().unwrap();
        let var = json!({"scale": 30, "value": base64::engine::general_purpose::STANDARD.encode(big.to_signed_bytes_be())});
        assert_eq!(canonical(&var, &Kind::VariableDecimal).unwrap(), json!("12345678901234567890.123456789012345678901234567890"));
    }

    #[test]
    fn times_normalise_to_micros() {
        assert_eq!(canonical(&json!(1500), &Kind::Timestamp(TimeUnit::Millis)).unwrap(), json!(1_500_000));
        assert_eq!(canonical(&json!(1_500_999), &Kind::Timestamp(TimeUnit::Nanos)).unwrap(), json!(1_500));
        assert_eq!(canonical(&json!("1970-01-01T00:00:01.5Z"), &Kind::TimestampTz).unwrap(), json!(1_500_000));
        assert_eq!(canonical(&json!("1970-01-01T01:00:00+01:00"), &Kind::TimestampTz).unwrap(), json!(0));
        assert_eq!(canonical(&json!("1970-01-11"), &Kind::Date).unwrap(), json!(10));
        assert_eq!(canonical(&json!(2), &Kind::Time(TimeUnit::Millis)).unwrap(), json!(2000));
    }

    #[test]
    fn infinities_become_the_integer_extremes() {
        let ts = Kind::Timestamp(TimeUnit::Micros);
        assert_eq!(canonical(&json!(9_223_372_036_825_200_000i64), &ts).unwrap(), json!(i64::MAX));
        assert_eq!(canonical(&json!(-9_223_372_036_832_400i64), &Kind::Timestamp(TimeUnit::Millis)).unwrap(), json!(-i64::MAX));
        assert_eq!(canonical(&json!("-infinity"), &Kind::TimestampTz).unwrap(), json!(-i64::MAX));
        assert_eq!(canonical(&json!(-2_147_472_692), &Kind::Date).unwrap(), json!(i32::MAX));
        assert_eq!(canonical(&json!(-625_821_272), &Kind::Date).unwrap(), json!(-i32::MAX));
    }

    #[test]
    fn maps_arrive_as_objects_or_as_key_value_pairs() {
        let kind = Kind::Map(Box::new(Field::new("key", Kind::Int, false)), Box::new(Field::new("value", Kind::String, true)));
        assert_eq!(canonical(&json!([[1, "a"], [2, null]]), &kind).unwrap(), json!({"1": "a", "2": null}));
        let kind = Kind::Map(Box::new(Field::new("key", Kind::String, false)), Box::new(Field::new("value", Kind::Long, true)));
        assert_eq!(canonical(&json!({"x": 1}), &kind).unwrap(), json!({"x": 1}));
        assert!(canonical(&json!([[1]]), &kind).is_err());
    }

    #[test]
    fn scalars_become_cells_as_their_canonical_values_would() {
        let cases = [
            (json!(true), Kind::Boolean, Some(Cell::Bool(true))),
            (json!(i64::MIN), Kind::Long, Some(Cell::Int(i64::MIN))),
            (json!(7), Kind::Int, Some(Cell::Int(7))),
            (json!(7), Kind::Double, Some(Cell::Float(7.0))),
            (json!(-0.0), Kind::Double, Some(Cell::Float(-0.0))),
            (json!(1e300), Kind::Float, Some(Cell::Float(1e300))),
            (json!("NaN"), Kind::Double, None),
            (json!(u64::MAX), Kind::Long, None),
            (json!(1.5), Kind::Int, None),
            (json!("7"), Kind::Long, None),
            (json!(1), Kind::Boolean, None),
            (Value::Null, Kind::Long, Some(Cell::Null)),
        ];
        for (value, kind, expected) in cases {
            let converted = cell(value.clone(), &kind);
            match expected {
                Some(expected) => assert_eq!(format!("{:?}", converted.unwrap()), format!("{expected:?}"), "{value} as {kind:?}"),
                // Whatever `canonical` makes of it, `cell` makes the same.
                None => assert_eq!(
                    format!("{converted:?}"),
                    format!("{:?}", canonical(&value, &kind).map(|c| cell(c, &kind).unwrap())),
                    "{value} as {kind:?}"
                ),
            }
        }
        assert!(matches!(cell(json!("NaN"), &Kind::Double), Ok(Cell::Float(f)) if f.is_nan()));
    }

    #[test]
    fn mismatched_values_name_the_column() {
        let fields = vec![Field::new("n", Kind::Long, true)];
        let obj = json!({"n": "not a number"});
        let err = canonical_struct(obj.as_object().unwrap(), &fields).unwrap_err();
        assert!(err.to_string().contains("column n"), "{err}");
    }
}
