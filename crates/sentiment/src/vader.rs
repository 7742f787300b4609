//! VADER, exactly as the reference implementation `vaderSentiment` 3.3.2 computes it.
//!
//! A line-by-line port of `SentimentIntensityAnalyzer.polarity_scores`, including its
//! quirks: emoji replaced by their descriptions, punctuation stripped only from tokens
//! longer than two characters, `no` as negation, `least`, `never so`, `without doubt`,
//! boosters and dampeners at distance 1–3 (scaled 1, 0.95, 0.9), ALL-CAPS emphasis only
//! when some but not all tokens are capitalised, the special-case idioms, the `but` rule
//! (with its use of `list.index`, so equal valences interact as in the original), `!` and
//! `?` emphasis, and Python's rounding. Floating-point operations happen in the same order
//! as in CPython 3.11 (plain left-to-right `sum`), so results are bit-identical.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

use crate::pytext::{py_isupper, py_split, py_strip, trim_py_punct};

pub const B_INCR: f64 = 0.293;
pub const B_DECR: f64 = -0.293;
pub const C_INCR: f64 = 0.733;
pub const N_SCALAR: f64 = -0.74;

const NEGATE: &[&str] = &[
    "aint",
    "arent",
    "cannot",
    "cant",
    "couldnt",
    "darent",
    "didnt",
    "doesnt",
    "ain't",
    "aren't",
    "can't",
    "couldn't",
    "daren't",
    "didn't",
    "doesn't",
    "dont",
    "hadnt",
    "hasnt",
    "havent",
    "isnt",
    "mightnt",
    "mustnt",
    "neither",
    "don't",
    "hadn't",
    "hasn't",
    "haven't",
    "isn't",
    "mightn't",
    "mustn't",
    "neednt",
    "needn't",
    "never",
    "none",
    "nope",
    "nor",
    "not",
    "nothing",
    "nowhere",
    "oughtnt",
    "shant",
    "shouldnt",
    "uhuh",
    "wasnt",
    "werent",
    "oughtn't",
    "shan't",
    "shouldn't",
    "uh-uh",
    "wasn't",
    "weren't",
    "without",
    "wont",
    "wouldnt",
    "won't",
    "wouldn't",
    "rarely",
    "seldom",
    "despite",
];

const BOOSTERS: &[(&str, f64)] = &[
    ("absolutely", B_INCR),
    ("amazingly", B_INCR),
    ("awfully", B_INCR),
    ("completely", B_INCR),
    ("considerable", B_INCR),
    ("considerably", B_INCR),
    ("decidedly", B_INCR),
    ("deeply", B_INCR),
    ("effing", B_INCR),
    ("enormous", B_INCR),
    ("enormously", B_INCR),
    ("entirely", B_INCR),
    ("especially", B_INCR),
    ("exceptional", B_INCR),
    ("exceptionally", B_INCR),
    ("extreme", B_INCR),
    ("extremely", B_INCR),
    ("fabulously", B_INCR),
    ("flipping", B_INCR),
    ("flippin", B_INCR),
    ("frackin", B_INCR),
    ("fracking", B_INCR),
    ("fricking", B_INCR),
    ("frickin", B_INCR),
    ("frigging", B_INCR),
    ("friggin", B_INCR),
    ("fully", B_INCR),
    ("fuckin", B_INCR),
    ("fucking", B_INCR),
    ("fuggin", B_INCR),
    ("fugging", B_INCR),
    ("greatly", B_INCR),
    ("hella", B_INCR),
    ("highly", B_INCR),
    ("hugely", B_INCR),
    ("incredible", B_INCR),
    ("incredibly", B_INCR),
    ("intensely", B_INCR),
    ("major", B_INCR),
    ("majorly", B_INCR),
    ("more", B_INCR),
    ("most", B_INCR),
    ("particularly", B_INCR),
    ("purely", B_INCR),
    ("quite", B_INCR),
    ("really", B_INCR),
    ("remarkably", B_INCR),
    ("so", B_INCR),
    ("substantially", B_INCR),
    ("thoroughly", B_INCR),
    ("total", B_INCR),
    ("totally", B_INCR),
    ("tremendous", B_INCR),
    ("tremendously", B_INCR),
    ("uber", B_INCR),
    ("unbelievably", B_INCR),
    ("unusually", B_INCR),
    ("utter", B_INCR),
    ("utterly", B_INCR),
    ("very", B_INCR),
    ("almost", B_DECR),
    ("barely", B_DECR),
    ("hardly", B_DECR),
    ("just enough", B_DECR),
    ("kind of", B_DECR),
    ("kinda", B_DECR),
    ("kindof", B_DECR),
    ("kind-of", B_DECR),
    ("less", B_DECR),
    ("little", B_DECR),
    ("marginal", B_DECR),
    ("marginally", B_DECR),
    ("occasional", B_DECR),
    ("occasionally", B_DECR),
    ("partly", B_DECR),
    ("scarce", B_DECR),
    ("scarcely", B_DECR),
    ("slight", B_DECR),
    ("slightly", B_DECR),
    ("somewhat", B_DECR),
    ("sort of", B_DECR),
    ("sorta", B_DECR),
    ("sortof", B_DECR),
    ("sort-of", B_DECR),
];

