//! The simulation's CI seeds: each must hold every invariant, and together they must
//! have exercised what the simulation is for (reorgs, partitions, crashes inside a
//! write, every kind of cheat caught). `TB_SIM_SEED=N` runs that seed alone.

use tb_sim::{run, Report, SimConfig};

/// The seeds CI runs.
pub const CI_SEEDS: std::ops::RangeInclusive<u64> = 1..=6;

fn seeds() -> Vec<u64> {
    match std::env::var("TB_SIM_SEED") {
        Ok(s) => vec![s.parse().expect("TB_SIM_SEED is a u64")],
        Err(_) => CI_SEEDS.collect(),
    }
}

#[test]
fn every_ci_seed_holds_every_invariant() {
    let mut reports: Vec<Report> = Vec::new();
    for seed in seeds() {
        match run(SimConfig::new(seed)) {
            Ok(r) => {
                eprintln!("{r}");
                reports.push(r);
            }
            Err(v) => panic!("{v}"),
        }
    }
    let sum = |f: fn(&Report) -> u64| reports.iter().map(f).sum::<u64>();
    assert!(sum(|r| r.reorgs) > 0, "no reorganisation happened");
    assert!(sum(|r| r.partitions) > 0, "no partition happened");
    assert!(sum(|r| r.crashes_mid_write) > 0, "no crash inside a write");
    assert!(
        sum(|r| r.reexecuted_at_restart) > 0,
        "no restart re-executed a block"
    );
    assert!(sum(|r| r.dropped) > 0 && sum(|r| r.duplicated) > 0);
    assert!(sum(|r| r.forgeries_refused) > 0, "no forgery refused");
    assert!(
        sum(|r| r.alternates_promoted) > 0,
        "no pool promoted an alternate"
    );
    assert!(
        sum(|r| r.held_relayed) > 0,
        "no pool relayed a transaction held for a nonce gap"
    );
    assert!(sum(|r| r.lying_challenges_lost) > 0, "no lying challenge");
    assert!(
        sum(|r| r.verifier_challenges_won) > 0,
        "no verifier challenge won"
    );
    for kind in [
        "corrupting provider/LostDispute",
        "lazy provider/",
        "withholding provider/WithheldData",
    ] {
        assert!(
            reports
                .iter()
                .any(|r| r.caught.keys().any(|k| k.contains(kind))),
            "no {kind} cheat caught in {:?}",
            reports.iter().map(|r| &r.caught).collect::<Vec<_>>()
        );
    }
}

#[test]
fn a_seed_replays_exactly() {
    let a = run(SimConfig::new(11)).expect("seed 11 holds");
    let b = run(SimConfig::new(11)).expect("seed 11 holds");
    assert_eq!(a, b, "the same seed ran differently");
    let c = run(SimConfig::new(12)).expect("seed 12 holds");
    assert_ne!(a, c, "two seeds ran the same");
}
