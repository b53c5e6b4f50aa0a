//! Dead-letter diagnostics: counts per table and reason, logged once per reason when it first
//! appears, then as a rate-limited summary of what came since, and in full at the end. A stream
//! with a million bad records writes a handful of log lines, not a million.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tracing::warn;

/// How often, at most, the running summary of new dead letters is logged.
const SUMMARY_INTERVAL: Duration = Duration::from_secs(10);

/// Dead letters by (table, reason class). The table is `-` when the record had no topic.
pub type DeadLetterCounts = BTreeMap<(String, String), u64>;

#[derive(Debug)]
pub struct DeadLetterLog {
    counts: DeadLetterCounts,
    since_summary: u64,
    last_summary: Instant,
}

impl Default for DeadLetterLog {
    fn default() -> Self {
        Self { counts: BTreeMap::new(), since_summary: 0, last_summary: Instant::now() }
    }
}

impl DeadLetterLog {
    /// Counts one dead letter; logs it if its reason is new, or a summary if one is due.
    pub fn record(&mut self, table: Option<&str>, reason: &str) {
        let key = (table.unwrap_or("-").to_string(), reason_class(reason).to_string());
        let count = self.counts.entry(key).or_insert(0);
        *count += 1;
        if *count == 1 {
            warn!(table = table.unwrap_or("-"), %reason, "dead letter (first with this reason; the rest are counted)");
        } else {
            self.since_summary += 1;
        }
        if self.since_summary > 0 && self.last_summary.elapsed() >= SUMMARY_INTERVAL {
            warn!(dead_letters = self.since_summary, total = self.total(), "more dead letters with reasons already logged");
            self.since_summary = 0;
            self.last_summary = Instant::now();
        }
    }

    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// Logs the final count of every (table, reason) and returns the counts.
    pub fn finish(self) -> DeadLetterCounts {
        for ((table, reason), count) in &self.counts {
            warn!(%table, %reason, count, "dead letters");
        }
        self.counts
    }
}

/// The part of a reason that names the problem, without the offending value or the position in
/// the input, so that records failing the same way are counted together:
/// `column n: expected Long, got "x"` → `column n: expected Long`.
pub fn reason_class(reason: &str) -> &str {
    let cut = [", got ", " at line "].iter().filter_map(|marker| reason.find(marker)).min();
    let class = cut.map_or(reason, |at| &reason[..at]);
    // Bound what one reason can add to the logs and the report.
    match class.char_indices().nth(200) {
        Some((at, _)) => &class[..at],
        None => class,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_classed_without_values_or_positions() {
        assert_eq!(reason_class("column n: expected Long, got \"x\""), "column n: expected Long");
        assert_eq!(
            reason_class("line is not valid JSON: key must be a string at line 1 column 2"),
            "line is not valid JSON: key must be a string"
        );
        assert_eq!(reason_class("record has no key"), "record has no key");
        assert_eq!(reason_class(&"x".repeat(500)).len(), 200);
    }

    #[test]
    fn counts_per_table_and_reason_class() {
        let mut log = DeadLetterLog::default();
        for value in ["1", "2", "3"] {
            log.record(Some("a.b"), &format!("column n: expected Long, got {value}"));
        }
        log.record(None, "line is not a JSON object");
        assert_eq!(log.total(), 4);
        let counts = log.finish();
        assert_eq!(counts[&("a.b".to_string(), "column n: expected Long".to_string())], 3);
        assert_eq!(counts[&("-".to_string(), "line is not a JSON object".to_string())], 1);
    }
}
