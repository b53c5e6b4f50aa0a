//! Which columns of a data file are written without a Parquet dictionary.
//!
//! The Parquet writer builds a dictionary for every column and falls back to plain values only
//! once the dictionary outgrows its page (1 MiB): until then, every value of a column whose
//! values are all different (names, emails, amounts, ids) costs a hash and a copy, for a
//! dictionary as large as the values. So the first batch of each file is sampled, and a column
//! whose sampled values are nearly all different is written plain. Ingesting Debezium events
//! of a table with a unique name and amount went ×1.06 faster so, at ×0.94 the CPU
//! (BENCHMARKS.md, sixteenth session).

use std::collections::HashSet;

use arrow_array::{Array, RecordBatch, UInt32Array};
use arrow_row::{RowConverter, SortField};
use arrow_schema::DataType;

/// Rows sampled per batch, spread over it ([`sample_rows`]).
const SAMPLE_ROWS: usize = 1024;

/// Fewer non-null values than this in the sample say nothing either way: the column keeps the
/// writer's dictionary.
const MIN_SAMPLED_VALUES: usize = 256;

/// The share of distinct values among the sampled ones above which a column is written plain:
/// a batch of 50,000 rows whose sample is 98% distinct has about 25,000 distinct values or more
/// (a sample of 1,024 from 10,000 distinct values is about 95% distinct).
const DISTINCT_SHARE: f64 = 0.98;

/// The names of `batch`'s top-level columns whose values look unique enough that a dictionary
/// would not pay.
pub fn columns_without_dictionary(batch: &RecordBatch) -> Vec<String> {
    let rows = batch.num_rows();
    if rows < MIN_SAMPLED_VALUES {
        return vec![];
    }
    let sample = sample_rows(rows);
    batch
        .schema()
        .fields()
        .iter()
        .zip(batch.columns())
        .filter(|(field, column)| takes_a_dictionary(field.data_type()) && looks_unique(column.as_ref(), &sample))
        .map(|(field, _)| field.name().clone())
        .collect()
}

/// Up to [`SAMPLE_ROWS`] of `rows` rows: one from each of as many equal stretches, at a place
/// in it that a hash of its number picks. Rows at a fixed step would see a column that repeats
/// with a period prime to the step (`i % 2000`, every 49th row) as all different.
fn sample_rows(rows: usize) -> UInt32Array {
    let stretches = rows.min(SAMPLE_ROWS);
    UInt32Array::from_iter_values((0..stretches).map(|k| {
        let (start, end) = (k * rows / stretches, (k + 1) * rows / stretches);
        (start + (splitmix64(k as u64) % (end - start) as u64) as usize) as u32
    }))
}

/// A well-mixed hash of `x` (SplitMix64's finaliser).
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Types the Parquet writer builds a dictionary for, as one leaf column: numbers, times,
/// strings and binaries (not booleans, which it never does, and not nested types, whose leaves
/// it names otherwise).
fn takes_a_dictionary(data_type: &DataType) -> bool {
    data_type.is_primitive() || matches!(data_type, DataType::Utf8 | DataType::LargeUtf8 | DataType::Binary | DataType::LargeBinary)
}

/// Whether the values of `column` at the `sample` rows are nearly all different.
fn looks_unique(column: &dyn Array, sample: &UInt32Array) -> bool {
    let Ok(sampled) = arrow_select::take::take(column, sample, None) else { return false };
    let Ok(converter) = RowConverter::new(vec![SortField::new(sampled.data_type().clone())]) else { return false };
    let Ok(rows) = converter.convert_columns(std::slice::from_ref(&sampled)) else { return false };
    let values: Vec<_> = (0..sampled.len()).filter(|i| sampled.is_valid(*i)).map(|i| rows.row(i)).collect();
    let distinct: HashSet<_> = values.iter().collect();
    values.len() >= MIN_SAMPLED_VALUES && distinct.len() as f64 >= DISTINCT_SHARE * values.len() as f64
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{BooleanArray, Float64Array, Int64Array, StringArray};
    use arrow_schema::{Field, Schema};

    use super::*;

    fn batch(columns: Vec<(&str, Arc<dyn Array>)>) -> RecordBatch {
        let fields: Vec<Field> = columns.iter().map(|(name, column)| Field::new(*name, column.data_type().clone(), true)).collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns.into_iter().map(|(_, column)| column).collect()).unwrap()
    }

    #[test]
    fn columns_of_nearly_all_different_values_are_written_without_a_dictionary() {
        let rows = 50_000;
        let batch = batch(vec![
            ("name", Arc::new(StringArray::from_iter_values((0..rows).map(|i| format!("customer {i}"))))),
            ("amount", Arc::new(Float64Array::from_iter_values((0..rows).map(|i| i as f64 * 0.25)))),
            ("status", Arc::new(StringArray::from_iter_values((0..rows).map(|i| ["new", "active", "churned"][i % 3])))),
            ("score", Arc::new(Int64Array::from_iter_values((0..rows as i64).map(|i| i % 2_000)))),
            ("sku", Arc::new(Int64Array::from_iter_values((0..rows as i64).map(|i| (i * 7_919) % 10_000)))),
            ("active", Arc::new(BooleanArray::from_iter((0..rows).map(|i| Some(i % 2 == 0))))),
            ("mostly_null", Arc::new(Int64Array::from_iter((0..rows as i64).map(|i| (i % 1000 == 0).then_some(i))))),
        ]);
        assert_eq!(columns_without_dictionary(&batch), ["name", "amount"]);
    }

    #[test]
    fn a_small_batch_keeps_every_dictionary() {
        let batch = batch(vec![("name", Arc::new(StringArray::from_iter_values((0..100).map(|i| format!("customer {i}")))))]);
        assert!(columns_without_dictionary(&batch).is_empty());
    }
}
