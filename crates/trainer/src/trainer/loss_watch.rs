//! Watching the step losses for divergence without a device-to-host read per step: the losses
//! stay on the device and are read back together every `loss_check_every` steps (and at the
//! epoch's end), then checked in step order as if each had been read on its own.

use crate::{ErrorKind, Observer};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// The losses of the steps since the last read, and what the checks remember between reads.
pub(super) struct LossWatch<B: Backend> {
    /// Detached losses of the unread steps, oldest first.
    unread: Vec<Tensor<B, 1>>,
    /// Global step of the oldest unread loss.
    first_unread_step: u64,
    /// Moving average of the losses read so far (the spike check's reference).
    average: Option<f32>,
    /// Sum of the losses read so far.
    pub sum: f64,
    /// A loss above this many times the moving average is a spike.
    spike_factor: f32,
}

/// A loss that means the run diverged: what kind, and a sentence naming the step.
pub(super) type Divergence = (ErrorKind, String);

impl<B: Backend> LossWatch<B> {
    /// A watch with nothing read yet.
    pub fn new(spike_factor: f32) -> Self {
        Self { unread: Vec::new(), first_unread_step: 0, average: None, sum: 0.0, spike_factor }
    }

    /// Keeps the loss of global step `step` (detached, still on the device).
    pub fn push(&mut self, step: u64, loss: Tensor<B, 1>) {
        if self.unread.is_empty() {
            self.first_unread_step = step;
        }
        self.unread.push(loss.detach());
    }

    /// How many losses wait to be read.
    pub fn unread(&self) -> usize {
        self.unread.len()
    }

    /// Reads the unread losses back in one transfer and checks them in step order: the first
    /// non-finite or spiking one is the divergence. Every loss before it reaches the observer.
    pub fn read(&mut self, observer: &mut dyn Observer) -> Result<(), Divergence> {
        if self.unread.is_empty() {
            return Ok(());
        }
        let values = Tensor::cat(std::mem::take(&mut self.unread), 0).into_data().convert::<f32>();
        let values = values.to_vec::<f32>().expect("f32 losses");
        for (offset, value) in values.into_iter().enumerate() {
            let step = self.first_unread_step + offset as u64;
            self.check(value).map_err(|(kind, reason)| (kind, format!("{reason} at step {step}")))?;
            self.average = Some(self.average.map_or(value, |a| 0.95 * a + 0.05 * value));
            self.sum += f64::from(value);
            observer.step(value);
        }
        Ok(())
    }

    /// Why `loss` means the run diverged, if it does.
    fn check(&self, loss: f32) -> Result<(), Divergence> {
        if !loss.is_finite() {
            return Err((ErrorKind::NonFiniteLoss, format!("non-finite loss {loss}")));
        }
        match self.average {
            Some(average) if loss > self.spike_factor * average => Err((
                ErrorKind::LossSpike,
                format!("loss spike {loss:.4} > {} x moving average {average:.4}", self.spike_factor),
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use proptest::prelude::*;

    /// Records the losses an observer is told about.
    #[derive(Default)]
    struct Steps(Vec<f32>);

    impl Observer for Steps {
        fn step(&mut self, loss: f32) {
            self.0.push(loss);
        }
    }

    /// What the per-step check did before losses were read in groups: the first divergent
    /// step's offset, or none.
    fn one_at_a_time(losses: &[f32], spike_factor: f32) -> Option<usize> {
        let mut average: Option<f32> = None;
        for (i, &loss) in losses.iter().enumerate() {
            if !loss.is_finite() || average.is_some_and(|a| loss > spike_factor * a) {
                return Some(i);
            }
            average = Some(average.map_or(loss, |a| 0.95 * a + 0.05 * loss));
        }
        None
    }

    /// Pushes `losses` from global step 100 on, reading every `every`; the divergence found and
    /// the losses the observer saw.
    fn watched(losses: &[f32], every: usize) -> (Option<Divergence>, Vec<f32>) {
        let device = Default::default();
        let mut watch = LossWatch::<NdArray>::new(5.0);
        let mut seen = Steps::default();
        for (i, &loss) in losses.iter().enumerate() {
            watch.push(100 + i as u64, Tensor::from_floats([loss], &device));
            if watch.unread() >= every {
                if let Err(d) = watch.read(&mut seen) {
                    return (Some(d), seen.0);
                }
            }
        }
        (watch.read(&mut seen).err(), seen.0)
    }

    proptest! {
        #[test]
        fn grouped_reads_find_what_per_step_reads_found(
            losses in prop::collection::vec(prop_oneof![8 => 0.1f32..3.0, 1 => 10.0f32..40.0, 1 => Just(f32::NAN)], 1..80),
            every in 1usize..40,
        ) {
            let expected = one_at_a_time(&losses, 5.0);
            let (found, seen) = watched(&losses, every);
            match expected {
                None => {
                    prop_assert!(found.is_none());
                    prop_assert_eq!(seen, losses);
                }
                Some(at) => {
                    let (kind, reason) = found.expect("a divergence");
                    let expected_kind = if losses[at].is_finite() { ErrorKind::LossSpike } else { ErrorKind::NonFiniteLoss };
                    prop_assert_eq!(kind, expected_kind);
                    let at_step = format!("at step {}", 100 + at);
                    prop_assert!(reason.ends_with(&at_step), "{}", reason);
                    prop_assert_eq!(&seen[..], &losses[..at]);
                }
            }
        }
    }
}