const SPECIAL_CASES: &[(&str, f64)] = &[
    ("the shit", 3.0),
    ("the bomb", 3.0),
    ("bad ass", 1.5),
    ("badass", 1.5),
    ("bus stop", 0.0),
    ("yeah right", -2.0),
    ("kiss of death", -1.5),
    ("to die for", 3.0),
    ("beating heart", 3.5),
];

/// A fast, non-cryptographic hasher for short lexicon keys (the FxHash function).
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut buf = [0u8; 8];
            buf[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(buf)).wrapping_mul(FX_SEED);
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.0 = (self.0.rotate_left(5) ^ i as u64).wrapping_mul(FX_SEED);
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(FX_SEED);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type FxBuild = BuildHasherDefault<FxHasher>;

/// What VADER's rules need to know of one lower-case word, found with one lookup: its
/// valence, its booster or dampener value, whether it negates, and which of the words
/// the rules name it is.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Word {
    pub valence: Option<f64>,
    pub booster: Option<f64>,
    pub negation: bool,
    /// Whether the word is part of a special-case idiom or a multi-word booster: only
    /// then can the idiom rule change anything.
    pub idiom: bool,
    pub tag: Tag,
}

/// The words VADER's rules look for by name ("no", "kind of", "at least", "never so",
/// "without doubt", "but"): the rules compare tags, not strings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Tag {
    #[default]
    Other,
    No,
    Or,
    Nor,
    Kind,
    Of,
    Least,
    At,
    Very,
    Never,
    So,
    This,
    Without,
    Doubt,
    But,
}

const TAGS: &[(&str, Tag)] = &[
    ("no", Tag::No),
    ("or", Tag::Or),
    ("nor", Tag::Nor),
    ("kind", Tag::Kind),
    ("of", Tag::Of),
    ("least", Tag::Least),
    ("at", Tag::At),
    ("very", Tag::Very),
    ("never", Tag::Never),
    ("so", Tag::So),
    ("this", Tag::This),
    ("without", Tag::Without),
    ("doubt", Tag::Doubt),
    ("but", Tag::But),
];

/// VADER's four scores, rounded as the reference rounds them.
pub use cashtag_core::VaderScores;

/// A sentiment lexicon: lower-case token → valence, with VADER's boosters, dampeners and
/// negation words in the same table, so a token costs one lookup. Words of up to 15 bytes
/// (nearly all, and nearly every token of a post) are keyed by their bytes in two machine
/// words: hashing and comparing a key then reads no memory beyond the key itself.
#[derive(Debug, Clone, Default)]
pub struct Lexicon {
    short: HashMap<ShortKey, Word, FxBuild>,
    long: HashMap<Box<str>, Word, FxBuild>,
}

