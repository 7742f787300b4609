//! Two processes with the same seed compute identical latent signals, prices and trades.

use std::process::Command;

use cashtag_sim::{Sim, SimParams, minute_index};

#[test]
fn two_processes_with_one_seed_agree_exactly() {
    let first = minute_index("2026-11-24T14:30:00Z".parse().unwrap());
    let run = || {
        let out = Command::new(cashtag_testkit::example_bin("sim_dump"))
            .args(["7", "NVDA", &first.to_string(), "390"])
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let (a, b) = (run(), run());
    assert_eq!(a.lines().count(), 390);
    assert_eq!(a, b, "two processes differ");
    // And this process agrees with both.
    let sim = Sim::new(SimParams { seed: 7, ..Default::default() });
    for line in a.lines().take(50) {
        let f: Vec<&str> = line.split(' ').collect();
        let m: i64 = f[0].parse().unwrap();
        assert_eq!(f[1].parse::<f64>().unwrap(), sim.signal("NVDA", m));
        assert_eq!(f[2].parse::<f64>().unwrap(), sim.price("NVDA", m));
    }
}
