//! The controller as a service: it serves every run on a bus, answering each state with the
//! decisions the run's own controller would make. Replicas share the work through one consumer
//! group; a state a replica read and never answered (it died) is taken over by another after
//! [`ServiceOptions::reclaim_after`].

use crate::{DecisionReply, DecisionRequest, NeuralPolicy, Refusal};
use morphogen_bus::{Bus, BusError, Delivery, Outgoing, Reader};
use serde::Deserialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a [`ControllerService`] polls.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceOptions {
    /// A state read by a replica and not answered for this long is taken over.
    pub reclaim_after: Duration,
    /// How often the list of runs on the bus is read again (a new run waits at most this long).
    pub rescan_every: Duration,
    /// The longest wait for a state in one [`ControllerService::poll`].
    pub wait: Duration,
}

impl Default for ServiceOptions {
    /// Take over after 10 s, look for new runs every 250 ms, wait up to 200 ms at a time.
    fn default() -> Self {
        Self {
            reclaim_after: Duration::from_secs(10),
            rescan_every: Duration::from_millis(250),
            wait: Duration::from_millis(200),
        }
    }
}

/// What the service did with one message.
#[derive(Clone, Debug, PartialEq)]
pub enum Handled {
    /// Answered a run's state.
    Answered {
        /// The run.
        run: String,
        /// The run's step at the state.
        step: u64,
        /// Commands decided.
        commands: usize,
        /// Whether it ordered a rollback.
        rollback: bool,
        /// Time from reading the state to publishing the answer.
        took: Duration,
    },
    /// Told the run it could not answer its message (a [`Refusal`]), and moved the message to
    /// the dead-letter stream.
    Refused {
        /// The run.
        run: String,
        /// Why.
        reason: String,
    },
}

/// The controller serving every run of a bus under one consumer name.
pub struct ControllerService<B: Bus> {
    bus: B,
    name: String,
    options: ServiceOptions,
    runs: Vec<String>,
    scanned: Option<Instant>,
    reclaimed: Instant,
    policy: Option<Arc<NeuralPolicy>>,
}

impl<B: Bus> ControllerService<B> {
    /// A service reading `bus` as the consumer `name` (unique among replicas).
    pub fn new(bus: B, name: impl Into<String>, options: ServiceOptions) -> Self {
        let name = name.into();
        Self { bus, name, options, runs: Vec::new(), scanned: None, reclaimed: Instant::now(), policy: None }
    }

    /// Lets `policy` decide every run's growth (each run's own settings still set the budgets
    /// and gates).
    pub fn with_policy(mut self, policy: Arc<NeuralPolicy>) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Its consumer name: the controller identity runs record with each decision.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The runs it serves, as last read from the bus.
    pub fn runs(&self) -> &[String] {
        &self.runs
    }

    /// Answers what is waiting: states other replicas left unanswered, then the next new state
    /// of any run, waiting at most [`ServiceOptions::wait`] for one.
    pub fn poll(&mut self) -> Result<Vec<Handled>, BusError> {
        if self.scanned.is_none_or(|at| at.elapsed() >= self.options.rescan_every) {
            self.runs = self.bus.runs()?;
            self.scanned = Some(Instant::now());
        }
        let mut handled = Vec::new();
        if self.reclaimed.elapsed() >= self.options.reclaim_after / 2 {
            let reader = Reader::controllers(&self.runs, &self.name);
            for delivery in self.bus.reclaim(reader, self.options.reclaim_after)? {
                handled.push(self.handle(&delivery)?);
            }
            self.reclaimed = Instant::now();
        }
        let reader = Reader::controllers(&self.runs, &self.name);
        if let Some(delivery) = self.bus.receive(reader, self.options.wait)? {
            handled.push(self.handle(&delivery)?);
        }
        Ok(handled)
    }

    /// Polls until `stop` is set, passing each outcome to `report`. A bus failure is reported
    /// and retried after a pause growing to 5 s; the service never gives up on its own.
    pub fn serve(&mut self, stop: &AtomicBool, mut report: impl FnMut(Result<&Handled, &BusError>)) {
        let mut pause = Duration::from_millis(100);
        while !stop.load(Ordering::Relaxed) {
            match self.poll() {
                Ok(handled) => {
                    pause = Duration::from_millis(100);
                    handled.iter().for_each(|h| report(Ok(h)));
                }
                Err(error) => {
                    report(Err(&error));
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Answers one state, or moves it to the dead-letter stream when it is not a request this
    /// controller can answer. The state is acknowledged only after the answer is published.
    fn handle(&mut self, delivery: &Delivery) -> Result<Handled, BusError> {
        let started = Instant::now();
        let run = delivery.envelope.run.clone();
        let reply = DecisionRequest::deserialize(&delivery.payload)
            .map_err(|e| format!("not a decision request: {e}"))
            .and_then(|request| request.answer(self.policy.as_ref()).map_err(|e| format!("refused: {e}")));
        let reply: DecisionReply = match reply {
            Ok(reply) => reply,
            Err(reason) => {
                let refusal = serde_json::to_value(Refusal { refused: reason.clone() }).expect("refusals serialize");
                self.bus.publish(Outgoing::decision(delivery, &self.name, &refusal))?;
                self.bus.dead_letter(delivery, &reason)?;
                return Ok(Handled::Refused { run, reason });
            }
        };
        let payload = serde_json::to_value(&reply).expect("decisions serialize");
        self.bus.publish(Outgoing::decision(delivery, &self.name, &payload))?;
        self.bus.ack(delivery)?;
        Ok(Handled::Answered {
            run,
            step: delivery.envelope.step,
            commands: reply.decisions.commands.len(),
            rollback: reply.decisions.rollback.is_some(),
            took: started.elapsed(),
        })
    }
}
