//! Finding each key's latest record by hashing rather than sorting the table.
//!
//! A [`LatestIndex`] reads only the key and ranking columns of every input row and keeps, per
//! key, where its greatest-ranked row lives (file, position). Ranking, tombstone and truncate
//! rules are those of `floe_catalog::layout::latest_records_sql`, restated here row by row
//! (the property tests hold both to the same results):
//! - per key the greatest [`RANKING`](floe_catalog::layout::RANKING) wins, a NULL ranking value
//!   counting as greatest (SQL's `DESC NULLS FIRST`);
//! - the winner is dropped when it is a delete, a truncate or has no `_op`, unless it is newer
//!   than the tombstone horizon;
//! - the winner is dropped when older than the latest truncate (or before the epoch).
//!
//! Only the winners are then read in full and sorted by key ([`crate::gather`]): that sorts one
//! row per key instead of every change. The index is split into shards by key hash, so each
//! core updates its own shard.

use std::hash::BuildHasher;
use std::mem::size_of;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int32Type, Int64Type, TimestampMicrosecondType};
use arrow::row::Rows;
use hashbrown::{DefaultHashBuilder, HashTable};

use floe_catalog::layout::{OP, OP_DELETE, OP_TRUNCATE, OP_TS, SRC_OFFSET, SRC_PARTITION};

use crate::error::{CompactError, Result};

/// The columns a [`KeyBatch`] reads besides the key columns.
pub(crate) const INDEX_COLUMNS: [&str; 4] = [OP, OP_TS, SRC_PARTITION, SRC_OFFSET];

/// The ranking of a row; NULLs are `i64::MAX` so they rank first, as in the SQL definition.
type Rank = [i64; 3];
const NULL_RANK: i64 = i64::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Live,
    Delete,
    Truncate,
    Missing,
}

/// One input row as the index sees it.
#[derive(Debug, Clone, Copy)]
struct RowRank {
    hash: u64,
    rank: Rank,
    op: Op,
}

/// Key and ranking columns of consecutive rows of one input file, prepared by a reader so the
/// shard owners only look up and compare.
pub(crate) struct KeyBatch {
    file: u32,
    first_pos: u32,
    keys: Rows,
    rows: Vec<RowRank>,
}

impl KeyBatch {
    /// Rows `first_pos..` of input file `file`: `batch` has the [`INDEX_COLUMNS`], `keys` are
    /// its encoded keys.
    pub fn new(file: u32, first_pos: u64, keys: Rows, batch: &RecordBatch, hasher: &DefaultHashBuilder) -> Result<Self> {
        if first_pos + batch.num_rows() as u64 > u32::MAX as u64 {
            return Err(CompactError::Invalid(format!("input file {file} has more than {} rows", u32::MAX)));
        }
        let column = |name: &str| batch.column_by_name(name).ok_or_else(|| CompactError::Invalid(format!("batch lacks {name}")));
        let op = column(OP)?.as_string::<i32>();
        let op_ts = column(OP_TS)?.as_primitive::<TimestampMicrosecondType>();
        let partition = column(SRC_PARTITION)?.as_primitive::<Int32Type>();
        let offset = column(SRC_OFFSET)?.as_primitive::<Int64Type>();
        let rank = |i: usize| {
            let or_null = |valid: bool, v: i64| if valid { v } else { NULL_RANK };
            [
                or_null(op_ts.is_valid(i), op_ts.value(i)),
                or_null(partition.is_valid(i), partition.value(i) as i64),
                or_null(offset.is_valid(i), offset.value(i)),
            ]
        };
        let op_of = |i: usize| match op.is_valid(i).then(|| op.value(i)) {
            None => Op::Missing,
            Some(OP_DELETE) => Op::Delete,
            Some(OP_TRUNCATE) => Op::Truncate,
            Some(_) => Op::Live,
        };
        let rows =
            keys.iter().enumerate().map(|(i, key)| RowRank { hash: hasher.hash_one(key.as_ref()), rank: rank(i), op: op_of(i) }).collect();
        Ok(Self { file, first_pos: first_pos as u32, keys, rows })
    }

