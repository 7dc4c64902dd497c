//! The fuzz targets' short pass (the long run is `cargo run --profile ci --example
//! fuzz`, see README "Fuzzing"): every seed and a few thousand mutants of each target,
//! none of which may panic.

#[path = "../../fuzz/targets.rs"]
mod targets;

const INPUTS: usize = 3000;

#[test]
fn every_fuzz_target_survives_a_short_pass() {
    for t in targets::TARGETS {
        let seeds = (t.seeds)();
        assert!(!seeds.is_empty(), "{} has no seeds", t.name);
        let mut rng = targets::Rng(0x5eed ^ t.name.len() as u64);
        for i in 0..INPUTS {
            let data = targets::input(t, &seeds, &mut rng, i);
            let r = std::panic::catch_unwind(|| (t.run)(&data));
            assert!(
                r.is_ok(),
                "{} panicked on input {i}: {:?}",
                t.name,
                String::from_utf8_lossy(&data[..data.len().min(400)])
            );
        }
    }
}
