//! A state out and a decision back over the in-process bus, as a trainer and a controller
//! thread of one process would (`cargo run -p morphogen-bus --example round_trip`). With a
//! Redis server, `RedisBus::connect("redis://127.0.0.1:6390", ..)` takes the same calls.

use morphogen_bus::{Bus, InProcessBus, Outgoing, Reader};
use std::time::Duration;

fn main() -> Result<(), morphogen_bus::BusError> {
    let mut trainer = InProcessBus::new();
    let mut controller = trainer.clone();
    let service = std::thread::spawn(move || -> Result<(), morphogen_bus::BusError> {
        let wait = Duration::from_secs(5);
        if let Some(state) = controller.receive(Reader::controller("demo", "c1"), wait)? {
            let decision = serde_json::json!({ "commands": [], "rollback": null });
            controller.publish(Outgoing::decision(&state, "c1", &decision))?;
            controller.ack(&state)?;
        }
        Ok(())
    });
    let state = serde_json::json!({ "metrics": { "epoch": 1 }, "layers": [] });
    let asked = trainer.publish(Outgoing::state("demo", 100, &state))?;
    let answer = trainer.receive(Reader::trainer("demo"), Duration::from_secs(5))?.expect("a decision");
    trainer.ack(&answer)?;
    service.join().expect("the controller thread")?;
    println!("state {asked} answered by {} with {}", answer.envelope.sender, answer.payload);
    Ok(())
}
