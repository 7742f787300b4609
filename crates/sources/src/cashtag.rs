//! Cashtag extraction: which watched tickers a post mentions, exactly.
//!
//! A cashtag is `$` followed by 1–5 letters (any case) and optionally a share class
//! (`$BRK.B`), not preceded by a letter or digit and not followed by one: `$BA` never
//! matches inside `$BABA`, and money amounts (`$100`, `$5k`, `$2.50`) start with a digit
//! and are never tickers. Only watchlist tickers count; each once, in order of appearance.

use std::collections::HashSet;

use cashtag_core::Ticker;

/// One cashtag candidate: the root and the optional class after a dot.
fn candidates(text: &str) -> Vec<(String, Option<String>)> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '$' {
            i += 1;
            continue;
        }
        // Not part of a word or an amount (US$5, A$AP).
        if i > 0 && chars[i - 1].is_alphanumeric() {
            i += 1;
            continue;
        }
        let start = i + 1;
        let mut j = start;
        while j < chars.len() && chars[j].is_ascii_alphabetic() {
            j += 1;
        }
        let len = j - start;
        // The tag must end here: not followed by another letter or a digit ($AAPL2).
        let ends_cleanly = j >= chars.len() || !(chars[j].is_alphanumeric() || chars[j] == '_');
        if (1..=5).contains(&len) && ends_cleanly {
            let root: String = chars[start..j].iter().collect::<String>().to_ascii_uppercase();
            let mut class = None;
            if j + 1 < chars.len() && chars[j] == '.' {
                let mut k = j + 1;
                while k < chars.len() && chars[k].is_ascii_alphabetic() {
                    k += 1;
                }
                let clen = k - (j + 1);
                let class_ends = k >= chars.len() || !(chars[k].is_alphanumeric() || chars[k] == '_');
                if (1..=2).contains(&clen) && class_ends {
                    class = Some(chars[j + 1..k].iter().collect::<String>().to_ascii_uppercase());
                }
            }
            out.push((root, class));
        }
        i = j.max(i + 1);
    }
    out
}

/// The watched tickers mentioned as exact cashtags, each once, in order of appearance.
pub fn extract(text: &str, watched: &HashSet<Ticker>) -> Vec<Ticker> {
    let mut out: Vec<Ticker> = Vec::new();
    let mut push = |t: Ticker| {
        if !out.contains(&t) {
            out.push(t);
        }
    };
    for (root, class) in candidates(text) {
        // `$BRK.B` is BRK.B; `$AAPL.` at a sentence end, or `$AAPL.Is`, is AAPL.
        if let Some(c) = &class
            && let Ok(t) = Ticker::parse(&format!("{root}.{c}"))
            && watched.contains(&t)
        {
            push(t);
            continue;
        }
        if let Ok(t) = Ticker::parse(&root)
            && watched.contains(&t)
        {
            push(t);
        }
    }
    out
}

/// Adds tickers a provider tagged explicitly (X entities, Bluesky tag facets, StockTwits
/// symbols) when they are watched; `tags` may carry a leading `$`.
pub fn merge_tags<'a>(
    mut found: Vec<Ticker>,
    tags: impl IntoIterator<Item = &'a str>,
    watched: &HashSet<Ticker>,
) -> Vec<Ticker> {
    for tag in tags {
        let sym = tag.trim_start_matches('$').to_ascii_uppercase();
        if let Ok(t) = Ticker::parse(&sym)
            && watched.contains(&t)
            && !found.contains(&t)
        {
            found.push(t);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watched(ts: &[&str]) -> HashSet<Ticker> {
        ts.iter().map(|t| Ticker::parse(t).unwrap()).collect()
    }

    fn got(text: &str) -> Vec<String> {
        let w = watched(&["BA", "C", "AAPL", "BRK.B", "TSLA", "F", "CSCO", "BABA"]);
        extract(text, &w).iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn the_tricky_cases() {
        let cases: &[(&str, &[&str])] = &[
            ("$BA is flying", &["BA"]),
            ("$BABA earnings", &["BABA"]),
            ("watching $BABA not $BA", &["BABA", "BA"]),
            ("$CSCO up", &["CSCO"]),
            ("$C and $CSCO", &["C", "CSCO"]),
            ("paid $100 for it", &[]),
            ("$5k in calls", &[]),
            ("a $2.50 premium", &[]),
            ("US$5 only", &[]),
            ("$BRK.B is cheap", &["BRK.B"]),
            ("I like $AAPL.", &["AAPL"]),
            ("$AAPL. $TSLA!", &["AAPL", "TSLA"]),
            ("$aapl lowercase counts", &["AAPL"]),
            ("$AAPL's earnings", &["AAPL"]),
            ("($TSLA)", &["TSLA"]),
            ("$AAPL $AAPL $aapl", &["AAPL"]),
            ("$AAPL2 is not a cashtag", &[]),
            ("$MSFT is not watched", &[]),
            ("AAPL without a dollar", &[]),
            ("#AAPL hashtag", &[]),
            ("$", &[]),
            ("$$AAPL", &["AAPL"]),
            ("email me at x$AAPL", &[]),
            ("$TOOLONG", &[]),
            ("$F!", &["F"]),
            ("$AAPL.Is great", &["AAPL"]),
            ("emoji $TSLA🚀", &["TSLA"]),
        ];
        for (text, want) in cases {
            assert_eq!(got(text), want.to_vec(), "{text:?}");
        }
    }

    #[test]
    fn merges_provider_tags() {
        let w = watched(&["AAPL", "TSLA"]);
        let t = merge_tags(extract("$AAPL", &w), ["$TSLA", "AAPL", "MSFT", "$bad tag"], &w);
        assert_eq!(t.iter().map(|t| t.as_str()).collect::<Vec<_>>(), ["AAPL", "TSLA"]);
    }

    proptest::proptest! {
        /// Extraction never returns a ticker that is not in the text as an exact cashtag.
        #[test]
        fn only_exact_cashtags(text in "[ $.A-Za-z0-9,!'()]{0,60}") {
            let w = watched(&["BA", "C", "AAPL", "BRK.B", "TSLA", "F", "CSCO", "BABA", "A", "AB", "ABC"]);
            for t in extract(&text, &w) {
                let tag = format!("${}", t.as_str());
                let upper = text.to_ascii_uppercase();
                let mut found = false;
                for (i, _) in upper.match_indices(&tag) {
                    let before_ok = i == 0 || !upper[..i].chars().last().unwrap().is_alphanumeric();
                    let after = &upper[i + tag.len()..];
                    let next = after.chars().next();
                    let after_ok = match next {
                        None => true,
                        Some('.') if !t.as_str().contains('.') => true,
                        Some(c) => !(c.is_alphanumeric() || c == '_'),
                    };
                    found |= before_ok && after_ok;
                }
                proptest::prop_assert!(found, "{} not an exact cashtag in {:?}", t, text);
            }
        }
    }
}