/// A word of at most 15 bytes, zero-padded, with its length in the last byte (so a word
/// with trailing NULs never equals a shorter one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ShortKey(u64, u64);

impl ShortKey {
    fn new(word: &str) -> Option<ShortKey> {
        let bytes = word.as_bytes();
        if bytes.len() > 15 {
            return None;
        }
        // Byte by byte: a variable-length copy would be a call to memcpy.
        let (mut a, mut b) = (0u64, (bytes.len() as u64) << 56);
        for (i, &x) in bytes.iter().enumerate() {
            if i < 8 {
                a |= u64::from(x) << (8 * i);
            } else {
                b |= u64::from(x) << (8 * (i - 8));
            }
        }
        Some(ShortKey(a, b))
    }
}

impl Lexicon {
    /// Parses the `vader_lexicon.txt` format: `token<TAB>mean<TAB>...` per line.
    pub fn parse(text: &str) -> Self {
        let mut lexicon = Lexicon::default();
        lexicon.short.reserve(text.len() / 48);
        for line in text.trim_end_matches('\n').split('\n') {
            if line.is_empty() {
                continue;
            }
            let mut f = py_strip(line).split('\t');
            let (Some(word), Some(measure)) = (f.next(), f.next()) else { continue };
            let Ok(v) = measure.parse::<f64>() else { continue };
            lexicon.insert(word, v);
        }
        for (word, b) in BOOSTERS {
            lexicon.entry(word).booster = Some(*b);
        }
        for word in NEGATE {
            lexicon.entry(word).negation = true;
        }
        for (word, tag) in TAGS {
            lexicon.entry(word).tag = *tag;
        }
        for (key, _) in SPECIAL_CASES.iter().chain(BOOSTERS).filter(|(k, _)| k.contains(' ')) {
            for word in key.split(' ') {
                lexicon.entry(word).idiom = true;
            }
        }
        lexicon
    }

    fn entry(&mut self, word: &str) -> &mut Word {
        match ShortKey::new(word) {
            Some(k) => self.short.entry(k).or_default(),
            None => self.long.entry(word.into()).or_default(),
        }
    }

    #[inline]
    fn lookup(&self, lower: &str) -> Option<&Word> {
        match ShortKey::new(lower) {
            Some(k) => self.short.get(&k),
            None => self.long.get(lower),
        }
    }

    /// The valence of a lower-case word.
    pub fn get(&self, lower: &str) -> Option<f64> {
        self.lookup(lower).and_then(|w| w.valence)
    }

    /// Everything the rules need of a lower-case word (all empty for an unknown word).
    pub fn word(&self, lower: &str) -> Word {
        self.lookup(lower).copied().unwrap_or_default()
    }

    pub fn insert(&mut self, word: &str, valence: f64) {
        self.entry(word).valence = Some(valence);
    }

    /// Takes a word's valence away (it stays a booster or negation if it is one).
    pub fn remove(&mut self, word: &str) {
        let key = ShortKey::new(word);
        let w = match key {
            Some(k) => self.short.get_mut(&k),
            None => self.long.get_mut(word),
        };
        let Some(w) = w else { return };
        w.valence = None;
        if *w == Word::default() {
            match key {
                Some(k) => self.short.remove(&k),
                None => self.long.remove(word),
            };
        }
    }

