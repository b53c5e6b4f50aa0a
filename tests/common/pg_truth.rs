//! Comparing a value floe serves with PostgreSQL's own rendering of it (`to_jsonb(row)`, the
//! truth files of the Debezium captures). The two spell the same value differently: floe gives a
//! `bytea` as hex, `money` as a decimal, an `interval` as Debezium's microseconds, a `timetz` in
//! UTC, a `point` as Debezium's struct, JSON columns as their text. Each rule below turns one
//! spelling into the other exactly; nothing is compared approximately except floats, to the last
//! bit of an f64.

use base64::Engine;
use chrono::{NaiveDateTime, NaiveTime};
use serde_json::Value;

/// How the capture's converter options change what Debezium can carry.
#[derive(Debug, Clone, Copy, Default)]
pub struct Precision {
    /// `time.precision.mode=connect`: times and timestamps carry milliseconds only.
    pub millis: bool,
    /// `decimal.handling.mode=double`: decimals pass through an f64.
    pub decimals_as_double: bool,
}

pub fn same(ours: &Value, truth: &Value, precision: Precision) -> bool {
    match (ours, truth) {
        (Value::Null, Value::Null) => true,
        (Value::Null, _) | (_, Value::Null) => false,
        (_, Value::Number(t)) => same_number(ours, &t.to_string(), precision),
        (Value::String(o), Value::Object(_) | Value::Array(_)) => {
            serde_json::from_str::<Value>(o).is_ok_and(|parsed| same(&parsed, truth, precision))
        }
        (Value::Array(o), Value::Array(t)) => o.len() == t.len() && o.iter().zip(t).all(|(o, t)| same(o, t, precision)),
        (Value::Object(o), Value::Object(t)) => {
            o.len() == t.len() && t.iter().all(|(k, t)| o.get(k).is_some_and(|o| same(o, t, precision)))
        }
        (Value::Object(o), Value::String(t)) => same_point(o, t),
        (Value::Number(n), Value::String(t)) => {
            interval_micros(t).is_some_and(|micros| same_number(ours, &micros.to_string(), precision))
                || same_text(&n.to_string(), t, precision)
        }
        (Value::String(o), Value::String(t)) => same_text(o, t, precision),
        (Value::Bool(o), Value::Bool(t)) => o == t,
        _ => false,
    }
}

fn same_number(ours: &Value, truth: &str, precision: Precision) -> bool {
    let ours = match ours {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => return false,
    };
    if normal_decimal(&ours).is_some_and(|o| Some(o) == normal_decimal(truth)) {
        return true;
    }
    let (Ok(o), Ok(t)) = (ours.parse::<f64>(), truth.parse::<f64>()) else { return false };
    let tolerance = if precision.decimals_as_double { 1e-15 } else { 0.0 };
    // A real column reaches the truth file through float4's shortest text, and floe through an
    // f32's: both are the same f32, so compare at f32 precision when they agree there.
    o == t || (o - t).abs() <= tolerance * t.abs() || ((o as f32).is_finite() && o as f32 == t as f32 && o as f32 as f64 == o)
}

/// `-012.3400` → `-12.34`; `None` when the text is not a plain decimal.
fn normal_decimal(text: &str) -> Option<String> {
    let (sign, digits) = text.strip_prefix('-').map_or(("", text), |d| ("-", d));
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty() || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let body = match (int.is_empty(), frac.is_empty()) {
        (true, true) => return Some("0".into()),
        (_, true) => int.to_string(),
        (true, false) => format!("0.{frac}"),
        (false, false) => format!("{int}.{frac}"),
    };
    Some(format!("{sign}{body}"))
}

