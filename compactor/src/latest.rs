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
            [or_null(op_ts.is_valid(i), op_ts.value(i)), or_null(partition.is_valid(i), partition.value(i) as i64), or_null(offset.is_valid(i), offset.value(i))]
        };
        let op_of = |i: usize| match op.is_valid(i).then(|| op.value(i)) {
            None => Op::Missing,
            Some(OP_DELETE) => Op::Delete,
            Some(OP_TRUNCATE) => Op::Truncate,
            Some(_) => Op::Live,
        };
        let rows = keys.iter().enumerate().map(|(i, key)| RowRank { hash: hasher.hash_one(key.as_ref()), rank: rank(i), op: op_of(i) }).collect();
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
            let candidate = Entry { hash: row.hash, rank: row.rank, file: batch.file, pos: batch.first_pos + i, key: [0; INLINE_KEY], key_len: 0, op: row.op };
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
    hasher: DefaultHashBuilder,
    shards: Vec<Shard>,
}

impl LatestIndex {
    pub fn new(hasher: DefaultHashBuilder, shards: Vec<Shard>) -> Self {
        Self { hasher, shards }
    }

    /// The `_op_ts` of the latest truncate seen.
    pub fn latest_truncate(&self) -> Option<i64> {
        self.shards.iter().filter_map(|s| s.latest_truncate).max()
    }

    /// Whether any row had this encoded key.
    pub fn contains(&self, key: &[u8]) -> bool {
        let hash = self.hasher.hash_one(key);
        let shard = &self.shards[shard_of(hash, self.shards.len())];
        shard.entries.find(hash, |e| shard.key(e) == key).is_some()
    }

    pub fn keys(&self) -> usize {
        self.shards.iter().map(|s| s.entries.len()).sum()
    }

    pub fn memory_size(&self) -> usize {
        self.shards.iter().map(Shard::memory_size).sum()
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
