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
//! row per key instead of every change.

use std::mem::size_of;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int32Type, Int64Type, TimestampMicrosecondType};
use arrow::row::Rows;
use hashbrown::{DefaultHashBuilder, HashTable};
use std::hash::BuildHasher;

use floe_catalog::layout::{OP, OP_DELETE, OP_TRUNCATE, OP_TS, SRC_OFFSET, SRC_PARTITION};

use crate::error::{CompactError, Result};

/// The ranking of a row; NULLs are `i64::MAX` so they rank first, as in the SQL definition.
type Rank = [i64; 3];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Live,
    Delete,
    Truncate,
    Missing,
}

/// Where a key's best row so far lives, and what it is.
#[derive(Debug, Clone, Copy)]
struct Entry {
    rank: Rank,
    file: u32,
    pos: u32,
    key_start: usize,
    key_len: u32,
    op: Op,
}

impl Entry {
    /// Equal rankings are broken by location, so the choice is the same on every run.
    fn beats(&self, other: &Entry) -> bool {
        (self.rank, self.file, self.pos) > (other.rank, other.file, other.pos)
    }
}

/// A row chosen to survive: its key's best row.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Winner {
    pub file: u32,
    pub pos: u32,
}

/// Key → location of its latest row, built from batches of key and ranking columns.
#[derive(Default)]
pub(crate) struct LatestIndex {
    hasher: DefaultHashBuilder,
    slots: HashTable<u32>,
    entries: Vec<Entry>,
    /// Every distinct encoded key, back to back.
    arena: Vec<u8>,
    latest_truncate: Option<i64>,
}

/// The columns [`LatestIndex::add`] reads besides the key columns.
pub(crate) const INDEX_COLUMNS: [&str; 4] = [OP, OP_TS, SRC_PARTITION, SRC_OFFSET];

impl LatestIndex {
    /// Adds the rows of `batch` (with [`INDEX_COLUMNS`]), which are positions `first_pos..` of
    /// input file `file`; `keys` are their encoded keys.
    pub fn add(&mut self, file: u32, first_pos: u64, keys: &Rows, batch: &RecordBatch) -> Result<()> {
        let column = |name: &str| batch.column_by_name(name).ok_or_else(|| CompactError::Invalid(format!("batch lacks {name}")));
        let op = column(OP)?.as_string::<i32>();
        let op_ts = column(OP_TS)?.as_primitive::<TimestampMicrosecondType>();
        let partition = column(SRC_PARTITION)?.as_primitive::<Int32Type>();
        let offset = column(SRC_OFFSET)?.as_primitive::<Int64Type>();
        let last_pos = first_pos + batch.num_rows() as u64;
        if last_pos > u32::MAX as u64 {
            return Err(CompactError::Invalid(format!("input file {file} has more than {} rows", u32::MAX)));
        }
        for (i, key) in keys.iter().enumerate() {
            let ranked = |v: Option<i64>| v.unwrap_or(i64::MAX);
            let rank = [ranked(op_ts.is_valid(i).then(|| op_ts.value(i))), ranked(partition.is_valid(i).then(|| partition.value(i) as i64)), ranked(offset.is_valid(i).then(|| offset.value(i)))];
            let op = match op.is_valid(i).then(|| op.value(i)) {
                None => Op::Missing,
                Some(OP_DELETE) => Op::Delete,
                Some(OP_TRUNCATE) => Op::Truncate,
                Some(_) => Op::Live,
            };
            if op == Op::Truncate && op_ts.is_valid(i) {
                self.latest_truncate = self.latest_truncate.max(Some(op_ts.value(i)));
            }
            let row = Entry { rank, file, pos: (first_pos + i as u64) as u32, key_start: 0, key_len: 0, op };
            self.upsert(key.as_ref(), row);
        }
        Ok(())
    }

    fn upsert(&mut self, key: &[u8], mut row: Entry) {
        let hash = self.hasher.hash_one(key);
        let (entries, arena) = (&mut self.entries, &self.arena);
        let found = self.slots.find_mut(hash, |&slot| {
            let e = &entries[slot as usize];
            &arena[e.key_start..e.key_start + e.key_len as usize] == key
        });
        match found {
            Some(&mut slot) => {
                let best = &mut entries[slot as usize];
                if row.beats(best) {
                    (row.key_start, row.key_len) = (best.key_start, best.key_len);
                    *best = row;
                }
            }
            None => {
                (row.key_start, row.key_len) = (self.arena.len(), key.len() as u32);
                self.arena.extend_from_slice(key);
                let slot = self.entries.len() as u32;
                self.entries.push(row);
                let (entries, arena, hasher) = (&self.entries, &self.arena, &self.hasher);
                self.slots.insert_unique(hash, slot, |&s| {
                    let e = &entries[s as usize];
                    hasher.hash_one(&arena[e.key_start..e.key_start + e.key_len as usize])
                });
            }
        }
    }

    /// The `_op_ts` of the latest truncate seen.
    pub fn latest_truncate(&self) -> Option<i64> {
        self.latest_truncate
    }

    /// Whether any row had this encoded key.
    pub fn contains(&self, key: &[u8]) -> bool {
        let hash = self.hasher.hash_one(key);
        self.slots.find(hash, |&slot| self.key(&self.entries[slot as usize]) == key).is_some()
    }

    pub fn keys(&self) -> usize {
        self.entries.len()
    }

    /// Bytes held, to keep within a memory limit.
    pub fn memory_size(&self) -> usize {
        self.entries.capacity() * size_of::<Entry>() + self.arena.capacity() + self.slots.capacity() * (size_of::<u32>() + 1)
    }

    fn key(&self, e: &Entry) -> &[u8] {
        &self.arena[e.key_start..e.key_start + e.key_len as usize]
    }

    /// The rows that survive, in key order. Tombstones newer than `keep_tombstones_after`
    /// (micros) survive too.
    pub fn winners(&self, keep_tombstones_after: Option<i64>) -> Vec<Winner> {
        let not_before = self.latest_truncate.unwrap_or(0);
        let survives = |e: &&Entry| {
            let op_ts = (e.rank[0] != i64::MAX).then_some(e.rank[0]);
            let recent_tombstone = matches!((op_ts, keep_tombstones_after), (Some(ts), Some(after)) if ts > after);
            (e.op == Op::Live || recent_tombstone) && op_ts.is_some_and(|ts| ts >= not_before)
        };
        let mut kept: Vec<&Entry> = self.entries.iter().filter(survives).collect();
        kept.sort_unstable_by(|a, b| self.key(a).cmp(self.key(b)));
        kept.into_iter().map(|e| Winner { file: e.file, pos: e.pos }).collect()
    }
}
