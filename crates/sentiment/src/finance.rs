//! The finance layer: a sentiment score for posts about stocks.
//!
//! Plain VADER reads "calls", "puts", "short", "bagholder" and 🚀 as neutral or worse,
//! and counts "shares" and "interest" as praise. This layer keeps VADER's rules —
//! negation, boosters and dampeners, ALL-CAPS, "but", "!" and "?" — and runs them over a
//! lexicon where trading vocabulary carries direction (`data/finance.toml`), after
//! cleaning what is not language: cashtags and watched tickers, URLs, @mentions, HTML
//! entities. Multi-word expressions ("buy the dip", "to zero", "bull trap") become one
//! token; elongated words ("mooooon") are matched in their short form.
//!
//! The score is VADER's normalized sum in [-1, 1]; the label is bullish at ≥ 0.05,
//! bearish at ≤ −0.05 and neutral in between (VADER's own thresholds).

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use cashtag_core::{FinanceScore, SentimentLabel};
use serde::Deserialize;

use crate::pytext::{is_py_punct, py_split, trim_end_py_punct, trim_py_punct};
use crate::vader::{Emojis, Emphasis, FxHasher, Lexicon, Vader, with_tokens};

/// Scores at or beyond this magnitude get a bullish or bearish label.
pub const LABEL_THRESHOLD: f64 = 0.05;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FinanceData {
    words: HashMap<String, f64>,
    phrases: HashMap<String, f64>,
    emoji: HashMap<String, String>,
}

const FINANCE_DATA: &str = include_str!("../data/finance.toml");

struct Phrase {
    words: Vec<String>,
    token: String,
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// The finance scorer.
pub struct Finance {
    lexicon: Lexicon,
    emojis: Emojis,
    finance_emoji: FxMap<char, String>,
    phrases: Vec<Phrase>,
    /// Indices into `phrases` by first word, longest phrase first.
    by_first_word: FxMap<Box<str>, Vec<usize>>,
    /// The shapes of the ASCII first words: bit `len` of entry `b` is set when a first
    /// word starts with byte `b` and has `len` bytes. Most tokens match no shape and skip
    /// the key and the map lookup of [`Finance::merge_phrases`].
    first_word_shapes: Box<[u64; 256]>,
}

impl Finance {
    /// Builds the finance lexicon on top of VADER's.
    pub fn new(vader: &Vader) -> Self {
        let data: FinanceData = toml::from_str(FINANCE_DATA).expect("finance.toml is valid");
        let mut lexicon = vader.lexicon.clone();
        for (word, v) in &data.words {
            if *v == 0.0 {
                lexicon.remove(word);
            } else {
                lexicon.insert(word, *v);
            }
        }
        let mut phrases: Vec<Phrase> = data
            .phrases
            .iter()
            .map(|(p, v)| {
                let words: Vec<String> = p.split(' ').map(str::to_string).collect();
                let token = format!("fin_{}", words.join("_").replace(['\'', '’'], ""));
                if *v != 0.0 {
                    lexicon.insert(&token, *v);
                }
                Phrase { words, token }
            })
            .collect();
        // Longest first, so "inverse head and shoulders" wins over "head and shoulders".
        phrases.sort_by(|a, b| b.words.len().cmp(&a.words.len()).then(a.words.cmp(&b.words)));
        let finance_emoji: FxMap<char, String> = data
            .emoji
            .iter()
            .filter_map(|(e, w)| {
                let mut c = e.chars();
                match (c.next(), c.next()) {
                    (Some(ch), None) => Some((ch, w.clone())),
                    _ => None,
                }
            })
            .collect();
        assert!(finance_emoji.keys().all(|c: &char| !c.is_ascii()), "finance emoji are not ASCII");
        let mut by_first_word: FxMap<Box<str>, Vec<usize>> = FxMap::default();
        let mut first_word_shapes = Box::new([0u64; 256]);
        for (i, p) in phrases.iter().enumerate() {
            let first = p.words[0].as_str();
            by_first_word.entry(first.into()).or_default().push(i);
            if first.is_ascii() {
                assert!((1..64).contains(&first.len()), "phrase word {first:?} is 1 to 63 bytes");
                first_word_shapes[first.as_bytes()[0] as usize] |= 1 << first.len();
            }
        }
        Finance { lexicon, emojis: vader.emojis.clone(), finance_emoji, phrases, by_first_word, first_word_shapes }
    }

