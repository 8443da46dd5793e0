//! What a run and a controller service say to each other over the bus. The run sends its
//! state with the controller's config and memory; any replica can answer, and the memory it
//! hands back goes into the run's checkpoints as it does in a single process.

use crate::{Controller, ControllerConfig, ControllerState, NeuralPolicy};
use morphogen_contracts::{Decisions, MorphogenError, SystemState};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A run's question at a decision point, as a controller reads it (a run writes it with
/// [`DecisionRequest::json`], without copying its state).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct DecisionRequest {
    /// The run's controller settings.
    pub config: ControllerConfig,
    /// What the run's controller remembers so far.
    pub state: ControllerState,
    /// The run's state at this decision point (columnar on the wire; see the crate docs).
    #[serde(deserialize_with = "crate::compact::deserialize")]
    pub system: SystemState,
}

/// The written form of a [`DecisionRequest`], borrowing what it sends.
#[derive(Serialize)]
struct RequestToSend<'a> {
    config: &'a ControllerConfig,
    state: &'a ControllerState,
    #[serde(serialize_with = "crate::compact::serialize")]
    system: &'a SystemState,
}

/// A controller's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DecisionReply {
    /// What to do.
    pub decisions: Decisions,
    /// What the run's controller remembers after deciding.
    pub state: ControllerState,
}

/// A controller's answer to a request it cannot answer (not a request, or settings it refuses,
/// as when the run is newer than the service): the run reports the reason at once instead of
/// waiting out its timeout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Refusal {
    /// Why.
    pub refused: String,
}

impl DecisionRequest {
    /// The question the run with `controller` asks about `system`, as JSON.
    pub fn json(controller: &Controller, system: &SystemState) -> serde_json::Value {
        let request = RequestToSend { config: controller.config(), state: controller.state(), system };
        serde_json::to_value(request).expect("requests serialize")
    }

    /// The answer the run's own controller would give, its growth decided by `policy` when one
    /// is given; an invalid config is refused.
    pub fn answer(self, policy: Option<&Arc<NeuralPolicy>>) -> Result<DecisionReply, MorphogenError> {
        let mut controller = Controller::new(self.config)?.with_state(self.state);
        if let Some(policy) = policy {
            controller = controller.with_policy(policy.clone());
        }
        let decisions = controller.step(&self.system);
        Ok(DecisionReply { decisions, state: controller.into_state() })
    }
}