    /// Row indices of this batch per shard, of `shards`.
    pub fn split(&self, shards: usize) -> Vec<Vec<u32>> {
        let mut split = vec![Vec::with_capacity(self.rows.len() / shards + 1); shards];
        for (i, row) in self.rows.iter().enumerate() {
            split[shard_of(row.hash, shards)].push(i as u32);
        }
        split
    }
}

/// Bits 32.. pick the shard: hashbrown uses the low bits for buckets and the top 7 as tags.
fn shard_of(hash: u64, shards: usize) -> usize {
    ((hash >> 32) as usize) % shards
}

/// Keys up to this many encoded bytes live inside the entry; longer ones in the shard's arena.
const INLINE_KEY: usize = 16;

/// A key's best row so far.
#[derive(Debug, Clone, Copy)]
struct Entry {
    hash: u64,
    rank: Rank,
    file: u32,
    pos: u32,
    /// The key bytes, or for a long key its offset in the arena (first 8 bytes).
    key: [u8; INLINE_KEY],
    key_len: u32,
    op: Op,
}

impl Entry {
    /// Equal rankings are broken by location, so the choice is the same on every run.
    fn beats(&self, other: &Entry) -> bool {
        (self.rank, self.file, self.pos) > (other.rank, other.file, other.pos)
    }
}

/// One shard of the index: the keys whose hash falls to it.
#[derive(Default)]
pub(crate) struct Shard {
    entries: HashTable<Entry>,
    /// Keys longer than [`INLINE_KEY`], back to back.
    arena: Vec<u8>,
    latest_truncate: Option<i64>,
}

impl Shard {
    pub fn with_capacity(keys: usize) -> Self {
        Self { entries: HashTable::with_capacity(keys), ..Default::default() }
    }

    fn key<'a>(&'a self, e: &'a Entry) -> &'a [u8] {
        key_bytes(&self.arena, e)
    }

    /// Adds the rows `indices` of `batch`.
    pub fn add(&mut self, batch: &KeyBatch, indices: &[u32]) {
        for &i in indices {
            let row = batch.rows[i as usize];
            if row.op == Op::Truncate && row.rank[0] != NULL_RANK {
                self.latest_truncate = self.latest_truncate.max(Some(row.rank[0]));
            }
            let candidate = Entry {
                hash: row.hash,
                rank: row.rank,
                file: batch.file,
                pos: batch.first_pos + i,
                key: [0; INLINE_KEY],
                key_len: 0,
                op: row.op,
            };
            self.upsert(batch.keys.row(i as usize).as_ref(), candidate);
        }
    }

    fn upsert(&mut self, key: &[u8], mut candidate: Entry) {
        let arena = &self.arena;
        match self.entries.find_mut(candidate.hash, |e| key_bytes(arena, e) == key) {
            Some(best) => {
                if candidate.beats(best) {
                    (candidate.key, candidate.key_len) = (best.key, best.key_len);
                    *best = candidate;
                }
            }
            None => {
                candidate.key_len = key.len() as u32;
                if key.len() <= INLINE_KEY {
                    candidate.key[..key.len()].copy_from_slice(key);
                } else {
                    candidate.key[..8].copy_from_slice(&(self.arena.len() as u64).to_le_bytes());
                    self.arena.extend_from_slice(key);
                }
                self.entries.insert_unique(candidate.hash, candidate, |e| e.hash);
            }
        }
    }

    /// Bytes held, to keep within a memory limit.
    pub fn memory_size(&self) -> usize {
        self.entries.capacity() * (size_of::<Entry>() + 1) + self.arena.capacity()
    }
}