    /// The finance score of a post; `tickers` are symbols not to be read as words.
    pub fn score(&self, text: &str, tickers: &[&str]) -> FinanceScore {
        // Rounded like VADER's compound: four decimals.
        let score = crate::vader::py_round(self.raw_score(text, tickers), 4);
        let label = if score >= LABEL_THRESHOLD {
            SentimentLabel::Bullish
        } else if score <= -LABEL_THRESHOLD {
            SentimentLabel::Bearish
        } else {
            SentimentLabel::Neutral
        };
        FinanceScore { score, label }
    }

    /// The unrounded score in [-1, 1].
    pub fn raw_score(&self, text: &str, tickers: &[&str]) -> f64 {
        let unescaped = html_unescape(text);
        let with_words = self.finance_emoji_words(&unescaped);
        let described = self.emojis.describe(&with_words);
        let words = self.words(&described, tickers);
        with_tokens(|tokens| {
            let mut emphasis = Emphasis::default();
            for w in &words {
                tokens.push(w, &self.lexicon);
                emphasis.add(w);
            }
            tokens.score(emphasis).3
        })
    }

    /// Cleans a post into text VADER's rules can score with the finance lexicon (what
    /// [`Finance::raw_score`] scores, as one string).
    pub fn prepare(&self, text: &str, tickers: &[&str]) -> String {
        let unescaped = html_unescape(text);
        let with_words = self.finance_emoji_words(&unescaped);
        let described = self.emojis.describe(&with_words);
        self.words(&described, tickers).join(" ")
    }

    /// Finance meanings of emoji first (VADER's descriptions come after, for the rest).
    fn finance_emoji_words<'t>(&self, text: &'t str) -> Cow<'t, str> {
        // The finance emoji are not ASCII (checked in `new`).
        if text.is_ascii() || !text.chars().any(|c| !c.is_ascii() && self.finance_emoji.contains_key(&c)) {
            return Cow::Borrowed(text);
        }
        let mut with_words = String::with_capacity(text.len() + 16);
        for c in text.chars() {
            match self.finance_emoji.get(&c) {
                Some(w) => {
                    with_words.push(' ');
                    with_words.push_str(w);
                    with_words.push(' ');
                }
                None => with_words.push(c),
            }
        }
        Cow::Owned(with_words)
    }

    /// The cleaned words of emoji-described text, with multi-word expressions merged.
    fn words<'t>(&self, described: &'t str, tickers: &[&str]) -> Vec<Cow<'t, str>> {
        let tokens: Vec<Cow<'t, str>> = py_split(described).filter_map(|raw| self.clean_token(raw, tickers)).collect();
        self.merge_phrases(tokens)
    }

    fn clean_token<'t>(&self, raw: &'t str, tickers: &[&str]) -> Option<Cow<'t, str>> {
        let lead = raw.trim_start_matches(['(', '[', '"', '\'']);
        if lead.starts_with("http://") || lead.starts_with("https://") || lead.starts_with("www.") {
            return None;
        }
        if lead.starts_with('@') && lead.len() > 1 {
            return None;
        }
        if let Some(rest) = lead.strip_prefix('$') {
            match rest.chars().next() {
                // A cashtag: the symbol is not a word. Keep trailing punctuation for emphasis.
                Some(c) if c.is_ascii_alphabetic() => {
                    let sym_len =
                        rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-')).unwrap_or(rest.len());
                    let tail = rest[sym_len..].trim_start_matches(['.', '-']);
                    return (!tail.is_empty()).then_some(Cow::Borrowed(tail));
                }
                // A money amount: keep the number.
                Some(c) if c.is_ascii_digit() => return Some(Cow::Borrowed(rest)),
                _ => {}
            }
        }
        let word = lead.strip_prefix('#').unwrap_or(lead);
        let bare = trim_py_punct(word);
        if !bare.is_empty() && tickers.contains(&bare) {
            return None;
        }
        if word.is_empty() {
            return None;
        }
        Some(self.shorten_elongated(word))
    }

    /// "mooooon" → "moon", "GOOOOO" → "GO": a run of three or more equal letters is cut
    /// to two, then one, when that makes a lexicon word.
    fn shorten_elongated<'t>(&self, word: &'t str) -> Cow<'t, str> {
        if !has_run(word, 3) {
            return Cow::Borrowed(word);
        }
        let lower = word.to_lowercase();
        let core = trim_py_punct(&lower);
        if self.lexicon.get(core).is_some() || !has_run(core, 3) {
            return Cow::Borrowed(word);
        }
        for keep in [2, 1] {
            let short = collapse_runs(core, keep);
            if self.lexicon.get(&short).is_some() {
                // Keep the original's punctuation and its capitalisation (ALL-CAPS matters).
                let upper = crate::pytext::py_isupper(word);
                let prefix: String = word.chars().take_while(|c| is_py_punct(*c)).collect();
                let suffix: String = {
                    let rev: String = word.chars().rev().take_while(|c| is_py_punct(*c)).collect();
                    rev.chars().rev().collect()
                };
                let body = if upper { short.to_uppercase() } else { short };
                return Cow::Owned(format!("{prefix}{body}{suffix}"));
            }
        }
        Cow::Borrowed(word)
    }

    /// Merges multi-word expressions into one token ("buy the dip" → `fin_buy_the_dip`),
    /// matching each word's lower-case form without its punctuation, and for elongated
    /// words also the forms with letter runs cut to two and one ("GOOOOO" matches "go").
    /// In place: a merged token takes the place of its first word.
    fn merge_phrases<'t>(&self, mut tokens: Vec<Cow<'t, str>>) -> Vec<Cow<'t, str>> {
        let mut key = String::new();
        // Tokens before `out` are final; `out <= i` always.
        let mut out = 0;
        let mut i = 0;
        while i < tokens.len() {
            if let Some(p) = self.phrase_at(&tokens, i, &mut key) {
                let n = p.words.len();
                let last = &tokens[i + n - 1];
                let trailing = &last[trim_end_py_punct(last).len()..];
                tokens[out] = Cow::Owned(format!("{}{trailing}", p.token));
                i += n;
            } else {
                tokens.swap(out, i);
                i += 1;
            }
            out += 1;
        }
        tokens.truncate(out);
        tokens
    }

    /// The longest phrase that starts at token `i`, if any (`key` is scratch space).
    fn phrase_at(&self, tokens: &[Cow<'_, str>], i: usize, key: &mut String) -> Option<&Phrase> {
        if !self.may_start_phrase(&tokens[i]) {
            return None;
        }
        phrase_key(&tokens[i], key);
        let forms: [Option<Cow<'_, str>>; 3] = if has_run(key, 3) {
            [Some(Cow::Owned(collapse_runs(key, 2))), Some(Cow::Owned(collapse_runs(key, 1))), Some(Cow::Borrowed(key))]
        } else {
            [Some(Cow::Borrowed(key)), None, None]
        };
        let candidates = forms.iter().flatten().filter_map(|k| self.by_first_word.get(&**k)).flatten();
        candidates.map(|&pi| &self.phrases[pi]).find(|p| {
            let n = p.words.len();
            i + n <= tokens.len() && (1..n).all(|k| key_matches(&tokens[i + k], &p.words[k]))
        })
    }

    /// False when `token` certainly starts no phrase: its key is ASCII, not elongated,
    /// and no first word has its first letter and length. (True means "look it up".)
    #[inline]
    fn may_start_phrase(&self, token: &str) -> bool {
        let core = trim_py_punct(token).as_bytes();
        let Some(first) = core.first() else { return false };
        if !core.is_ascii() || core.len() >= 64 || ascii_run3(core) {
            return true;
        }
        self.first_word_shapes[first.to_ascii_lowercase() as usize] & (1 << core.len()) != 0
    }
}

