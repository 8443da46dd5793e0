//! A message read from the bus, as a controller service and a run read one: the envelope
//! parsed (schema version checked), then its payload taken as a decision request (and
//! answered) or as a decision reply.
#![no_main]
use libfuzzer_sys::fuzz_target;
use morphogen::controller::{DecisionReply, DecisionRequest};
use morphogen_bus::{Body, Envelope};
use serde::Deserialize;

fuzz_target!(|bytes: &[u8]| {
    let Ok(envelope) = Envelope::parse(bytes) else { return };
    let Body::Inline { payload } = &envelope.body else { return };
    if let Ok(request) = DecisionRequest::deserialize(payload) {
        let _ = request.answer(None);
    }
    let _ = DecisionReply::deserialize(payload);
});