fn same_text(ours: &str, truth: &str, precision: Precision) -> bool {
    if ours == truth {
        return true;
    }
    if let Some(hex) = truth.strip_prefix("\\x") {
        return ours == hex || base64::engine::general_purpose::STANDARD.decode(ours).is_ok_and(|b| to_hex(&b) == hex);
    }
    if let Some(money) = money_decimal(truth) {
        return same_number(&Value::String(ours.into()), &money, precision);
    }
    if truth.chars().all(|c| c == '0' || c == '1') && !truth.is_empty() {
        return ours == to_hex(&bit_set_bytes(truth));
    }
    if let (Some(o), Some(t)) = (timestamp(ours), timestamp(truth)) {
        return o == t || (precision.millis && o == floor_millis(t));
    }
    if let (Some(o), Some(t)) = (time(ours), time_in_utc(truth)) {
        return o == t || (precision.millis && o == floor_millis(t));
    }
    if let Some(micros) = interval_micros(truth) {
        return iso_duration_micros(ours) == Some(micros);
    }
    // A type Debezium does not know (include.unknown.datatypes): the bytes of its text, which
    // Java and PostgreSQL spell with different number formats.
    if let Some(text) = hex_text(ours) {
        if same_numbers_and_punctuation(&text, truth) {
            return true;
        }
    }
    // A JSON column whose document is a string: floe keeps the JSON text.
    serde_json::from_str::<Value>(ours).is_ok_and(|v| v == Value::String(truth.into()))
}

fn hex_text(hex: &str) -> Option<String> {
    if !hex.len().is_multiple_of(2) || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok()).collect();
    String::from_utf8(bytes?).ok()
}

/// `(1.0E10,1.0)` against `(10000000000,1)`: the same punctuation, and numbers equal as f64.
fn same_numbers_and_punctuation(a: &str, b: &str) -> bool {
    fn tokens(text: &str) -> Vec<Result<f64, char>> {
        let mut out = Vec::new();
        let mut number = String::new();
        for c in text.chars() {
            if c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+') {
                number.push(c);
                continue;
            }
            if !number.is_empty() {
                out.push(number.parse().map_err(|_| '?'));
                number.clear();
            }
            out.push(Err(c));
        }
        if !number.is_empty() {
            out.push(number.parse().map_err(|_| '?'));
        }
        out
    }
    let (a, b) = (tokens(a), tokens(b));
    !a.contains(&Err('?')) && a == b
}

/// The same instant with its digits below a millisecond dropped.
fn floor_millis<T: chrono::Timelike>(t: T) -> T {
    let nanos = t.nanosecond() / 1_000_000 * 1_000_000;
    t.with_nanosecond(nanos).expect("fewer nanoseconds are valid")
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A bit string as Debezium's `Bits` carries it: Java's `BitSet.toByteArray()`, bit `i` of the
/// set being the `i`-th character from the right, trailing zero bytes dropped.
fn bit_set_bytes(bits: &str) -> Vec<u8> {
    let mut bytes = vec![0u8; bits.len().div_ceil(8)];
    for (i, c) in bits.chars().rev().enumerate() {
        if c == '1' {
            bytes[i / 8] |= 1 << (i % 8);
        }
    }
    while bytes.last() == Some(&0) {
        bytes.pop();
    }
    bytes
}

/// `"$1,234.56"`, `"-$0.01"` (lc_monetary C) → `1234.56`, `-0.01`.
fn money_decimal(text: &str) -> Option<String> {
    let (sign, rest) = text.strip_prefix('-').map_or(("", text), |r| ("-", r));
    let amount = rest.strip_prefix('$')?.replace(',', "");
    normal_decimal(&amount).map(|a| format!("{sign}{a}"))
}

fn timestamp(text: &str) -> Option<NaiveDateTime> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(t.naive_utc());
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").ok()
}

fn time(text: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(text.trim_end_matches('Z'), "%H:%M:%S%.f").ok()
}

/// `13:45:30.5+05:30` → 08:15:30.5 (a `timetz`, shifted to UTC as Debezium does); a time
/// without offset as it is.
fn time_in_utc(text: &str) -> Option<NaiveTime> {
    let at = text.rfind(['+', '-']).filter(|at| *at >= 8);
    let Some(at) = at else { return time(text) };
    let (clock, offset) = text.split_at(at);
    let sign = if offset.starts_with('-') { -1 } else { 1 };
    let mut parts = offset[1..].split(':').map(|p| p.parse::<i64>().ok());
    let hours = parts.next()??;
    let minutes = parts.next().flatten().unwrap_or(0);
    let seconds = parts.next().flatten().unwrap_or(0);
    let shift = chrono::Duration::seconds(sign * (hours * 3600 + minutes * 60 + seconds));
    Some(time(clock)? - shift)
}

