//! A string that must never be printed: API keys, tokens, passwords.
//!
//! `Debug` and `Display` show `***`, so a secret inside a config struct, an error or a
//! tracing field cannot leak by accident; code that needs the value calls [`Secret::expose`].

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret value, for the one place that must send it to its provider.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "***" })
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "" } else { "***" })
    }
}

/// Percent-encodes what a URL's userinfo cannot hold.
pub fn encode_userinfo(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// The user name a URL's userinfo holds (`redis://USER:pw@host`), empty if none.
pub fn url_user(url: &str) -> &str {
    userinfo(url).map(|(_, info, _)| info.split(':').next().unwrap_or("")).unwrap_or("")
}

/// `url` with `password` (encoded) as its userinfo's password, keeping the user name:
/// `mongodb://app@h/?x` and `pw` give `mongodb://app:pw@h/?x`. `None` without `://`.
pub fn with_password(url: &str, password: &str) -> Option<String> {
    let (head, info, rest) = userinfo(url)?;
    let user = info.split(':').next().unwrap_or("");
    Some(format!("{head}{user}:{}@{rest}", encode_userinfo(password)))
}

/// (`scheme://`, userinfo without `@`, the rest after it) of a URL.
fn userinfo(url: &str) -> Option<(&str, &str, &str)> {
    let start = url.find("://")? + 3;
    let (head, after) = url.split_at(start);
    let authority_end = after.find(['/', '?', '#']).unwrap_or(after.len());
    match after[..authority_end].rfind('@') {
        Some(at) => Some((head, &after[..at], &after[at + 1..])),
        None => Some((head, "", after)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_goes_into_the_url_encoded_and_keeps_the_user() {
        let pw = "p@ss:w/rd";
        assert_eq!(with_password("redis://redis:6379", pw).unwrap(), "redis://:p%40ss%3Aw%2Frd@redis:6379");
        assert_eq!(with_password("redis://:old@redis:6379/0", "x").unwrap(), "redis://:x@redis:6379/0");
        assert_eq!(
            with_password("mongodb://cashtag@mongo:27017/?authSource=admin", "x").unwrap(),
            "mongodb://cashtag:x@mongo:27017/?authSource=admin"
        );
        assert_eq!(with_password("mongodb://app:old@a,b/db?x=@", "y").unwrap(), "mongodb://app:y@a,b/db?x=@");
        assert_eq!(url_user("mongodb://app:old@h"), "app");
        assert_eq!(url_user("mongodb://h/?x=a@b"), "");
        assert_eq!(with_password("no-scheme", "x"), None);
    }
    #[test]
    fn never_printed() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(s.expose(), "hunter2");
    }
}
