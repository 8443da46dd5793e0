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

/// One measurement: the median time a call took, and the median time the host spent queuing it.
#[derive(Clone, Copy, Debug)]
pub struct CallTime {
    /// Milliseconds a call took, device work included.
    pub ms: f64,
    /// Milliseconds a call spent on the host until its work was queued (the burst's time before
    /// the closing sync, per call): close to `ms`, the host, not the device, bounds the work.
    pub queue_ms: f64,
}

impl Timer {
    /// Median milliseconds of one call of `work` on `device` (see [`Self::measure`]).
    pub fn median_ms<B: Backend, T>(&self, device: &B::Device, work: impl FnMut() -> T) -> Result<f64, ExecutionError> {
        self.measure::<B, T>(device, work).map(|timing| timing.ms)
    }

    /// The [`CallTime`] of one call of `work` on `device`. The backend is synced before and after
    /// each burst of calls, and results are dropped only after the second sync, so the time
    /// covers all the work the burst queued and nothing of the next one.
    pub fn measure<B: Backend, T>(
        &self,
        device: &B::Device,
        mut work: impl FnMut() -> T,
    ) -> Result<CallTime, ExecutionError> {
        for _ in 0..self.warmup {
            let out = work();
            B::sync(device)?;
            drop(out);
        }
        let (mut times, mut queued) = (Vec::with_capacity(self.iters), Vec::with_capacity(self.iters));
        let per_call = |start: Instant| start.elapsed().as_secs_f64() * 1e3 / self.burst as f64;
        for _ in 0..self.iters {
            B::sync(device)?;
            let start = Instant::now();
            let outs: Vec<T> = (0..self.burst).map(|_| work()).collect();
            queued.push(per_call(start));
            B::sync(device)?;
            times.push(per_call(start));
            drop(outs);
        }
        Ok(CallTime { ms: median(&mut times), queue_ms: median(&mut queued) })
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
