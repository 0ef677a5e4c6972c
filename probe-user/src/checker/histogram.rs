//! A fixed-size log histogram of durations: 4 linear sub-buckets per power of two, so any
//! quantile is known to within 25% with 2 KiB per histogram whatever the event count.
use serde::Serialize;

const SUB_BITS: u32 = 2;
const SUB: u64 = 1 << SUB_BITS;
/// Values 0..4 get their own bucket; each octave from 4 up to 2^64 gets `SUB` buckets.
const BUCKETS: usize = (SUB as usize) * 63;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogHistogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
    max: u64,
    sum: u128,
}

impl Default for LogHistogram {
    fn default() -> Self {
        LogHistogram { counts: Box::new([0; BUCKETS]), total: 0, max: 0, sum: 0 }
    }
}

fn bucket_of(value: u64) -> usize {
    if value < SUB {
        return value as usize;
    }
    let msb = 63 - value.leading_zeros();
    let sub = (value >> (msb - SUB_BITS)) & (SUB - 1);
    ((msb - SUB_BITS + 1) as usize) * SUB as usize + sub as usize
}

/// Largest value that lands in `bucket`.
fn bucket_upper(bucket: usize) -> u64 {
    let b = bucket as u64;
    if b < SUB {
        return b;
    }
    let octave = b / SUB; // >= 1
    let sub = b % SUB;
    let shift = octave - 1;
    let lower = (SUB + sub) << shift;
    lower.saturating_add((1u64 << shift) - 1)
}

/// p50/p99/max and friends of one histogram.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DurationSummary {
    pub count: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
    pub mean_ns: u64,
}

impl LogHistogram {
    pub fn record(&mut self, value: u64) {
        let bucket = bucket_of(value);
        if let Some(c) = self.counts.get_mut(bucket) {
            *c += 1;
        }
        self.total += 1;
        self.max = self.max.max(value);
        self.sum += u128::from(value);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// Sum of all recorded values.
    pub fn sum(&self) -> u128 {
        self.sum
    }

    /// How many values are at most `value`: exact when `value` is a bucket's upper bound
    /// ([`LogHistogram::is_exact_bound`]), otherwise the count up to the bucket below.
    pub fn count_at_most(&self, value: u64) -> u64 {
        let last = bucket_of(value);
        let whole = if bucket_upper(last) <= value { last + 1 } else { last };
        self.counts.iter().take(whole).sum()
    }

    /// Whether [`LogHistogram::count_at_most`] is exact at `value` (all of `2^k - 1` are).
    pub fn is_exact_bound(value: u64) -> bool {
        bucket_upper(bucket_of(value)) == value
    }

    /// The `q`-quantile (0.0..=1.0), reported as its bucket's upper bound (never above max).
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (bucket, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return bucket_upper(bucket).min(self.max);
            }
        }
        self.max
    }

    /// What was recorded after `earlier`, a copy of this histogram taken before (for counters
    /// a dashboard resets without disturbing the checker). `max` stays the overall maximum,
    /// as the histogram does not keep when it was reached; it is capped by the buckets left.
    pub fn since(&self, earlier: &LogHistogram) -> LogHistogram {
        let mut out = LogHistogram::default();
        for (bucket, (now, then)) in self.counts.iter().zip(earlier.counts.iter()).enumerate() {
            let n = now.saturating_sub(*then);
            if let Some(c) = out.counts.get_mut(bucket) {
                *c = n;
            }
            if n > 0 {
                out.max = bucket_upper(bucket).min(self.max);
            }
        }
        out.total = self.total.saturating_sub(earlier.total);
        out.sum = self.sum.saturating_sub(earlier.sum);
        out
    }

    pub fn summary(&self) -> DurationSummary {
        DurationSummary {
            count: self.total,
            p50_ns: self.quantile(0.50),
            p99_ns: self.quantile(0.99),
            max_ns: self.max,
            mean_ns: if self.total == 0 { 0 } else { (self.sum / u128::from(self.total)) as u64 },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut last = 0;
        for v in [0u64, 1, 3, 4, 5, 7, 8, 9, 15, 16, 1000, 1 << 40, u64::MAX] {
            let b = bucket_of(v);
            assert!(b < BUCKETS, "{v} -> {b}");
            assert!(b >= last);
            assert!(bucket_upper(b) >= v, "{v}: upper {}", bucket_upper(b));
            last = b;
        }
    }

    #[test]
    fn counts_at_bucket_bounds_are_exact() {
        let values: Vec<u64> = (0..2000u64).map(|i| i * i * 37 % 1_000_003).collect();
        let mut h = LogHistogram::default();
        for &v in &values {
            h.record(v);
        }
        for k in 0..24 {
            let bound = (1u64 << k) - 1;
            assert!(LogHistogram::is_exact_bound(bound), "{bound}");
            let expected = values.iter().filter(|&&v| v <= bound).count() as u64;
            assert_eq!(h.count_at_most(bound), expected, "bound {bound}");
        }
        assert!(!LogHistogram::is_exact_bound(1000));
        assert!(h.count_at_most(1000) <= values.iter().filter(|&&v| v <= 1000).count() as u64);
        assert_eq!(h.sum(), values.iter().map(|&v| u128::from(v)).sum::<u128>());
    }

    #[test]
    fn quantiles_are_within_a_quarter() {
        let mut h = LogHistogram::default();
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5);
        assert!((500_000..=625_000).contains(&p50), "{p50}");
        assert_eq!(h.quantile(1.0), 1_000_000);
        assert_eq!(h.summary().count, 1000);
    }

    #[test]
    fn since_keeps_only_later_values() {
        let mut h = LogHistogram::default();
        for _ in 0..100 {
            h.record(1_000_000);
        }
        let earlier = h.clone();
        for _ in 0..10 {
            h.record(100);
        }
        let later = h.since(&earlier);
        assert_eq!(later.count(), 10);
        let p99 = later.quantile(0.99);
        assert!((100..=125).contains(&p99), "within a quarter of 100, not near the earlier 1ms: {p99}");
        assert_eq!(later.summary().mean_ns, 100);
        assert_eq!(h.since(&h).count(), 0);
    }
}
