//! Prints signals, prices and trade counts for the cross-process determinism test.
//! Usage: sim_dump SEED TICKER FIRST_MINUTE COUNT
use cashtag_sim::{Sim, SimParams};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let sim = Sim::new(SimParams { seed: a[1].parse().unwrap(), ..Default::default() });
    let first: i64 = a[3].parse().unwrap();
    for m in first..first + a[4].parse::<i64>().unwrap() {
        let trades = sim.trades(&a[2], m);
        println!(
            "{m} {:.17e} {:.17e} {} {:?}",
            sim.signal(&a[2], m),
            sim.price(&a[2], m),
            trades.len(),
            trades.last().map(|t| (t.price, t.size))
        );
    }
}
