//! Stopping by signal: SIGINT (Ctrl-C) or SIGTERM sets a flag the work polls (a run finishes its
//! step, verifies its newest checkpoint and prints how to resume; a controller service finishes
//! the answer it is writing); a second signal ends the process at once.

use crate::error::CliError;
use signal_hook::consts::{SIGINT, SIGTERM};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// The signals a run stops on.
const STOPPING: [i32; 2] = [SIGINT, SIGTERM];

/// Set by the first SIGINT or SIGTERM (the trainer polls `flag` after each step).
pub struct StopSignal {
    /// True once a stopping signal arrived.
    pub flag: Arc<AtomicBool>,
    /// The signal that set it.
    signal: Arc<AtomicUsize>,
}

impl StopSignal {
    /// Installs the handlers for the rest of the process.
    pub fn install() -> Result<Self, CliError> {
        let (flag, signal) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
        for sig in STOPPING {
            let install = || -> std::io::Result<()> {
                // Registered first, so it sees the flag as the earlier signal left it: a second
                // signal exits at once with the shell's code for it.
                signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, flag.clone())?;
                signal_hook::flag::register_usize(sig, signal.clone(), sig as usize)?;
                signal_hook::flag::register(sig, flag.clone())?;
                Ok(())
            };
            install().map_err(|e| CliError::Config {
                path: "signal handlers".into(),
                problem: format!("cannot install the handler for signal {sig}: {e}"),
            })?;
        }
        Ok(Self { flag, signal })
    }

    /// The signal that stopped the run (SIGINT when none was recorded).
    pub fn signal(&self) -> i32 {
        match self.signal.load(Ordering::Relaxed) {
            0 => SIGINT,
            sig => sig as i32,
        }
    }
}
