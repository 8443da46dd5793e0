//! What both buses must do alike: round trips, one delivery per group, acknowledgements,
//! reclaiming what a dead consumer left pending, runs kept apart.

use morphogen_bus::{Bus, BusOptions, InProcessBus, Outgoing, Reader, RedisBus};
use morphogen_testkit::RedisServer;
use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(2);

/// Runs `check` on an in-process bus and on a Redis bus (a fresh server); `open` gives another
/// handle on the same bus each call.
fn on_both(check: impl Fn(&mut dyn FnMut() -> Box<dyn Bus>)) {
    let shared = InProcessBus::new();
    check(&mut || Box::new(shared.clone()) as Box<dyn Bus>);
    let server = RedisServer::start();
    let url = server.url();
    check(&mut || Box::new(RedisBus::connect(&url, BusOptions::default(), WAIT).unwrap()) as Box<dyn Bus>);
}

/// Two handles on the same bus (the in-process one shared by cloning).
fn pair(open: &mut dyn FnMut() -> Box<dyn Bus>) -> (Box<dyn Bus>, Box<dyn Bus>) {
    (open(), open())
}

#[test]
fn a_state_goes_out_and_its_decision_comes_back() {
    on_both(|open| {
        let (mut trainer, mut controller) = pair(open);
        let state = json!({"metrics": {"epoch": 3}, "layers": []});
        let asked = trainer.publish(Outgoing::state("run-a", 120, &state)).unwrap();
        let got = controller.receive(Reader::controller("run-a", "c1"), WAIT).unwrap().expect("the state");
        assert_eq!((got.payload.clone(), got.envelope.step, got.envelope.id.clone()), (state, 120, asked.clone()));
        let decision = json!({"commands": [], "rollback": null});
        controller.publish(Outgoing::decision(&got, "c1", &decision)).unwrap();
        controller.ack(&got).unwrap();
        let answer = trainer.receive(Reader::trainer("run-a"), WAIT).unwrap().expect("the decision");
        assert_eq!(answer.envelope.reply_to.as_deref(), Some(asked.as_str()));
        assert_eq!((answer.payload.clone(), answer.envelope.sender.as_str()), (decision, "c1"));
        trainer.ack(&answer).unwrap();
        // Nothing is delivered twice to a group.
        assert!(controller.receive(Reader::controller("run-a", "c1"), Duration::from_millis(50)).unwrap().is_none());
    });
}

#[test]
fn two_consumers_of_a_group_share_the_messages_each_handled_once() {
    on_both(|open| {
        let (mut trainer, mut a, mut b) = (open(), open(), open());
        for step in 0..20 {
            trainer.publish(Outgoing::state("run-b", step, &json!(step))).unwrap();
        }
        let mut seen = Vec::new();
        for turn in 0..20 {
            let (consumer, name) = if turn % 2 == 0 { (&mut a, "a") } else { (&mut b, "b") };
            let got = consumer.receive(Reader::controller("run-b", name), WAIT).unwrap().expect("a message");
            consumer.ack(&got).unwrap();
            seen.push(got.envelope.step);
        }
        assert_eq!(seen.iter().copied().collect::<HashSet<_>>().len(), 20, "each handled once: {seen:?}");
        assert!(a.receive(Reader::controller("run-b", "a"), Duration::from_millis(50)).unwrap().is_none());
    });
}

#[test]
fn a_message_a_consumer_never_acknowledged_is_reclaimed_by_another() {
    on_both(|open| {
        let (mut trainer, mut dies) = pair(open);
        let mut takes_over = open();
        trainer.publish(Outgoing::state("run-c", 5, &json!("state"))).unwrap();
        let lost = dies.receive(Reader::controller("run-c", "dies"), WAIT).unwrap().expect("read");
        drop(dies); // read, never answered
        let idle = Duration::from_millis(100);
        assert!(
            takes_over.reclaim(Reader::controller("run-c", "takes-over"), idle).unwrap().is_empty(),
            "not idle yet"
        );
        std::thread::sleep(idle * 2);
        let claimed = takes_over.reclaim(Reader::controller("run-c", "takes-over"), idle).unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].envelope.id, lost.envelope.id);
        takes_over.ack(&claimed[0]).unwrap();
        std::thread::sleep(idle * 2);
        assert!(
            takes_over.reclaim(Reader::controller("run-c", "takes-over"), idle).unwrap().is_empty(),
            "acknowledged"
        );
    });
}

#[test]
fn runs_sharing_a_bus_never_see_each_other() {
    on_both(|open| {
        let (mut one, mut other) = pair(open);
        one.publish(Outgoing::state("run-1", 1, &json!(1))).unwrap();
        assert!(other.receive(Reader::controller("run-2", "c"), Duration::from_millis(50)).unwrap().is_none());
        let got = other.receive(Reader::controller("run-1", "c"), WAIT).unwrap().unwrap();
        assert_eq!(got.envelope.run, "run-1");
    });
}

#[test]
fn one_controller_reads_the_states_of_every_run_it_finds() {
    on_both(|open| {
        let (mut trainer, mut controller) = pair(open);
        assert!(controller.runs().unwrap().is_empty());
        for (step, run) in ["run-z", "run-x", "run-y"].into_iter().enumerate() {
            trainer.publish(Outgoing::state(run, step as u64, &json!(run))).unwrap();
            trainer.publish(Outgoing::state(run, 10 + step as u64, &json!(run))).unwrap();
        }
        let runs = controller.runs().unwrap();
        assert_eq!(runs, ["run-x", "run-y", "run-z"]);
        let mut seen = Vec::new();
        let reader = Reader::controllers(&runs, "c");
        while let Some(got) = controller.receive(reader, Duration::from_millis(100)).unwrap() {
            assert_eq!(got.payload, json!(got.envelope.run));
            controller.ack(&got).unwrap();
            seen.push((got.envelope.run.clone(), got.envelope.step));
        }
        seen.sort();
        let expected = [("run-x", 1), ("run-x", 11), ("run-y", 2), ("run-y", 12), ("run-z", 0), ("run-z", 10)];
        assert_eq!(seen, expected.map(|(run, step)| (run.to_string(), step)));
    });
}

#[test]
fn a_message_its_reader_cannot_use_is_moved_aside_and_never_handed_out_again() {
    on_both(|open| {
        let (mut trainer, mut controller) = pair(open);
        trainer.publish(Outgoing::state("run-d", 1, &json!("not a state"))).unwrap();
        let got = controller.receive(Reader::controller("run-d", "c"), WAIT).unwrap().unwrap();
        controller.dead_letter(&got, "the payload is not a decision request").unwrap();
        let mut other = open();
        assert!(other.reclaim(Reader::controller("run-d", "c2"), Duration::ZERO).unwrap().is_empty());
        assert!(other.receive(Reader::controller("run-d", "c2"), Duration::from_millis(50)).unwrap().is_none());
    });
}

#[test]
fn an_announced_run_is_listed_before_its_first_state() {
    on_both(|open| {
        let mut bus = open();
        bus.announce("early-run").unwrap();
        bus.announce("early-run").unwrap();
        assert_eq!(bus.runs().unwrap(), ["early-run"]);
        assert!(bus.receive(Reader::controller("early-run", "c"), Duration::from_millis(20)).unwrap().is_none());
    });
}