fn key_bytes<'a>(arena: &'a [u8], e: &'a Entry) -> &'a [u8] {
    let len = e.key_len as usize;
    if len <= INLINE_KEY {
        &e.key[..len]
    } else {
        let start = u64::from_le_bytes(e.key[..8].try_into().expect("8 bytes")) as usize;
        &arena[start..start + len]
    }
}

/// A row chosen to survive: its key's latest row.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Winner {
    pub file: u32,
    pub pos: u32,
}

/// Key → location of its latest row, over all shards.
pub(crate) struct LatestIndex {
    shards: Vec<Shard>,
}

impl LatestIndex {
    pub fn new(shards: Vec<Shard>) -> Self {
        Self { shards }
    }

    /// The `_op_ts` of the latest truncate seen.
    pub fn latest_truncate(&self) -> Option<i64> {
        self.shards.iter().filter_map(|s| s.latest_truncate).max()
    }

    pub fn keys(&self) -> usize {
        self.shards.iter().map(|s| s.entries.len()).sum()
    }

    pub fn memory_size(&self) -> usize {
        self.shards.iter().map(Shard::memory_size).sum()
    }

    /// Every key seen, encoded, in key order.
    pub fn sorted_keys(&self) -> Vec<Vec<u8>> {
        let mut keys: Vec<Vec<u8>> = self.shards.iter().flat_map(|s| s.entries.iter().map(move |e| s.key(e).to_vec())).collect();
        keys.sort_unstable();
        keys
    }

