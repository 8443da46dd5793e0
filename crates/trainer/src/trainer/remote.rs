//! The controller as a service on a message bus, seen from the run: at each decision point the
//! run publishes a [`DecisionRequest`] and waits, at most its timeout, for the reply to that
//! request. Replies to earlier requests (a late or duplicated answer, one left from before a
//! restart) are acknowledged and dropped; the ids of the decisions applied are recorded and
//! saved in every checkpoint, so none is applied twice.

use crate::BusConfig;
use morphogen_bus::{Bus, BusError, Outgoing, Reader};
use morphogen_contracts::SystemState;
use morphogen_controller::{Controller, DecisionReply, DecisionRequest, Refusal};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// One decision a run applied: the record saved in its checkpoints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AppliedDecision {
    /// The decision message's id.
    pub decision: String,
    /// The id of the request it answered.
    pub request: String,
    /// The controller that answered (its consumer name).
    pub controller: String,
    /// The epoch it was applied at.
    pub epoch: u32,
}

/// The reply to the request just published.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// The decisions and the controller's memory after them.
    pub reply: DecisionReply,
    /// What to record once the decisions are applied.
    pub record: AppliedDecision,
    /// From publishing the request to reading the reply.
    pub round_trip: Duration,
}

/// Why a decision point went without a decision from the bus.
#[derive(Debug, thiserror::Error)]
pub enum NoDecision {
    /// The bus failed (Redis down, a claim check missing).
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The controller service refused the request (the run and the service disagree on what a
    /// request is: upgrade the older one).
    #[error("controller {controller} refused the request: {reason}")]
    Refused {
        /// The service's name.
        controller: String,
        /// Its reason.
        reason: String,
    },
    /// Nobody answered in time.
    #[error("no controller answered within {0:?}; is `morphogen controller serve` running on this bus?")]
    Timeout(Duration),
}

/// A run's end of the bus: asks the controller service for decisions (what [`Trainer::with_bus`]
/// uses; public for a loop of one's own).
///
/// [`Trainer::with_bus`]: crate::Trainer::with_bus
pub struct RemoteController {
    bus: Box<dyn Bus>,
    run: String,
    config: BusConfig,
    /// Whether replies left pending from an earlier process were cleared.
    cleared: bool,
}

impl RemoteController {
    /// Asks over `bus` for the run `run`, as `config` says.
    pub fn new(bus: Box<dyn Bus>, run: &str, config: BusConfig) -> Self {
        Self { bus, run: run.to_string(), config, cleared: false }
    }

    /// The settings.
    pub fn config(&self) -> &BusConfig {
        &self.config
    }

    /// Asks the controller service what `controller` would decide on `system` at `step`,
    /// waiting at most the configured timeout; `applied` are the decisions applied so far (a
    /// reply among them is dropped).
    pub fn ask(
        &mut self,
        controller: &Controller,
        system: &SystemState,
        step: u64,
        applied: &[AppliedDecision],
    ) -> Result<Answer, NoDecision> {
        self.clear_leftovers()?;
        let started = Instant::now();
        let request = DecisionRequest::json(controller, system);
        let request_id = self.bus.publish(Outgoing::state(&self.run, step, &request))?;
        let timeout = self.config.decision_timeout();
        loop {
            let left = timeout.saturating_sub(started.elapsed());
            let Some(delivery) = self.bus.receive(Reader::trainer(&self.run), left)? else {
                return Err(NoDecision::Timeout(timeout));
            };
            let envelope = &delivery.envelope;
            let answers_this = envelope.reply_to.as_deref() == Some(request_id.as_str());
            if !answers_this || applied.iter().any(|a| a.decision == envelope.id) {
                tracing::info!(decision = %envelope.id, from = %envelope.sender, "dropped a reply to an earlier request");
                self.bus.ack(&delivery)?;
                continue;
            }
            let reply = match DecisionReply::deserialize(&delivery.payload) {
                Ok(reply) => reply,
                Err(e) => {
                    if let Ok(Refusal { refused }) = Refusal::deserialize(&delivery.payload) {
                        self.bus.ack(&delivery)?;
                        return Err(NoDecision::Refused { controller: envelope.sender.clone(), reason: refused });
                    }
                    self.bus.dead_letter(&delivery, &format!("not a decision reply: {e}"))?;
                    continue;
                }
            };
            self.bus.ack(&delivery)?;
            let record = AppliedDecision {
                decision: envelope.id.clone(),
                request: request_id,
                controller: envelope.sender.clone(),
                epoch: system.metrics.epoch,
            };
            return Ok(Answer { reply, record, round_trip: started.elapsed() });
        }
    }

    /// Makes the run known on the bus before its first request, so that a controller service
    /// finds it while the first epoch trains, and clears replies left from an earlier process.
    /// A bus that is down now is only logged: the first request will try again.
    pub fn announce(&mut self) {
        let announced = self.bus.announce(&self.run).and_then(|()| self.clear_leftovers());
        if let Err(error) = announced {
            tracing::warn!(%error, "the bus is not reachable at the start of the run");
        }
    }

    /// Acknowledges replies an earlier process of this run read and never acknowledged (it
    /// stopped before applying them; their requests are gone with it).
    fn clear_leftovers(&mut self) -> Result<(), BusError> {
        if !self.cleared {
            for leftover in self.bus.reclaim(Reader::trainer(&self.run), Duration::ZERO)? {
                self.bus.ack(&leftover)?;
            }
            self.cleared = true;
        }
        Ok(())
    }
}
