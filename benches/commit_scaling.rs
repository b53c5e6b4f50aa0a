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

const WINDOW: usize = 50;

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

fn mean(times: &[Duration]) -> Duration {
    times.iter().sum::<Duration>() / times.len() as u32
}

/// Mean commit time over the WINDOW commits ending at commit `at` (1-based).
fn around(times: &[Duration], at: usize) -> Duration {
    mean(&times[at.saturating_sub(WINDOW)..at])
}

fn main() {
    // `cargo test` runs benches without `--bench`: a quick smoke run keeps them working.
    let full = std::env::args().any(|a| a == "--bench");
    let default = if full { 2000 } else { 120 };
    let appends: usize = std::env::var("FLOE_BENCH_APPENDS").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    println!("commit_scaling: {appends} appends of one small file each, mean of {WINDOW} commits per point");
    for (label, merge, retain) in [("floe default (merge, keep 100 snapshots)", true, 100), ("keep every snapshot", true, 0), ("no merging, keep every snapshot", false, 0)] {
        let times = runtime.block_on(commit_times(appends, merge, retain));
        let early = around(&times, 100);
        let late = around(&times, appends);
        println!(
            "  {label:<42} at 100: {:>8.2?}  at {appends}: {:>8.2?}  ratio {:.2}",
            early,
            late,
            late.as_secs_f64() / early.as_secs_f64()
        );
    }
}
