//! Query results as text: an aligned table, CSV with a header, JSON (an array of objects) or
//! NDJSON (one object per line). Every rendering ends with exactly one newline.
//!
//! JSON spells out every column of every row, nulls included, so a reader can tell a null from
//! a missing column. Non-finite floats are the strings `"NaN"`, `"Infinity"` and `"-Infinity"`,
//! as Debezium and PostgreSQL's `to_jsonb` write them: JSON has no number for them, and writing
//! `null` would lose them. Dates and timestamps at the extremes of their integer are PostgreSQL's
//! `infinity` and `-infinity` (the sink stores them so, as DuckDB does) and are written so.

use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Date32Type, FieldRef, Float32Type, Float64Type, TimeUnit, TimestampMicrosecondType};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use arrow_json::writer::{Encoder, EncoderFactory, EncoderOptions, JsonArray, JsonFormat, LineDelimited, NullableEncoder};
use arrow_json::WriterBuilder;
use chrono::{DateTime, NaiveDate, SecondsFormat};
use floe_catalog::layout::{INFINITE_DATE_DAYS, INFINITE_TIMESTAMP_MICROS};

use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
    Ndjson,
}

pub fn render(batches: &[RecordBatch], format: OutputFormat) -> Result<String> {
    let text = match format {
        OutputFormat::Table => arrow::util::pretty::pretty_format_batches(batches)?.to_string(),
        OutputFormat::Csv => {
            let mut buf = Vec::new();
            {
                let mut writer = arrow::csv::WriterBuilder::new().with_header(true).build(&mut buf);
                for batch in batches {
                    writer.write(batch)?;
                }
            }
            String::from_utf8_lossy(&buf).into_owned()
        }
        OutputFormat::Json => {
            let text = json::<JsonArray>(batches)?;
            if text.is_empty() {
                "[]".to_string()
            } else {
                text
            }
        }
        OutputFormat::Ndjson => json::<LineDelimited>(batches)?,
    };
    Ok(if text.is_empty() || text.ends_with('\n') { text } else { text + "\n" })
}

fn json<F: JsonFormat>(batches: &[RecordBatch]) -> Result<String> {
    let mut writer = WriterBuilder::new().with_explicit_nulls(true).with_encoder_factory(Arc::new(PostgresJson)).build::<_, F>(Vec::new());
    for batch in batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    Ok(String::from_utf8_lossy(&writer.into_inner()).into_owned())
}

/// Encodes floats (at any depth) with NaN and the infinities as strings, and dates and
/// microsecond timestamps with `infinity` and `-infinity`.
#[derive(Debug)]
struct PostgresJson;

impl EncoderFactory for PostgresJson {
    fn make_default_encoder<'a>(
        &self,
        _field: &'a FieldRef,
        array: &'a dyn Array,
        _options: &'a EncoderOptions,
    ) -> std::result::Result<Option<NullableEncoder<'a>>, ArrowError> {
        let encoder: Box<dyn Encoder + 'a> = match array.data_type() {
            DataType::Float32 => Box::new(FloatEncoder(array.as_primitive::<Float32Type>().values().as_ref())),
            DataType::Float64 => Box::new(FloatEncoder(array.as_primitive::<Float64Type>().values().as_ref())),
            DataType::Date32 => Box::new(DateEncoder(array.as_primitive::<Date32Type>().values().as_ref())),
            DataType::Timestamp(TimeUnit::Microsecond, zone) => Box::new(TimestampEncoder {
                micros: array.as_primitive::<TimestampMicrosecondType>().values().as_ref(),
                utc: zone.is_some(),
            }),
            _ => return Ok(None),
        };
        Ok(Some(NullableEncoder::new(encoder, array.nulls().cloned())))
    }
}

/// `infinity` or `-infinity` when `value` is the layout's `infinite` or its negation.
fn infinity(value: i64, infinite: i64) -> Option<&'static str> {
    match value {
        v if v == infinite => Some("infinity"),
        v if v == -infinite => Some("-infinity"),
        _ => None,
    }
}

/// Days since 1970-01-01 → `"YYYY-MM-DD"`, `"infinity"`, `"-infinity"`.
struct DateEncoder<'a>(&'a [i32]);

