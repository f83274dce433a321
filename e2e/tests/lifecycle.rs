//! `lab down` leaves nothing behind, and a lab left behind by a crash is cleaned up by the
//! next one. Runs its own labs (no shared one), one after the other.
#![allow(clippy::unwrap_used)] // tests may unwrap

use ferrolb_e2e::state::{Paths, State};
use ferrolb_e2e::topology::is_lab_namespace;
use ferrolb_e2e::{Guard, LabConfig, net, procs};

fn lab_namespaces() -> Vec<String> {
    net::existing_namespaces()
        .unwrap()
        .into_iter()
        .filter(|n| is_lab_namespace(n))
        .collect()
}

fn recorded() -> Vec<procs::ProcId> {
    let state = State::load(&Paths::from_build()).unwrap();
    state.procs.values().filter_map(|p| p.id).collect()
}

#[test]
fn down_leaves_nothing_and_up_cleans_what_a_crash_left() {
    let first = Guard::start(LabConfig::default()).unwrap();
    let left = recorded();
    assert!(
        left.iter().filter(|id| procs::alive(**id)).count() >= 10,
        "a running lab: {left:?}"
    );
    // The guard dies without tearing down, as if the test run had been killed.
    first.abandon().unwrap();
    assert_eq!(lab_namespaces().len(), 6, "the crashed lab is still there");

    let second = Guard::start(LabConfig::default()).unwrap();
    let stale: Vec<_> = left.iter().filter(|id| procs::alive(**id)).collect();
    assert!(
        stale.is_empty(),
        "up stopped the old lab's processes: {stale:?} still run"
    );
    let running = recorded();
    second.shutdown().unwrap();

    assert_eq!(
        lab_namespaces(),
        Vec::<String>::new(),
        "no lab namespace after down"
    );
    let survivors: Vec<String> = running
        .iter()
        .filter(|id| procs::alive(**id))
        .map(|id| format!("{} {}", id.pid, procs::cmdline(id.pid)))
        .collect();
    assert!(
        survivors.is_empty(),
        "no lab process after down: {survivors:?}"
    );
    assert!(!Paths::from_build().dir.exists(), ".lab/ is gone");
}
