//! The simulation catches a planted bug: with `tb_store::planted::SKIP_MARKET_UNDO` on,
//! a reorganisation forgets to undo one market record, and some CI seed must end in a
//! violation. (Its own test binary: the switch is process-wide.)

use std::sync::atomic::Ordering;
use tb_sim::{run, SimConfig};

#[test]
fn a_reorg_that_skips_one_market_undo_is_caught_within_the_ci_seeds() {
    tb_store::planted::SKIP_MARKET_UNDO.store(true, Ordering::Relaxed);
    let mut caught = None;
    for seed in 1..=6 {
        match run(SimConfig::new(seed)) {
            Ok(r) => eprintln!("not caught: {r}"),
            Err(v) => {
                caught = Some(v);
                break;
            }
        }
    }
    tb_store::planted::SKIP_MARKET_UNDO.store(false, Ordering::Relaxed);
    let v = caught.expect("the planted bug went unnoticed by every CI seed");
    eprintln!("caught: {v}");
    // The seed replays: the same violation again.
    tb_store::planted::SKIP_MARKET_UNDO.store(true, Ordering::Relaxed);
    let again = run(SimConfig::new(v.seed)).expect_err("the seed replays its violation");
    tb_store::planted::SKIP_MARKET_UNDO.store(false, Ordering::Relaxed);
    assert_eq!(again.to_string(), v.to_string());
}