/// Whether ASCII text holds three equal letters in a row, case aside.
fn ascii_run3(core: &[u8]) -> bool {
    core.windows(3).any(|w| {
        let [a, b, c] = [w[0], w[1], w[2]].map(|x| x.to_ascii_lowercase());
        a == b && b == c
    })
}

/// A token's phrase key: lower case, without surrounding punctuation.
fn phrase_key(token: &str, key: &mut String) {
    key.clear();
    let core = trim_py_punct(token);
    if core.is_ascii() {
        key.push_str(core);
        key.make_ascii_lowercase();
    } else {
        key.push_str(&core.to_lowercase());
    }
}

/// Whether a token matches a phrase word, as itself or (elongated) with its runs cut.
fn key_matches(token: &str, word: &str) -> bool {
    let core = trim_py_punct(token);
    if core.is_ascii() {
        if core.len() == word.len() && core.bytes().zip(word.bytes()).all(|(a, b)| a.to_ascii_lowercase() == b) {
            return true;
        }
        // Without a run of three letters (case aside) there is no shorter form to try.
        if !ascii_run3(core.as_bytes()) {
            return false;
        }
    }
    let mut key = String::new();
    phrase_key(token, &mut key);
    key == word || (has_run(&key, 3) && (collapse_runs(&key, 2) == word || collapse_runs(&key, 1) == word))
}

fn has_run(s: &str, n: usize) -> bool {
    let mut prev = None;
    let mut run = 0;
    for c in s.chars() {
        if Some(c) == prev {
            run += 1;
            if run >= n {
                return true;
            }
        } else {
            prev = Some(c);
            run = 1;
        }
    }
    false
}