/// A point as Debezium's struct `{x, y, wkb, srid}` against PostgreSQL's `(x,y)`.
fn same_point(ours: &serde_json::Map<String, Value>, truth: &str) -> bool {
    let Some((x, y)) = truth.strip_prefix('(').and_then(|t| t.strip_suffix(')')).and_then(|t| t.split_once(',')) else {
        return false;
    };
    let coordinate = |v: Option<&Value>| v.and_then(Value::as_f64);
    coordinate(ours.get("x")) == x.parse().ok() && coordinate(ours.get("y")) == y.parse().ok()
}

const MICROS_PER_DAY: f64 = 86_400_000_000.0;

/// PostgreSQL's interval text (`1 year 2 mons 3 days 04:05:06.789`, `-1 days -00:00:00.000001`)
/// → Debezium's `MicroDuration`: a month is 30.4375 days, a year 365.25 days, saturating at the
/// limits of an i64.
fn interval_micros(text: &str) -> Option<i64> {
    let mut total = 0f64;
    let mut tokens = text.split_whitespace().peekable();
    let mut seen = false;
    while let Some(token) = tokens.next() {
        if token.contains(':') {
            let (sign, clock) = token.strip_prefix('-').map_or((1.0, token), |c| (-1.0, c));
            let mut parts = clock.split(':');
            let h: f64 = parts.next()?.parse().ok()?;
            let m: f64 = parts.next()?.parse().ok()?;
            let s: f64 = parts.next().unwrap_or("0").parse().ok()?;
            total += sign * ((h * 3600.0 + m * 60.0) * 1e6 + (s * 1e6).round());
        } else {
            let n: f64 = token.parse().ok()?;
            let unit = tokens.next()?;
            let per = match unit.trim_end_matches('s') {
                "year" => 365.25 * MICROS_PER_DAY,
                "mon" => 30.4375 * MICROS_PER_DAY,
                "day" => MICROS_PER_DAY,
                _ => return None,
            };
            total += n * per;
        }
        seen = true;
    }
    seen.then(|| total.round().clamp(i64::MIN as f64, i64::MAX as f64) as i64)
}

/// Debezium's `interval.handling.mode=string` (`P1Y2M3DT4H5M6.789S`), with the same month and
/// year lengths as [`interval_micros`].
fn iso_duration_micros(text: &str) -> Option<i64> {
    let body = text.strip_prefix('P')?;
    let (date, time) = body.split_once('T').unwrap_or((body, ""));
    let mut total = 0f64;
    for (part, units) in [
        (date, [('Y', 365.25 * MICROS_PER_DAY), ('M', 30.4375 * MICROS_PER_DAY), ('D', MICROS_PER_DAY)]),
        (time, [('H', 3.6e9), ('M', 6e7), ('S', 1e6)]),
    ] {
        let mut number = String::new();
        for c in part.chars() {
            match units.iter().find(|(u, _)| *u == c) {
                Some((_, per)) => {
                    total += number.parse::<f64>().ok()? * per;
                    number.clear();
                }
                None => number.push(c),
            }
        }
        if !number.is_empty() {
            return None;
        }
    }
    Some(total.round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_spelling_rule_matches_only_its_value() {
        let p = Precision::default();
        assert!(same(&json!("deadbeef"), &json!("\\xdeadbeef"), p));
        assert!(!same(&json!("deadbeee"), &json!("\\xdeadbeef"), p));
        assert!(same(&json!("1234.56"), &json!("$1,234.56"), p));
        assert!(same(&json!("0a"), &json!("1010"), p));
        assert!(same(&json!("06"), &json!("110"), p));
        assert!(same(&json!("08:15:30.5Z"), &json!("13:45:30.5+05:30"), p));
        assert!(same(&json!(37091106789000i64), &json!("1 year 2 mons 3 days 04:05:06.789"), p));
        assert!(same(&json!(2629800000000i64), &json!("1 mon"), p));
        assert!(same(&json!(-86400000001i64), &json!("-1 days -00:00:00.000001"), p));
        assert!(!same(&json!(1), &json!(2), p));
        assert!(same(&json!("-12.3400"), &json!(-12.34), p));
        assert!(same(&json!("28312e304531302c31292c28302c3029"), &json!("(10000000000,1),(0,0)"), p));
        assert!(!same(&json!("28312e304531302c31292c28302c3029"), &json!("(10000000000,2),(0,0)"), p));
    }
}
