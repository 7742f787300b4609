//! Python string semantics that VADER depends on, reproduced exactly: `str.split()` and
//! `str.strip()` whitespace, `str.strip(string.punctuation)`, `str.isupper()`.
//!
//! VADER's results hinge on these details (a token's punctuation, its case), so they are
//! implemented from CPython's definitions rather than approximated with Rust's.

/// `str.isspace()` for one character: CPython's whitespace set.
pub fn is_py_space(c: char) -> bool {
    matches!(
        c,
        '\u{9}'..='\u{d}'
            | '\u{1c}'..='\u{20}'
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

/// `str.strip()`.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

/// `str.split()`.
pub fn py_split(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_py_space).filter(|t| !t.is_empty())
}

/// `string.punctuation`.
pub fn is_py_punct(c: char) -> bool {
    c.is_ascii_punctuation()
}

/// `str.strip(string.punctuation)`, on bytes: punctuation is ASCII, and an ASCII byte
/// never occurs inside a multi-byte character.
pub fn trim_py_punct(s: &str) -> &str {
    let b = s.as_bytes();
    let start = b.iter().position(|c| !c.is_ascii_punctuation()).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !c.is_ascii_punctuation()).map_or(start, |e| e + 1);
    &s[start..end]
}

/// `str.rstrip(string.punctuation)`, on bytes.
pub fn trim_end_py_punct(s: &str) -> &str {
    let b = s.as_bytes();
    &s[..b.iter().rposition(|c| !c.is_ascii_punctuation()).map_or(0, |e| e + 1)]
}

/// Titlecase letters (general category Lt), which `str.isupper()` treats like lower case.
fn is_titlecase(c: char) -> bool {
    matches!(
        c,
        '\u{1c5}' | '\u{1c8}' | '\u{1cb}' | '\u{1f2}'
            | '\u{1f88}'..='\u{1f8f}'
            | '\u{1f98}'..='\u{1f9f}'
            | '\u{1fa8}'..='\u{1faf}'
            | '\u{1fbc}'
            | '\u{1fcc}'
            | '\u{1ffc}'
    )
}

/// `str.isupper()`: at least one cased character, and no lower-case or title-case one.
pub fn py_isupper(s: &str) -> bool {
    if s.is_ascii() {
        let b = s.as_bytes();
        return !b.iter().any(u8::is_ascii_lowercase) && b.iter().any(u8::is_ascii_uppercase);
    }
    let mut cased = false;
    for c in s.chars() {
        if c.is_lowercase() || is_titlecase(c) {
            return false;
        }
        if c.is_uppercase() {
            cased = true;
        }
    }
    cased
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_semantics() {
        assert_eq!(py_split(" a\u{a0}b\u{1f}c\u{200b}d ").collect::<Vec<_>>(), vec!["a", "b", "c\u{200b}d"]);
        assert_eq!(py_strip("\u{3000} x \u{85}"), "x");
        assert!(py_isupper("WOW!!"));
        assert!(py_isupper("$AAPL"));
        assert!(!py_isupper("123"));
        assert!(!py_isupper("Wow"));
        assert!(!py_isupper("A\u{1c5}"));
        assert!(py_isupper("ÉTÉ!"));
        assert!(!py_isupper("Été"));
    }

    /// The byte scanners agree with the character definitions they replace.
    #[test]
    fn byte_scanners_match_the_definitions() {
        for t in ["", "!!", "...a...", "'quoted'", "(é)", "x", "¡hola!", "a!b", "!é!"] {
            assert_eq!(trim_py_punct(t), t.trim_matches(is_py_punct), "{t:?}");
            assert_eq!(trim_end_py_punct(t), t.trim_end_matches(is_py_punct), "{t:?}");
        }
    }
}