    /// The number of words with a valence.
    pub fn len(&self) -> usize {
        self.short.values().chain(self.long.values()).filter(|w| w.valence.is_some()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The emoji lexicon: emoji → textual description (only single characters can match,
/// as in the reference, which looks emoji up one character at a time).
#[derive(Debug, Clone, Default)]
pub struct Emojis {
    map: HashMap<char, String, FxBuild>,
}

impl Emojis {
    pub fn parse(text: &str) -> Self {
        let mut map = HashMap::default();
        for line in text.trim_end_matches('\n').split('\n') {
            let mut f = py_strip(line).split('\t');
            let (Some(emoji), Some(desc)) = (f.next(), f.next()) else { continue };
            let mut chars = emoji.chars();
            if let (Some(c), None) = (chars.next(), chars.next()) {
                map.insert(c, desc.to_string());
            }
        }
        Emojis { map }
    }

    pub fn get(&self, c: char) -> Option<&str> {
        if c.is_ascii() && !self.map.contains_key(&c) {
            return None;
        }
        self.map.get(&c).map(String::as_str)
    }

    /// Replaces every emoji by its description, separated by spaces, as the reference does.
    pub fn describe<'t>(&self, text: &'t str) -> Cow<'t, str> {
        if text.is_ascii() || !text.chars().any(|c| !c.is_ascii() && self.map.contains_key(&c)) {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len() + 32);
        let mut prev_space = true;
        for c in text.chars() {
            match self.map.get(&c) {
                Some(desc) => {
                    if !prev_space {
                        out.push(' ');
                    }
                    out.push_str(desc);
                    prev_space = false;
                }
                None => {
                    out.push(c);
                    prev_space = c == ' ';
                }
            }
        }
        Cow::Owned(out)
    }
}

/// Multi-word keys of a table, split once: the reference joins tokens with spaces and
/// looks the string up; tokens never contain spaces, so only keys of as many words as
/// tokens can match.
fn split_keys(table: &'static [(&'static str, f64)]) -> Vec<(Vec<&'static str>, f64)> {
    table.iter().filter(|(k, _)| k.contains(' ')).map(|(k, v)| (k.split(' ').collect(), *v)).collect()
}

fn special_case(words: &[&str]) -> Option<f64> {
    static KEYS: OnceLock<Vec<(Vec<&'static str>, f64)>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| split_keys(SPECIAL_CASES));
    keys.iter().find(|(k, _)| k.as_slice() == words).map(|(_, v)| *v)
}

fn booster_phrase(words: &[&str]) -> Option<f64> {
    static KEYS: OnceLock<Vec<(Vec<&'static str>, f64)>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| split_keys(BOOSTERS));
    keys.iter().find(|(k, _)| k.as_slice() == words).map(|(_, v)| *v)
}

/// `_strip_punc_if_word`: strip ASCII punctuation unless that leaves two characters or fewer.
fn strip_punc_if_word(token: &str) -> &str {
    let stripped = trim_py_punct(token);
    if stripped.len() <= 2 || stripped.chars().nth(2).is_none() { token } else { stripped }
}

/// One token with what the rules ask of it, computed once. Its lower-case form lives in
/// the [`Tokens`] it belongs to.
#[derive(Debug, Clone, Copy)]
pub struct Token {
    lower: (u32, u32),
    pub valence: Option<f64>,
    pub upper: bool,
    /// The booster or dampener value of the word, if it is one.
    pub booster: Option<f64>,
    /// Whether the word negates (`negated([word])` of the reference: a negation word, or
    /// any word containing "n't").
    pub negation: bool,
    /// Whether the word belongs to a multi-word idiom ([`Word::idiom`]).
    pub idiom: bool,
    /// Which of the words the rules name it is ([`Tag`]).
    pub tag: Tag,
}

/// VADER's "words and emoticons" of one text, with their lower-case forms in one buffer:
/// tokenizing allocates nothing once the buffers have grown to the size of a post.
#[derive(Debug, Default)]
pub struct Tokens {
    lower: String,
    list: Vec<Token>,
    /// The valence of every token, filled by [`Tokens::score`].
    sentiments: Vec<f64>,
}

impl Tokens {
    pub fn clear(&mut self) {
        self.lower.clear();
        self.list.clear();
        self.sentiments.clear();
    }

    /// Adds one whitespace-free piece of text as VADER tokenizes it.
    pub fn push(&mut self, piece: &str, lexicon: &Lexicon) {
        let raw = strip_punc_if_word(piece);
        let start = self.lower.len();
        if raw.is_ascii() {
            self.lower.push_str(raw);
            self.lower[start..].make_ascii_lowercase();
        } else {
            self.lower.push_str(&raw.to_lowercase());
        }
        let lower = &self.lower[start..];
        let word = lexicon.word(lower);
        let negation = word.negation || (lower.as_bytes().contains(&b'\'') && lower.contains("n't"));
        self.list.push(Token {
            lower: (start as u32, self.lower.len() as u32),
            valence: word.valence,
            upper: py_isupper(raw),
            booster: word.booster,
            negation,
            idiom: word.idiom,
            tag: word.tag,
        });
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn token(&self, j: usize) -> &Token {
        &self.list[j]
    }

    /// The lower-case form of token `j`.
    pub fn low(&self, j: usize) -> &str {
        let (a, b) = self.list[j].lower;
        &self.lower[a as usize..b as usize]
    }

    /// `polarity_scores` after tokenizing, unrounded: (neg, neu, pos, compound). `emphasis`
    /// is the text's `!` and `?` count ([`Emphasis::of`]).
    pub fn score(&mut self, emphasis: Emphasis) -> (f64, f64, f64, f64) {
        let mut sentiments = std::mem::take(&mut self.sentiments);
        token_valences(self, &mut sentiments);
        but_check(self, &mut sentiments);
        let scores = score_valence_raw(&sentiments, emphasis);
        self.sentiments = sentiments;
        scores
    }
}

/// Runs `f` with this thread's token buffers (fresh ones if they are in use).
pub(crate) fn with_tokens<R>(f: impl FnOnce(&mut Tokens) -> R) -> R {
    thread_local! {
        static TOKENS: std::cell::RefCell<Tokens> = std::cell::RefCell::new(Tokens::default());
    }
    TOKENS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut tokens) => {
            tokens.clear();
            f(&mut tokens)
        }
        Err(_) => f(&mut Tokens::default()),
    })
}

