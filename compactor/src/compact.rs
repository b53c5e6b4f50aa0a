//! One compaction of one table: plan (full or incremental), rewrite, commit a `replace` snapshot
//! that removes exactly the files read and adds the new ones (and position deletes) and, in the
//! same commit, expires the snapshots past their retention; then delete what they alone
//! referenced. Appends that land during the rewrite survive: the replace is rebuilt on the
//! current snapshot and only names the files it read. A second compaction of the same files
//! finds them gone and aborts cleanly.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use floe_catalog::iceberg::spec::DataContentType;
use floe_catalog::iceberg::TableIdent;
use floe_catalog::iceberg::TableUpdate;
use floe_catalog::layout::{committed_max_op_ts, committed_positions, paths, SUMMARY_MAX_OP_TS, SUMMARY_POSITIONS};
use floe_catalog::maintenance::{expirable_snapshots, list_table_files, remove_unreferenced_listed};
use floe_catalog::replace::{prepare_replace, FileRewrite};
use floe_catalog::writer::DEFAULT_TARGET_FILE_SIZE;
use floe_catalog::{commit_with_retry, Catalog, FloeTable, RetryPolicy};
use serde::Serialize;
use tokio_util::task::AbortOnDropHandle;
use tracing::{info, info_span, Instrument};

use crate::error::{CompactError, Result};
use crate::execute::{rewrite_full, RewriteOptions, RewriteOutput};
use crate::incremental::rewrite_incremental;
use crate::plan::{plan, CompactionKind, CompactionPlan, PlanPolicy, Skip, SUMMARY_COMPACTION};

#[derive(Debug, Clone)]
pub struct CompactOptions {
    pub target_file_size: usize,
    pub memory_limit: usize,
    /// How long delete and truncate rows are kept after they happen.
    pub tombstone_retention: Duration,
    /// Snapshots older than this are expired after a compaction.
    pub snapshot_retention: Duration,
    /// Unreferenced files younger than this are left alone (a writer may be about to commit them).
    pub orphan_grace: Duration,
    pub dry_run: bool,
    /// When to rewrite everything instead of only what changed.
    pub policy: PlanPolicy,
}

impl Default for CompactOptions {
    fn default() -> Self {
        Self {
            target_file_size: DEFAULT_TARGET_FILE_SIZE,
            memory_limit: default_memory_limit(),
            tombstone_retention: Duration::ZERO,
            snapshot_retention: Duration::from_secs(24 * 3600),
            orphan_grace: Duration::from_secs(3600),
            dry_run: false,
            policy: PlanPolicy::default(),
        }
    }
}

/// A quarter of physical memory, at least 256 MiB.
pub fn default_memory_limit() -> usize {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find(|l| l.starts_with("MemTotal:"))?.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map(|kib| kib * 1024)
        .unwrap_or(4 << 30);
    (total / 4).max(256 << 20)
}

/// What one compaction did (or, for a dry run, would do).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct CompactionReport {
    pub table: String,
    pub skipped: Option<String>,
    pub dry_run: bool,
    pub kind: Option<CompactionKind>,
    pub base_snapshot_id: Option<i64>,
    pub snapshot_id: Option<i64>,
    pub rows_in: u64,
    pub rows_out: u64,
    /// Compacted rows an incremental compaction retired with position deletes.
    pub rows_superseded: u64,
    /// The table's latest rows did not fit in the memory limit, so DataFusion's spilling plan
    /// rewrote it instead of the in-memory one.
    pub spilled: bool,
    pub files_in: u64,
    pub files_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub duration_ms: u64,
    pub expired_snapshots: u64,
    pub files_deleted: u64,
}

impl CompactionReport {
    fn describe_plan(&mut self, plan: &CompactionPlan) {
        self.kind = Some(plan.kind);
        self.base_snapshot_id = Some(plan.base_snapshot_id);
        self.rows_in = plan.rows_in();
        self.files_in = plan.input().len() as u64;
        self.bytes_in = plan.bytes_in();
    }
}

pub async fn compact_table(catalog: &dyn Catalog, ident: &TableIdent, options: &CompactOptions) -> Result<CompactionReport> {
    let span = info_span!("compact", table = %ident);
    let result = compact_inner(catalog, ident, options).instrument(span).await;
    record_metrics(ident, &result);
    result
}

