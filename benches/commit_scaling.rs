//! Does commit time stay flat as commits pile up? Appends N small files one commit at a time
//! and compares the mean commit time near commit 100 with the mean near commit N, in floe's
//! default setup (manifest merging, the newest 100 snapshots kept) and, as baselines measured in
//! the same run, with each bound switched off.
//!
//! `cargo bench --bench commit_scaling` (N defaults to 2000; `FLOE_BENCH_APPENDS` overrides).

use std::time::{Duration, Instant};

use floe_catalog::append::{append, MERGE_ENABLED, RETAIN_SNAPSHOTS};
use floe_catalog::testing::*;
use floe_catalog::RetryPolicy;

/// Commits per measured window: one full manifest-merge cycle (merges run every ~100 appends),
/// so a window's mean is the amortized cost and its median the typical commit.
const WINDOW: usize = 100;

async fn commit_times(appends: usize, merge: bool, retain: usize) -> Vec<Duration> {
    let t = test_catalog().await;
    let table = create_people(&t.catalog, "bench").await;
    let (merge, retain) = (merge.to_string(), retain.to_string());
    let mut table = set_properties(&t.catalog, &table, &[(MERGE_ENABLED, &merge), (RETAIN_SNAPSHOTS, &retain)]).await;
    let mut times = Vec::with_capacity(appends);
    for i in 0..appends {
        let files = write_people(&table, &[i as i64]).await;
        let start = Instant::now();
        table = append(&t.catalog, table.ident(), files, no_props(), &RetryPolicy::no_retry()).await.unwrap();
        times.push(start.elapsed());
    }
    times
}

/// (median, mean) of the WINDOW commits ending at commit `at` (1-based).
fn window(times: &[Duration], at: usize) -> (Duration, Duration) {
    let mut w: Vec<Duration> = times[at.saturating_sub(WINDOW)..at].to_vec();
    w.sort();
    (w[w.len() / 2], w.iter().sum::<Duration>() / w.len() as u32)
}

fn main() {
    // `cargo test` runs benches without `--bench`: a quick smoke run keeps them working.
    let full = std::env::args().any(|a| a == "--bench");
    let default = if full { 2000 } else { 250 };
    let appends: usize = std::env::var("FLOE_BENCH_APPENDS").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    println!("commit_scaling: {appends} appends of one small file each; commits 101-200 vs the last {WINDOW}");
    let configs = [
        ("floe default (merge, keep 100 snapshots)", true, 100),
        ("keep 100 snapshots, no merging", false, 100),
        ("merge, keep every snapshot", true, 0),
        ("no merging, keep every snapshot", false, 0),
    ];
    for (label, merge, retain) in configs {
        let times = runtime.block_on(commit_times(appends, merge, retain));
        let (early_p50, early_mean) = window(&times, 200);
        let (late_p50, late_mean) = window(&times, appends);
        println!(
            "  {label:<42} median {:>7.2?} → {:>7.2?} (ratio {:.2})   mean {:>7.2?} → {:>7.2?} (ratio {:.2})",
            early_p50,
            late_p50,
            late_p50.as_secs_f64() / early_p50.as_secs_f64(),
            early_mean,
            late_mean,
            late_mean.as_secs_f64() / early_mean.as_secs_f64()
        );
    }
}