/// The `!` and `?` of a text, which VADER's punctuation emphasis counts.
#[derive(Debug, Clone, Copy, Default)]
pub struct Emphasis {
    pub exclamations: usize,
    pub questions: usize,
}

impl Emphasis {
    pub fn of(text: &str) -> Self {
        let mut e = Emphasis::default();
        e.add(text);
        e
    }

    pub fn add(&mut self, text: &str) {
        for b in text.bytes() {
            self.exclamations += (b == b'!') as usize;
            self.questions += (b == b'?') as usize;
        }
    }
}

/// The valence of every token (the reference's `sentiments` list, before the `but` rule).
fn token_valences(tokens: &Tokens, sentiments: &mut Vec<f64>) {
    let n = tokens.len();
    let uppers = tokens.list.iter().filter(|t| t.upper).count();
    let cap_diff = {
        let diff = n - uppers;
        0 < diff && diff < n
    };
    sentiments.clear();
    for i in 0..n {
        if tokens.list[i].booster.is_some() {
            sentiments.push(0.0);
            continue;
        }
        if i < n - 1 && tokens.list[i].tag == Tag::Kind && tokens.list[i + 1].tag == Tag::Of {
            sentiments.push(0.0);
            continue;
        }
        sentiments.push(valence_at(tokens, i, cap_diff));
    }
}

fn scalar_inc_dec(t: &Token, valence: f64, cap_diff: bool) -> f64 {
    let Some(mut scalar) = t.booster else { return 0.0 };
    if valence < 0.0 {
        scalar *= -1.0;
    }
    if t.upper && cap_diff {
        if valence > 0.0 {
            scalar += C_INCR;
        } else {
            scalar -= C_INCR;
        }
    }
    scalar
}