fn collapse_runs(s: &str, keep: usize) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev = None;
    let mut run = 0;
    for c in s.chars() {
        if Some(c) == prev {
            run += 1;
        } else {
            prev = Some(c);
            run = 1;
        }
        if run <= keep {
            out.push(c);
        }
    }
    out
}

/// Decodes the HTML entities that APIs leave in post text (`&#39;`, `&amp;` …).
pub fn html_unescape(s: &str) -> Cow<'_, str> {
    if !s.contains('&') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('&') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        let end = after.find(';').filter(|e| *e <= 10);
        let decoded = end.and_then(|e| {
            let ent = &after[1..e];
            let c = match ent {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some('\u{a0}'),
                _ if ent.starts_with("#x") || ent.starts_with("#X") => {
                    u32::from_str_radix(&ent[2..], 16).ok().and_then(char::from_u32)
                }
                _ if ent.starts_with('#') => ent[1..].parse().ok().and_then(char::from_u32),
                _ => None,
            };
            c.map(|c| (c, e + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &after[len..];
            }
            None => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fin() -> Finance {
        Finance::new(&Vader::new())
    }

    fn label(text: &str) -> SentimentLabel {
        fin().score(text, &["AAPL", "TSLA"]).label
    }

    #[test]
    fn trading_vocabulary_has_direction() {
        use SentimentLabel::*;
        for (text, want) in [
            ("$AAPL to the moon 🚀🚀", Bullish),
            ("loaded up on $TSLA calls", Bullish),
            ("bought puts on $AAPL", Bearish),
            ("$TSLA is going to zero", Bearish),
            ("shorting $AAPL here", Bearish),
            ("bagholding $TSLA since 2021", Bearish),
            ("buy the dip", Bullish),
            ("$AAPL earnings beat, upgraded to outperform", Bullish),
            ("$AAPL missed estimates, downgraded", Bearish),
            ("this is a bull trap", Bearish),
            ("$TSLA mooooon", Bullish),
            ("don't sell $AAPL", Bullish),
            ("$AAPL is not going to zero", Bullish),
            ("$AAPL 📉📉", Bearish),
            ("$AAPL", Neutral),
            ("AAPL TSLA", Neutral),
        ] {
            assert_eq!(label(text), want, "{text:?} → {:?}", fin().prepare(text, &["AAPL", "TSLA"]));
        }
    }

    #[test]
    fn cashtags_tickers_urls_and_entities_are_not_words() {
        let f = fin();
        assert_eq!(f.prepare("$AAPL, $BTC.X! see https://x.co/a @bob don&#39;t $5k", &["AAPL"]), ", ! see don't 5k");
        // $LOVE is a ticker here, not love.
        assert_eq!(f.score("$LOVE", &["LOVE"]).score, 0.0);
        assert_eq!(f.score("LOVE", &["LOVE"]).score, 0.0);
    }

    #[test]
    fn entities_decode() {
        assert_eq!(html_unescape("a &amp; b &#39;c&#39; &#x1F680; &bogus; &"), "a & b 'c' 🚀 &bogus; &");
    }

    #[test]
    fn phrases_match_in_any_case_and_elongated() {
        let f = fin();
        assert_eq!(f.prepare("Buy the DiIiP!", &[]), "fin_buy_the_dip!");
        assert_eq!(f.prepare("TO THE MOOOON", &[]), "fin_to_the_moon");
        assert_eq!(f.prepare("to the mo", &[]), "to the mo");
    }

    #[test]
    fn the_shape_filter_lets_every_first_word_through() {
        let f = fin();
        for p in &f.phrases {
            let w = &p.words[0];
            for token in [w.clone(), w.to_uppercase(), format!("({w}!"), format!("{w}{}", &w[w.len() - 1..].repeat(3))]
            {
                assert!(f.may_start_phrase(&token), "{token:?}");
            }
        }
        // (The filter may let a token through that starts no phrase; not these.)
        for token in ["", "!!", "apple", "Zebra", "to.", "xyz", "BUY", "moon"] {
            let key = token.to_lowercase();
            assert_eq!(f.may_start_phrase(token), f.by_first_word.contains_key(trim_py_punct(&key)), "{token:?}");
        }
    }

    #[test]
    fn runs_collapse() {
        assert_eq!(collapse_runs("mooooon", 2), "moon");
        assert_eq!(collapse_runs("gooooo", 1), "go");
        assert!(has_run("aaa", 3) && !has_run("aab", 3));
    }
}
