//! Tries of a subject paired with tries of its baseline, for benches whose figure is a ratio.
//!
//! This machine's speed drifts for seconds at a time, so each subject try runs right next to a
//! baseline try (the baseline first in every other pair, so that neither always runs in what
//! the other leaves behind), and the ratio is the median of the pairs' ratios. Taking the best
//! of each side separately let one slow run of baselines inflate a ratio.

/// Pairs of tries behind each ratio.
pub const PAIRS: usize = 9;

/// A subject's tries against its baseline's: the best rate of each side, and the pairs' ratios.
pub struct Paired {
    pub subject: f64,
    pub baseline: f64,
    pub median: f64,
    pub low: f64,
    pub high: f64,
}

/// Runs [`PAIRS`] pairs of `baseline` and `subject`, each returning a rate (higher is faster).
pub fn paired(baseline: &dyn Fn() -> f64, subject: &dyn Fn() -> f64) -> Paired {
    let pairs = alternating(PAIRS, baseline, subject);
    let (median, low, high) = spread(pairs.iter().map(|(baseline, subject)| subject / baseline).collect());
    let best = |side: fn(&(f64, f64)) -> f64| pairs.iter().map(side).fold(0.0, f64::max);
    Paired { subject: best(|p| p.1), baseline: best(|p| p.0), median, low, high }
}

/// `tries` pairs of a `baseline` try and a `subject` try, the baseline first in every other pair.
pub fn alternating<T>(tries: usize, mut baseline: impl FnMut() -> T, mut subject: impl FnMut() -> T) -> Vec<(T, T)> {
    (0..tries)
        .map(|pair| match pair % 2 {
            0 => {
                let baseline = baseline();
                (baseline, subject())
            }
            _ => {
                let subject = subject();
                (baseline(), subject)
            }
        })
        .collect()
}

/// The median, lowest and highest of `ratios` (not empty).
pub fn spread(mut ratios: Vec<f64>) -> (f64, f64, f64) {
    ratios.sort_by(f64::total_cmp);
    (ratios[ratios.len() / 2], ratios[0], ratios[ratios.len() - 1])
}

impl Paired {
    /// `"<subject> <unit>  <median> of the <baseline name> (<low>–<high>; <baseline name> up to <rate> <baseline unit>)"`.
    pub fn describe(&self, unit: &str, baseline_name: &str, baseline_unit: &str) -> String {
        let Paired { subject, baseline, median, low, high } = self;
        format!("{subject:>10.0} {unit}  {median:.2} of the {baseline_name} ({low:.2}–{high:.2}; {baseline_name} up to {baseline:.0} {baseline_unit})")
    }
}