/// Prometheus-style metrics, recorded through the `metrics` facade (exported by `floe serve`).
fn record_metrics(ident: &TableIdent, result: &Result<CompactionReport>) {
    let table = ident.to_string();
    let outcome = match result {
        Ok(r) if r.skipped.is_some() => "skipped",
        Ok(r) if r.dry_run => "dry_run",
        Ok(_) => "compacted",
        Err(_) => "failed",
    };
    metrics::counter!("floe_compactions_total", "table" => table.clone(), "outcome" => outcome).increment(1);
    if let Some(r) = result.as_ref().ok().filter(|r| r.snapshot_id.is_some()) {
        metrics::histogram!("floe_compaction_duration_seconds", "table" => table.clone()).record(r.duration_ms as f64 / 1000.0);
        metrics::counter!("floe_compaction_rows_in_total", "table" => table.clone()).increment(r.rows_in);
        metrics::counter!("floe_compaction_rows_out_total", "table" => table.clone()).increment(r.rows_out);
        metrics::counter!("floe_compaction_bytes_in_total", "table" => table.clone()).increment(r.bytes_in);
        metrics::counter!("floe_compaction_bytes_out_total", "table" => table).increment(r.bytes_out);
    }
}

async fn compact_inner(catalog: &dyn Catalog, ident: &TableIdent, options: &CompactOptions) -> Result<CompactionReport> {
    let started = Instant::now();
    let table = catalog.load_table(ident).await?;
    let mut report = CompactionReport { table: ident.to_string(), dry_run: options.dry_run, ..Default::default() };
    let plan = match plan(&table, &options.policy).await? {
        Ok(plan) => plan,
        Err(skip) => {
            report.skipped = Some(match skip {
                Skip::Empty => "table is empty".into(),
                Skip::NothingNew => "nothing new since the last compaction".into(),
            });
            return Ok(report);
        }
    };
    info!(elapsed_ms = started.elapsed().as_millis() as u64, kind = plan.kind.as_str(), "planned");
    report.describe_plan(&plan);
    if options.dry_run {
        return Ok(report);
    }

    // The cleanup's listing, when snapshots will expire, runs while the rewrite computes: on
    // object storage a LIST of the table's objects takes a round trip per thousand. The task
    // stops when it is not wanted (the compaction failed, or expired nothing).
    let listing = match will_expire(&table, options) {
        true => Some(AbortOnDropHandle::new(tokio::spawn(list_table_files(&table)?))),
        false => None,
    };
    let (plan, output) = rewrite(&table, plan, &rewrite_options(options)).await?;
    report.describe_plan(&plan);
    info!(elapsed_ms = started.elapsed().as_millis() as u64, rows_out = output.rows_out, superseded = output.rows_superseded, "rewritten");
    report.rows_out = output.rows_out;
    report.rows_superseded = output.rows_superseded;
    report.spilled = output.spilled;
    let new_data = output.add.iter().filter(|f| f.content_type() == DataContentType::Data);
    report.files_out = new_data.clone().count() as u64;
    report.bytes_out = new_data.map(|f| f.file_size_in_bytes()).sum();
    report.duration_ms = started.elapsed().as_millis() as u64;

    let now = Utc::now();
    let expire_before = (now - options.snapshot_retention).timestamp_millis();
    let (table, expired) = commit(catalog, &table, &plan, output, compaction_summary(&report), expire_before).await?;
    report.snapshot_id = table.current_snapshot_id();
    report.expired_snapshots = expired as u64;
    info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        rows_in = report.rows_in,
        rows_out = report.rows_out,
        files_in = report.files_in,
        files_out = report.files_out,
        expired,
        "committed"
    );
    // Files only become unreferenced when snapshots expire; orphans a crashed writer left
    // behind wait for the next expiry. Skipping the sweep otherwise spares an incremental
    // compaction reading every retained snapshot's manifests.
    if expired > 0 {
        let listed = match listing {
            Some(listing) => listing.await.map_err(|e| CompactError::Invalid(format!("listing the table's files: {e}")))??,
            None => list_table_files(&table)?.await?,
        };
        let cleanup = remove_unreferenced_listed(&table, now - options.orphan_grace, listed).await?;
        report.files_deleted = cleanup.files_deleted as u64;
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// Whether the compaction's commit will expire snapshots: one is older than the retention
/// (the current one, too, which the commit replaces). A wrong guess costs a listing, or lists
/// after the commit instead of during the rewrite.
fn will_expire(table: &FloeTable, options: &CompactOptions) -> bool {
    let expire_before = (Utc::now() - options.snapshot_retention).timestamp_millis();
    expirable_snapshots(table).any(|snapshot| snapshot.timestamp_ms() < expire_before)
}

fn rewrite_options(options: &CompactOptions) -> RewriteOptions {
    let keep_after = Utc::now().timestamp_micros() - options.tombstone_retention.as_micros() as i64;
    RewriteOptions {
        memory_limit: options.memory_limit,
        target_file_size: options.target_file_size,
        keep_tombstones_after: (!options.tombstone_retention.is_zero()).then_some(keep_after),
    }
}

/// Runs the planned rewrite. An incremental plan whose delta holds a truncate, or does not fit
/// in memory, becomes a full one; the plan actually carried out is returned with the output.
async fn rewrite(table: &FloeTable, plan: CompactionPlan, options: &RewriteOptions) -> Result<(CompactionPlan, RewriteOutput)> {
    if plan.kind == CompactionKind::Incremental {
        if let Some(output) = rewrite_incremental(table, &plan.files, options).await? {
            return Ok((plan, output));
        }
        info!("the delta holds a truncate, or its index does not fit in memory: rewriting in full");
    }
    let plan = plan.into_full();
    let output = rewrite_full(table, paths(plan.input()), options).await?;
    Ok((plan, output))
}

/// Commits the rewrite as one `replace` snapshot on whatever the table's current snapshot is
/// by then, carrying the sink's progress forward. The same commit expires the snapshots made
/// before `expire_before` (ms since the epoch): only the new one is sure to be kept. Returns
/// the table and how many snapshots were expired.
async fn commit(
    catalog: &dyn Catalog,
    base: &FloeTable,
    plan: &CompactionPlan,
    output: RewriteOutput,
    summary: HashMap<String, String>,
    expire_before: i64,
) -> Result<(FloeTable, usize)> {
    let rewrite = FileRewrite { remove: plan.remove(), add: output.add, require_live: output.require_live };
    let expired = std::sync::atomic::AtomicUsize::new(0);
    let committed = commit_with_retry(catalog, base.ident(), &RetryPolicy::default(), |current| {
        let (rewrite, mut properties, expired) = (&rewrite, summary.clone(), &expired);
        async move {
            properties.insert(SUMMARY_POSITIONS.into(), serde_json::to_string(&committed_positions(&current)).expect("serializes"));
            if let Some(ts) = committed_max_op_ts(&current) {
                properties.insert(SUMMARY_MAX_OP_TS.into(), ts.to_string());
            }
            let mut change = prepare_replace(&current, rewrite, properties).await?;
            let expired_ones = expirable_snapshots(&current).filter(|s| s.timestamp_ms() < expire_before);
            let snapshot_ids: Vec<i64> = expired_ones.map(|s| s.snapshot_id()).collect();
            expired.store(snapshot_ids.len(), std::sync::atomic::Ordering::Relaxed);
            if !snapshot_ids.is_empty() {
                change.updates.push(TableUpdate::RemoveSnapshots { snapshot_ids });
            }
            Ok(Some(change))
        }
    })
    .await;
    match committed {
        Ok(table) => Ok((table.expect("replace always commits"), expired.into_inner())),
        Err(e) => {
            // What we wrote is removed now rather than left for cleanup, unless a commit whose
            // answer was lost did land: then the table references it.
            if !references_any(catalog, base.ident(), &rewrite.add).await {
                for file in &rewrite.add {
                    let _ = base.file_io().delete(file.file_path()).await;
                }
            }
            Err(e.into())
        }
    }
}

/// Whether the table now references any of `files`; when that cannot be told, it may.
async fn references_any(catalog: &dyn Catalog, ident: &TableIdent, files: &[floe_catalog::iceberg::spec::DataFile]) -> bool {
    let live = match catalog.load_table(ident).await {
        Ok(table) => table.live_files().await,
        Err(e) => Err(e),
    };
    match live {
        Ok(live) => {
            let live = paths(&live);
            files.iter().any(|f| live.contains(f.file_path()))
        }
        Err(_) => true,
    }
}

fn compaction_summary(report: &CompactionReport) -> HashMap<String, String> {
    let mut props = HashMap::from([
        (SUMMARY_COMPACTION.to_string(), report.kind.map(CompactionKind::as_str).unwrap_or("full").to_string()),
        ("floe.compaction.rows-superseded".into(), report.rows_superseded.to_string()),
        ("floe.compaction.rows-in".into(), report.rows_in.to_string()),
        ("floe.compaction.rows-out".into(), report.rows_out.to_string()),
        ("floe.compaction.files-in".into(), report.files_in.to_string()),
        ("floe.compaction.files-out".into(), report.files_out.to_string()),
        ("floe.compaction.bytes-in".into(), report.bytes_in.to_string()),
        ("floe.compaction.bytes-out".into(), report.bytes_out.to_string()),
        ("floe.compaction.duration-ms".into(), report.duration_ms.to_string()),
    ]);
    if let Some(base) = report.base_snapshot_id {
        props.insert("floe.compaction.base-snapshot-id".into(), base.to_string());
    }
    props
}