    /// The rows that survive, in key order. Tombstones newer than `keep_tombstones_after`
    /// (micros) survive too.
    pub fn winners(&self, keep_tombstones_after: Option<i64>) -> Vec<Winner> {
        let not_before = self.latest_truncate().unwrap_or(0);
        let survives = |e: &Entry| {
            let op_ts = (e.rank[0] != NULL_RANK).then_some(e.rank[0]);
            let recent_tombstone = matches!((op_ts, keep_tombstones_after), (Some(ts), Some(after)) if ts > after);
            (e.op == Op::Live || recent_tombstone) && op_ts.is_some_and(|ts| ts >= not_before)
        };
        let mut kept: Vec<(&[u8], Winner)> = self
            .shards
            .iter()
            .flat_map(|s| s.entries.iter().filter(|e| survives(e)).map(move |e| (s.key(e), Winner { file: e.file, pos: e.pos })))
            .collect();
        kept.sort_unstable_by(|a, b| a.0.cmp(b.0));
        kept.into_iter().map(|(_, w)| w).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int32Array, Int64Array, StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::DataType;
    use arrow::row::{RowConverter, SortField};

    use super::*;

    /// (key, op, op_ts, offset); partition is 0.
    type Row<'a> = (&'a str, Option<&'a str>, Option<i64>, i64);

    /// An index over `files`, spread over two shards as the compactor does.
    fn index(files: &[&[Row]]) -> LatestIndex {
        let hasher = DefaultHashBuilder::default();
        let converter = RowConverter::new(vec![SortField::new(DataType::Utf8)]).unwrap();
        let mut shards = vec![Shard::default(), Shard::default()];
        for (file, rows) in files.iter().enumerate() {
            let keys: ArrayRef = Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0)));
            let columns: Vec<(&str, ArrayRef)> = vec![
                (OP, Arc::new(StringArray::from_iter(rows.iter().map(|r| r.1)))),
                (OP_TS, Arc::new(TimestampMicrosecondArray::from_iter(rows.iter().map(|r| r.2)))),
                (SRC_PARTITION, Arc::new(Int32Array::from_iter_values(rows.iter().map(|_| 0)))),
                (SRC_OFFSET, Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.3)))),
            ];
            let batch = RecordBatch::try_from_iter(columns).unwrap();
            let encoded = converter.convert_columns(&[keys]).unwrap();
            let key_batch = KeyBatch::new(file as u32, 0, encoded, &batch, &hasher).unwrap();
            for (shard, indices) in shards.iter_mut().zip(key_batch.split(2)) {
                shard.add(&key_batch, &indices);
            }
        }
        LatestIndex::new(shards)
    }

    fn locations(winners: &[Winner]) -> Vec<(u32, u32)> {
        winners.iter().map(|w| (w.file, w.pos)).collect()
    }

    const LONG: &str = "a key much longer than sixteen bytes, kept in the arena";

    #[test]
    fn each_keys_latest_row_wins_in_key_order_short_and_long_keys() {
        let first: &[Row] = &[("b", Some("c"), Some(10), 1), (LONG, Some("c"), Some(11), 2), ("a", Some("c"), Some(12), 3)];
        let second: &[Row] = &[(LONG, Some("u"), Some(20), 4), ("b", Some("u"), Some(5), 5), ("c", Some("c"), Some(21), 6)];
        let index = index(&[first, second]);
        assert_eq!(index.keys(), 4);
        // "a" (file 0), LONG (file 1, newer), "b" (file 0: the file-1 row is older), "c".
        assert_eq!(locations(&index.winners(None)), vec![(0, 2), (1, 0), (0, 0), (1, 2)]);
        assert_eq!(index.sorted_keys().len(), 4);
    }

    #[test]
    fn equal_op_ts_is_decided_by_source_offset() {
        let rows: &[Row] = &[("k", Some("u"), Some(7), 9), ("k", Some("u"), Some(7), 3)];
        assert_eq!(locations(&index(&[rows]).winners(None)), vec![(0, 0)]);
    }

    #[test]
    fn deleted_keys_drop_unless_the_delete_is_newer_than_the_tombstone_horizon() {
        let rows: &[Row] = &[
            ("old", Some("c"), Some(1), 1),
            ("old", Some("d"), Some(2), 2),
            ("new", Some("c"), Some(3), 3),
            ("new", Some("d"), Some(9), 4),
        ];
        let index = index(&[rows]);
        assert!(index.winners(None).is_empty());
        assert_eq!(locations(&index.winners(Some(5))), vec![(0, 3)], "only the delete after the horizon is kept");
    }

    #[test]
    fn rows_older_than_the_latest_truncate_are_dropped() {
        let rows: &[Row] =
            &[("a", Some("c"), Some(1), 1), ("", Some("t"), Some(5), 2), ("b", Some("c"), Some(6), 3), ("", Some("t"), Some(4), 4)];
        let index = index(&[rows]);
        assert_eq!(index.latest_truncate(), Some(5));
        assert_eq!(locations(&index.winners(None)), vec![(0, 2)]);
    }

    #[test]
    fn a_null_op_ts_ranks_first_and_drops_its_key_like_the_sql_definition() {
        let rows: &[Row] = &[("k", Some("u"), Some(7), 1), ("k", Some("u"), None, 2), ("j", None, Some(3), 3)];
        assert!(
            index(&[rows]).winners(None).is_empty(),
            "NULL _op_ts wins (DESC NULLS FIRST), then fails the truncate filter; NULL _op is no live row"
        );
    }
}

/// The index against the SQL definition it restates, on random change streams.
#[cfg(test)]
mod same_as_sql {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int32Array, Int64Array, StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::DataType;
    use arrow::row::{RowConverter, SortField};
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;
    use floe_catalog::iceberg::spec::{NestedField, PrimitiveType, Schema, Type};
    use floe_catalog::layout::{latest_records_sql, metadata_fields, SOURCE_TS};

    use super::*;

    /// A small deterministic generator (xorshift), so failures replay.
    struct Random(u64);
    impl Random {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    /// Columns of a random file: key, `_op`, `_op_ts`, `_src_partition`, `_src_offset`.
    type Columns<'a> = (Vec<String>, Vec<Option<&'a str>>, Vec<Option<i64>>, Vec<i32>, Vec<i64>);

