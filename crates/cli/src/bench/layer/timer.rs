//! Wall-clock timing of device work: sync before and after, median of the timed iterations.

use morphogen::burn::tensor::backend::{Backend, ExecutionError};
use std::time::Instant;

/// How many untimed and timed iterations a measurement takes.
#[derive(Clone, Copy, Debug)]
pub struct Timer {
    /// Untimed iterations first.
    pub warmup: usize,
    /// Timed iterations (at least 1).
    pub iters: usize,
    /// Calls per timed iteration, back to back (at least 1); the iteration's time is their mean.
    pub burst: usize,
}

impl Timer {
    /// Median milliseconds of one call of `work` on `device`. The backend is synced before and
    /// after each burst of calls, and results are dropped only after the second sync, so the
    /// time covers all the work the burst queued and nothing of the next one.
    pub fn median_ms<B: Backend, T>(
        &self,
        device: &B::Device,
        mut work: impl FnMut() -> T,
    ) -> Result<f64, ExecutionError> {
        for _ in 0..self.warmup {
            let out = work();
            B::sync(device)?;
            drop(out);
        }
        let mut times = Vec::with_capacity(self.iters);
        for _ in 0..self.iters {
            B::sync(device)?;
            let start = Instant::now();
            let outs: Vec<T> = (0..self.burst).map(|_| work()).collect();
            B::sync(device)?;
            times.push(start.elapsed().as_secs_f64() * 1e3 / self.burst as f64);
            drop(outs);
        }
        Ok(median(&mut times))
    }
}

/// The median (mean of the middle two for an even count); `values` must not be empty.
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    (values[(n - 1) / 2] + values[n / 2]) / 2.0
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