fn valence_at(tokens: &Tokens, i: usize, cap_diff: bool) -> f64 {
    let n = tokens.len();
    let t = &tokens.list;
    let tag = |j: usize| t[j].tag;
    let Some(base) = t[i].valence else { return 0.0 };
    let mut valence = base;
    if tag(i) == Tag::No && i != n - 1 && t[i + 1].valence.is_some() {
        valence = 0.0;
    }
    if (i > 0 && tag(i - 1) == Tag::No)
        || (i > 1 && tag(i - 2) == Tag::No)
        || (i > 2 && tag(i - 3) == Tag::No && matches!(tag(i - 1), Tag::Or | Tag::Nor))
    {
        valence = base * N_SCALAR;
    }
    if t[i].upper && cap_diff {
        if valence > 0.0 {
            valence += C_INCR;
        } else {
            valence -= C_INCR;
        }
    }
    for start_i in 0..3 {
        if i > start_i && t[i - (start_i + 1)].valence.is_none() {
            let mut s = scalar_inc_dec(&t[i - (start_i + 1)], valence, cap_diff);
            if start_i == 1 && s != 0.0 {
                s *= 0.95;
            }
            if start_i == 2 && s != 0.0 {
                s *= 0.9;
            }
            valence += s;
            valence = negation_check(valence, tokens, start_i, i);
            if start_i == 2 {
                valence = special_idioms_check(valence, tokens, i);
            }
        }
    }
    least_check(valence, tokens, i)
}

fn least_check(mut valence: f64, tokens: &Tokens, i: usize) -> f64 {
    let t = &tokens.list;
    let tag = |j: usize| t[j].tag;
    if i > 1 && t[i - 1].valence.is_none() && tag(i - 1) == Tag::Least {
        if tag(i - 2) != Tag::At && tag(i - 2) != Tag::Very {
            valence *= N_SCALAR;
        }
    } else if i > 0 && t[i - 1].valence.is_none() && tag(i - 1) == Tag::Least {
        valence *= N_SCALAR;
    }
    valence
}

fn negation_check(mut valence: f64, tokens: &Tokens, start_i: usize, i: usize) -> f64 {
    let t = &tokens.list;
    let tag = |j: usize| t[j].tag;
    let so_this = |w: Tag| w == Tag::So || w == Tag::This;
    match start_i {
        0 => {
            if t[i - 1].negation {
                valence *= N_SCALAR;
            }
        }
        1 => {
            if tag(i - 2) == Tag::Never && so_this(tag(i - 1)) {
                valence *= 1.25;
            } else if tag(i - 2) == Tag::Without && tag(i - 1) == Tag::Doubt {
            } else if t[i - 2].negation {
                valence *= N_SCALAR;
            }
        }
        _ => {
            // `A and B or C` in the reference: (never so|this) or (so|this right before).
            if (tag(i - 3) == Tag::Never && so_this(tag(i - 2))) || so_this(tag(i - 1)) {
                valence *= 1.25;
            } else if tag(i - 3) == Tag::Without && (tag(i - 2) == Tag::Doubt || tag(i - 1) == Tag::Doubt) {
            } else if t[i - 3].negation {
                valence *= N_SCALAR;
            }
        }
    }
    valence
}

fn special_idioms_check(mut valence: f64, tokens: &Tokens, i: usize) -> f64 {
    let n = tokens.len();
    // Every sequence below is made of tokens i-3 ..= i+2; none of them in an idiom, no match.
    if !tokens.list[i - 3..(i + 3).min(n)].iter().any(|t| t.idiom) {
        return valence;
    }
    let l = |j: usize| -> &str { tokens.low(j) };
    let l = [l(i.saturating_sub(3)), l(i - 2), l(i - 1), l(i), l((i + 1).min(n - 1)), l((i + 2).min(n - 1))];
    // l[0] = i-3, l[1] = i-2, l[2] = i-1, l[3] = i, l[4] = i+1, l[5] = i+2 (when they exist)
    let onezero = [l[2], l[3]];
    let twoonezero = [l[1], l[2], l[3]];
    let twoone = [l[1], l[2]];
    let threetwoone = [l[0], l[1], l[2]];
    let threetwo = [l[0], l[1]];
    let sequences: [&[&str]; 5] = [&onezero, &twoonezero, &twoone, &threetwoone, &threetwo];
    for seq in sequences {
        if let Some(v) = special_case(seq) {
            valence = v;
            break;
        }
    }
    if n - 1 > i
        && let Some(v) = special_case(&[l[3], l[4]])
    {
        valence = v;
    }
    if n - 1 > i + 1
        && let Some(v) = special_case(&[l[3], l[4], l[5]])
    {
        valence = v;
    }
    let n_grams: [&[&str]; 3] = [&threetwoone, &threetwo, &twoone];
    for g in n_grams {
        if let Some(b) = booster_phrase(g) {
            valence += b;
        }
    }
    valence
}

