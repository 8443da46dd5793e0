//! Prints the seed lifecycle graph and a serialised command, the forms other processes see.
//!
//! Run: `cargo run -p morphogen-contracts --example lifecycle_graph`

use morphogen_contracts::{Command, CommandKind, SeedAddress, Stage};

fn main() {
    for stage in Stage::ALL {
        let next: Vec<&str> = stage.allowed_next().iter().map(|s| s.name()).collect();
        println!("{:>2} {:<13} -> {}", stage.code(), stage.name(), next.join(", "));
    }
    let command = Command {
        target: SeedAddress { layer: "fc1".into(), seed: 3 },
        kind: CommandKind::Advance { to: Stage::Grafting },
        reason: "training gate passed".into(),
    };
    println!("{}", serde_json::to_string(&command).expect("commands serialise"));
}