    /// One file of random rows; `_src_offset` numbers every row of the stream uniquely.
    fn random_file(random: &mut Random, rows: usize, next_offset: &mut i64) -> RecordBatch {
        let ops = [Some("c"), Some("u"), Some("u"), Some("d"), Some("r"), Some("t"), None];
        let mut columns: Columns = Default::default();
        for _ in 0..rows {
            columns.0.push(format!("key-{}", random.below(12)).repeat(1 + random.below(4) as usize * 3));
            columns.1.push(ops[random.below(ops.len() as u64) as usize]);
            columns.2.push((random.below(20) > 0).then(|| random.below(30) as i64 - 2));
            columns.3.push(random.below(2) as i32);
            columns.4.push(*next_offset);
            *next_offset += 1;
        }
        let ts = |v: Vec<Option<i64>>| Arc::new(TimestampMicrosecondArray::from(v).with_timezone("+00:00")) as ArrayRef;
        RecordBatch::try_from_iter_with_nullable(vec![
            ("id", Arc::new(StringArray::from(columns.0)) as ArrayRef, false),
            (OP, Arc::new(StringArray::from(columns.1)), true),
            (OP_TS, ts(columns.2.clone()), true),
            (SOURCE_TS, ts(columns.2), true),
            (SRC_PARTITION, Arc::new(Int32Array::from(columns.3)), false),
            (SRC_OFFSET, Arc::new(Int64Array::from(columns.4)), false),
        ])
        .unwrap()
    }

    fn offsets_by_index(files: &[RecordBatch], keep_after: Option<i64>) -> BTreeSet<i64> {
        let hasher = DefaultHashBuilder::default();
        let converter = RowConverter::new(vec![SortField::new(DataType::Utf8)]).unwrap();
        let mut shards = vec![Shard::default(), Shard::default(), Shard::default()];
        for (file, batch) in files.iter().enumerate() {
            let keys = converter.convert_columns(&[batch.column(0).clone()]).unwrap();
            let key_batch = KeyBatch::new(file as u32, 0, keys, batch, &hasher).unwrap();
            for (shard, indices) in shards.iter_mut().zip(key_batch.split(3)) {
                shard.add(&key_batch, &indices);
            }
        }
        let offset = |w: &Winner| files[w.file as usize].column(5).as_primitive::<Int64Type>().value(w.pos as usize);
        LatestIndex::new(shards).winners(keep_after).iter().map(offset).collect()
    }

    async fn offsets_by_sql(files: &[RecordBatch], keep_after: Option<i64>) -> BTreeSet<i64> {
        let mut fields = vec![Arc::new(NestedField::required(1, "id", Type::Primitive(PrimitiveType::String)))];
        fields.extend(metadata_fields(&mut 2));
        let schema = Schema::builder().with_fields(fields).with_identifier_field_ids(vec![1]).build().unwrap();
        let ctx = SessionContext::new();
        let table = MemTable::try_new(files[0].schema(), vec![files.to_vec()]).unwrap();
        ctx.register_table("t", Arc::new(table)).unwrap();
        let sql = latest_records_sql("t", &schema, keep_after, None).unwrap();
        let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
        batches.iter().flat_map(|b| b.column_by_name(SRC_OFFSET).unwrap().as_primitive::<Int64Type>().values().to_vec()).collect()
    }

    #[tokio::test]
    async fn the_index_keeps_exactly_the_rows_the_sql_definition_keeps() {
        for seed in 1..=40u64 {
            let mut random = Random(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut next_offset = 0;
            let files: Vec<RecordBatch> = (0..3)
                .map(|_| {
                    let rows = 1 + random.below(40) as usize;
                    random_file(&mut random, rows, &mut next_offset)
                })
                .collect();
            for keep_after in [None, Some(15)] {
                let (by_index, by_sql) = (offsets_by_index(&files, keep_after), offsets_by_sql(&files, keep_after).await);
                assert_eq!(by_index, by_sql, "seed {seed}, tombstones kept after {keep_after:?}");
            }
        }
    }
}