/// The `but` rule of the reference, including its use of `list.index` (the first equal
/// value is the one modified).
fn but_check(tokens: &Tokens, sentiments: &mut [f64]) {
    let Some(bi) = tokens.list.iter().position(|t| t.tag == Tag::But) else { return };
    for k in 0..sentiments.len() {
        let sentiment = sentiments[k];
        let si = sentiments.iter().position(|s| *s == sentiment).expect("present");
        if si < bi {
            sentiments[si] = sentiment * 0.5;
        } else if si > bi {
            sentiments[si] = sentiment * 1.5;
        }
    }
}

fn punctuation_emphasis(e: Emphasis) -> f64 {
    let ep = e.exclamations.min(4);
    let ep_amplifier = ep as f64 * 0.292;
    let qm = e.questions;
    let qm_amplifier = if qm > 1 { if qm <= 3 { qm as f64 * 0.18 } else { 0.96 } } else { 0.0 };
    ep_amplifier + qm_amplifier
}

/// `normalize` of the reference.
pub fn normalize(score: f64) -> f64 {
    let norm = score / (score * score + 15.0).sqrt();
    norm.clamp(-1.0, 1.0)
}

/// Python's `round(x, digits)`: the exact binary value rounded half-to-even.
pub fn py_round(x: f64, digits: usize) -> f64 {
    // Fast path: scale, round, divide. The division of two exact doubles is the double
    // nearest to the decimal, as parsing it would give; the scaled value is off the exact
    // product by far less than 1e-9, so away from a tie the rounding direction is right.
    let scale = 10f64.powi(digits as i32);
    let y = x * scale;
    if y.is_finite() && y.abs() < 1e12 {
        let frac = (y - y.trunc()).abs();
        if (frac - 0.5).abs() > 1e-9 {
            return y.round() / scale;
        }
    }
    format!("{x:.digits$}").parse().expect("formatted float parses")
}

/// `score_valence`, unrounded: (neg, neu, pos, compound).
fn score_valence_raw(sentiments: &[f64], emphasis: Emphasis) -> (f64, f64, f64, f64) {
    if sentiments.is_empty() {
        return (0.0, 0.0, 0.0, 0.0);
    }
    let mut sum_s = 0.0;
    for s in sentiments {
        sum_s += *s;
    }
    let punct = punctuation_emphasis(emphasis);
    if sum_s > 0.0 {
        sum_s += punct;
    } else if sum_s < 0.0 {
        sum_s -= punct;
    }
    let compound = normalize(sum_s);
    let (mut pos_sum, mut neg_sum, mut neu_count) = (0.0f64, 0.0f64, 0u32);
    for s in sentiments {
        if *s > 0.0 {
            pos_sum += *s + 1.0;
        }
        if *s < 0.0 {
            neg_sum += *s - 1.0;
        }
        if *s == 0.0 {
            neu_count += 1;
        }
    }
    if pos_sum > neg_sum.abs() {
        pos_sum += punct;
    } else if pos_sum < neg_sum.abs() {
        neg_sum -= punct;
    }
    let total = pos_sum + neg_sum.abs() + neu_count as f64;
    ((neg_sum / total).abs(), (neu_count as f64 / total).abs(), (pos_sum / total).abs(), compound)
}

/// The VADER analyzer with the bundled lexicons.
#[derive(Debug, Clone)]
pub struct Vader {
    pub lexicon: Lexicon,
    pub emojis: Emojis,
}

const VADER_LEXICON: &str = include_str!("../data/vader_lexicon.txt");
const EMOJI_LEXICON: &str = include_str!("../data/emoji_utf8_lexicon.txt");

impl Default for Vader {
    fn default() -> Self {
        Vader::new()
    }
}

