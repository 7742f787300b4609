//! Simulated posts and simulated prices share the latent signal: the finance sentiment of
//! the posts of a minute correlates with the price return `lead` minutes later when an
//! effect is planted, and not at all when its strength is 0.

use cashtag_sentiment::Scorer;
use cashtag_sim::{Sim, SimParams, minute_index};

fn sentiment_vs_later_return(strength: f64) -> f64 {
    let params = SimParams { strength, posts_per_minute: 2.0, ..Default::default() };
    let lead = params.lead_minutes;
    let sim = Sim::new(params);
    let scorer = Scorer::new();
    let m0 = minute_index("2026-11-24T14:30:00Z".parse().unwrap());
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for t in ["AAPL", "MSFT", "NVDA", "TSLA", "AMZN", "META"] {
        for m in m0..m0 + 1_500 {
            let posts = sim.posts(t, m, &[]);
            if posts.is_empty() {
                continue;
            }
            let mean = posts.iter().map(|p| scorer.finance(&p.text, &[t]).score).sum::<f64>() / posts.len() as f64;
            xs.push(mean);
            ys.push(sim.minute_return(t, m + lead));
        }
    }
    let n = xs.len() as f64;
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let cov: f64 = xs.iter().zip(&ys).map(|(a, b)| (a - mx) * (b - my)).sum();
    let vx: f64 = xs.iter().map(|a| (a - mx).powi(2)).sum();
    let vy: f64 = ys.iter().map(|b| (b - my).powi(2)).sum();
    cov / (vx * vy).sqrt()
}

#[test]
fn planted_lead_shows_and_no_effect_shows_nothing() {
    // About 9,000 ticker-minutes with posts: the standard error of r is about 0.01.
    let planted = sentiment_vs_later_return(0.5);
    let none = sentiment_vs_later_return(0.0);
    println!("r planted = {planted:.4}, r none = {none:.4}");
    assert!(planted > 0.08, "planted effect: r = {planted}");
    assert!(none.abs() < 0.035, "no effect: r = {none}");
}