impl Encoder for DateEncoder<'_> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        const UNIX_EPOCH_FROM_CE: i32 = 719_163;
        let days = self.0[idx];
        let text = match infinity(days.into(), INFINITE_DATE_DAYS.into()) {
            Some(text) => text.to_string(),
            None => match days.checked_add(UNIX_EPOCH_FROM_CE).and_then(NaiveDate::from_num_days_from_ce_opt) {
                Some(date) => date.format("%Y-%m-%d").to_string(),
                None => return out.extend_from_slice(days.to_string().as_bytes()),
            },
        };
        out.extend_from_slice(format!("\"{text}\"").as_bytes());
    }
}

/// Microseconds since epoch → ISO 8601 (with `Z` for a zoned column), `"infinity"`, `"-infinity"`.
/// A value beyond what a calendar can show is written as its number.
struct TimestampEncoder<'a> {
    micros: &'a [i64],
    utc: bool,
}

impl Encoder for TimestampEncoder<'_> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        let micros = self.micros[idx];
        let text = match infinity(micros, INFINITE_TIMESTAMP_MICROS) {
            Some(text) => text.to_string(),
            None => match DateTime::from_timestamp_micros(micros) {
                Some(t) if self.utc => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                Some(t) => t.naive_utc().format("%Y-%m-%dT%H:%M:%S%.f").to_string(),
                None => return out.extend_from_slice(micros.to_string().as_bytes()),
            },
        };
        out.extend_from_slice(format!("\"{text}\"").as_bytes());
    }
}

struct FloatEncoder<'a, T>(&'a [T]);

impl<T: Float> Encoder for FloatEncoder<'_, T> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        out.extend_from_slice(self.0[idx].json().as_bytes());
    }
}

/// JSON text of a float: the shortest digits that read back to the same value (`Debug` keeps
/// an `f32` as `1.1`, not `1.100000023841858`), or a string for the non-finite ones.
trait Float: Copy + std::fmt::Debug {
    fn json(self) -> String;
}

macro_rules! float_json {
    ($t:ty) => {
        impl Float for $t {
            fn json(self) -> String {
                if self.is_nan() {
                    "\"NaN\"".into()
                } else if self.is_infinite() {
                    if self > 0.0 {
                        "\"Infinity\"".into()
                    } else {
                        "\"-Infinity\"".into()
                    }
                } else {
                    format!("{self:?}")
                }
            }
        }
    };
}
float_json!(f32);
float_json!(f64);

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float32Array, Float64Array, Int32Array, ListArray};
    use arrow::datatypes::{Field, Int32Type, Schema};

    fn batch() -> RecordBatch {
        let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![Some(vec![Some(1), None]), None, Some(vec![])]);
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("f", DataType::Float64, true),
            Field::new("r", DataType::Float32, true),
            Field::new("l", list.data_type().clone(), true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int32Array::from(vec![1, 2, 3])),
                Arc::new(Float64Array::from(vec![Some(f64::NAN), Some(f64::NEG_INFINITY), None])),
                Arc::new(Float32Array::from(vec![Some(1.1), Some(f32::INFINITY), Some(-0.0)])),
                Arc::new(list),
            ],
        )
        .unwrap()
    }

    #[test]
    fn json_spells_out_nulls_and_non_finite_floats() {
        let text = render(&[batch()], OutputFormat::Json).unwrap();
        let rows: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            rows,
            serde_json::json!([
                {"id": 1, "f": "NaN", "r": 1.1, "l": [1, null]},
                {"id": 2, "f": "-Infinity", "r": "Infinity", "l": null},
                {"id": 3, "f": null, "r": -0.0, "l": []},
            ])
        );
        assert!(text.ends_with("]\n"), "{text:?}");
    }

    #[test]
    fn ndjson_is_one_object_per_line() {
        let text = render(&[batch()], OutputFormat::Ndjson).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(serde_json::from_str::<serde_json::Value>(lines[1]).unwrap()["f"], "-Infinity");
    }

    #[test]
    fn every_format_ends_with_one_newline() {
        // CSV has no nested types: the flat columns only.
        let flat = batch().project(&[0, 1, 2]).unwrap();
        for format in [OutputFormat::Table, OutputFormat::Csv, OutputFormat::Json, OutputFormat::Ndjson] {
            let text = render(std::slice::from_ref(&flat), format).unwrap();
            assert!(text.ends_with('\n') && !text.ends_with("\n\n"), "{format:?}: {text:?}");
        }
        assert_eq!(render(&[], OutputFormat::Json).unwrap(), "[]\n");
    }
}