impl Vader {
    /// VADER with the lexicons of vaderSentiment 3.3.2 (bundled, MIT).
    pub fn new() -> Self {
        Vader { lexicon: Lexicon::parse(VADER_LEXICON), emojis: Emojis::parse(EMOJI_LEXICON) }
    }

    /// `polarity_scores(text)`.
    pub fn polarity_scores(&self, text: &str) -> VaderScores {
        let described = self.emojis.describe(text);
        let text = py_strip(&described);
        let (neg, neu, pos, compound) = with_tokens(|tokens| {
            for piece in py_split(text) {
                tokens.push(piece, &self.lexicon);
            }
            tokens.score(Emphasis::of(text))
        });
        VaderScores {
            neg: py_round(neg, 3),
            neu: py_round(neu, 3),
            pos: py_round(pos, 3),
            compound: py_round(compound, 4),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, neg: f64, neu: f64, pos: f64, compound: f64) {
        let s = Vader::new().polarity_scores(text);
        assert_eq!((s.neg, s.neu, s.pos, s.compound), (neg, neu, pos, compound), "{text:?}");
    }

    // Expected values printed by vaderSentiment 3.3.2 (its own demo sentences).
    #[test]
    fn reference_demo_sentences() {
        check("VADER is smart, handsome, and funny.", 0.0, 0.254, 0.746, 0.8316);
        check("VADER is smart, handsome, and funny!", 0.0, 0.248, 0.752, 0.8439);
        check("VADER is very smart, handsome, and funny.", 0.0, 0.299, 0.701, 0.8545);
        check("VADER is VERY SMART, handsome, and FUNNY.", 0.0, 0.246, 0.754, 0.9227);
        check("VADER is VERY SMART, handsome, and FUNNY!!!", 0.0, 0.233, 0.767, 0.9342);
        check("VADER is VERY SMART, uber handsome, and FRIGGIN FUNNY!!!", 0.0, 0.294, 0.706, 0.9469);
        check("VADER is not smart, handsome, nor funny.", 0.646, 0.354, 0.0, -0.7424);
        check("The book was good.", 0.0, 0.508, 0.492, 0.4404);
        check("At least it isn't a horrible book.", 0.0, 0.678, 0.322, 0.431);
        check("The book was only kind of good.", 0.0, 0.697, 0.303, 0.3832);
        check(
            "The plot was good, but the characters are uncompelling and the dialog is not great.",
            0.327,
            0.579,
            0.094,
            -0.7042,
        );
        check("Today SUX!", 0.779, 0.221, 0.0, -0.5461);
        check("Today only kinda sux! But I'll get by, lol", 0.127, 0.556, 0.317, 0.5249);
        check("Make sure you :) or :D today!", 0.0, 0.294, 0.706, 0.8633);
        check("Catch utf-8 emoji such as 💘 and 💋 and 😁", 0.0, 0.583, 0.417, 0.875);
        check("Not bad at all", 0.0, 0.513, 0.487, 0.431);
    }

    #[test]
    fn empty_and_neutral() {
        check("", 0.0, 0.0, 0.0, 0.0);
        check("   ", 0.0, 0.0, 0.0, 0.0);
        check("the table", 0.0, 1.0, 0.0, 0.0);
    }

    #[test]
    fn rounding_is_pythons() {
        // Against the slow, exact formatting path on many values.
        let mut x = 0.000_123_f64;
        for _ in 0..200_000 {
            x = (x * 1.618_033_988_7 + 0.013_7) % 1.0;
            for d in [3, 4] {
                let exact: f64 = format!("{x:.d$}").parse().unwrap();
                assert_eq!(py_round(x, d), exact, "{x} to {d}");
                assert_eq!(py_round(-x, d), -exact, "{} to {d}", -x);
            }
        }
        assert_eq!(py_round(0.0625, 3), 0.062);
        assert_eq!(py_round(0.2345, 3), 0.234);
        assert_eq!(py_round(0.43095, 4), 0.4309);
    }
}
