//! Does commit time stay flat as commits pile up? Appends N small files one commit at a time
//! and compares the mean commit time near commit 100 with the mean near commit N, with
//! manifest merging on (floe's default) and, as the baseline measured in the same run, off.
//!
//! `cargo bench --bench commit_scaling` (N defaults to 2000; `FLOE_BENCH_APPENDS` overrides).

use std::time::{Duration, Instant};

use floe_catalog::append::{append, MERGE_ENABLED};
use floe_catalog::iceberg::TableUpdate;
use floe_catalog::testing::*;
use floe_catalog::{Catalog, RetryPolicy, TableChange};

const WINDOW: usize = 50;

async fn commit_times(appends: usize, merge: bool) -> Vec<Duration> {
    let t = test_catalog().await;
    let table = create_people(&t.catalog, "bench").await;
    let props = [(MERGE_ENABLED.to_string(), merge.to_string())].into();
    let mut table = t
        .catalog
        .commit_table(&table, TableChange::new(vec![], vec![TableUpdate::SetProperties { updates: props }]))
        .await
        .unwrap();
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
    let appends: usize = std::env::var("FLOE_BENCH_APPENDS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    println!("commit_scaling: {appends} appends of one small file each, mean of {WINDOW} commits per point");
    for merge in [true, false] {
        let times = runtime.block_on(commit_times(appends, merge));
        let early = around(&times, 100);
        let late = around(&times, appends);
        println!(
            "  merge={merge:<5}  at 100: {:>8.2?}  at {appends}: {:>8.2?}  ratio {:.2}",
            early,
            late,
            late.as_secs_f64() / early.as_secs_f64()
        );
    }
}
