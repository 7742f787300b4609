//! The statistics against scipy and statsmodels (fixture from parity/generate.py):
//! relative difference at most 1e-6 for every statistic and p-value, including ties,
//! missing rows and short series.

use cashtag_stats::{granger, pearson, spearman};
use serde_json::Value;

fn close(ours: f64, theirs: f64) -> bool {
    if ours == theirs {
        return true;
    }
    let scale = ours.abs().max(theirs.abs());
    // p-values below 1e-300 are zero to both.
    scale < 1e-300 || (ours - theirs).abs() <= 1e-6 * scale
}

#[test]
fn matches_scipy_and_statsmodels() {
    let fixture: Value = serde_json::from_str(include_str!("../parity/reference.json")).unwrap();
    let mut checked = 0;
    let mut failures = Vec::new();
    for c in fixture["cases"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let pairs: Vec<(f64, f64)> = c["x"]
            .as_array()
            .unwrap()
            .iter()
            .zip(c["y"].as_array().unwrap())
            .filter_map(|(a, b)| Some((a.as_f64()?, b.as_f64()?)))
            .collect();
        let (x, y): (Vec<f64>, Vec<f64>) = pairs.into_iter().unzip();
        // For a perfect correlation the p-value hangs on the last bit of r (scipy gets
        // r = 1 − 2⁻⁵³ where the exact answer is 1): both sides are then below 1e-50.
        let mut check_r = |what: String, ours: f64, theirs: f64, r: f64| {
            checked += 1;
            let ok = if r.abs() >= 1.0 - 1e-12 && what.ends_with(" p") {
                ours < 1e-50 && theirs < 1e-50
            } else {
                close(ours, theirs)
            };
            if !ok {
                failures.push(format!("{name}: {what}: cashtag {ours:e}, reference {theirs:e}"));
            }
        };
        let p = pearson(&x, &y);
        let s = spearman(&x, &y);
        check_r("pearson p".into(), p.p, c["pearson"][1].as_f64().unwrap(), p.r);
        check_r("spearman p".into(), s.p, c["spearman"][1].as_f64().unwrap(), s.r);
        check_r("pearson r".into(), p.r, c["pearson"][0].as_f64().unwrap(), 0.0);
        check_r("spearman r".into(), s.r, c["spearman"][0].as_f64().unwrap(), 0.0);
        let max_lag = c["max_lag"].as_u64().unwrap() as usize;
        for (label, ours) in [("x_causes_y", granger(&y, &x, max_lag)), ("y_causes_x", granger(&x, &y, max_lag))] {
            let theirs = c[label].as_array().unwrap();
            assert_eq!(ours.len(), theirs.len(), "{name} {label}: lags computed");
            for (o, t) in ours.iter().zip(theirs) {
                assert_eq!(o.df_denom as u64, t["df_denom"].as_u64().unwrap(), "{name} {label} lag {}", o.lag);
                assert_eq!(o.df_num as u64, t["df_num"].as_u64().unwrap());
                check_r(format!("{label} lag {} F", o.lag), o.f, t["f"].as_f64().unwrap(), 0.0);
                check_r(format!("{label} lag {} p", o.lag), o.p, t["p"].as_f64().unwrap(), 0.0);
            }
        }
    }
    println!("{checked} numbers compared with scipy {} / statsmodels {}", fixture["scipy"], fixture["statsmodels"]);
    assert!(checked > 300);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
