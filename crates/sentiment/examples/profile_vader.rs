//! Runs VADER over the parity texts a few times (for profilers such as callgrind).
fn main() {
    let texts: Vec<String> = include_str!("../parity/vader-3.3.2.jsonl")
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["text"].as_str().unwrap().to_string())
        .collect();
    let v = cashtag_sentiment::Vader::new();
    let mut sum = 0.0;
    for _ in 0..10 {
        for t in &texts {
            sum += v.polarity_scores(t).compound;
        }
    }
    println!("{sum}");
}
