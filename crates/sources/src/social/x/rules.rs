//! Filtered-stream rules: built from the watchlist and synchronized with X.

use std::collections::HashSet;
use std::time::Duration;

use cashtag_core::{Ticker, catalog};
use serde::Deserialize;
use serde_json::json;

use super::{XConfig, XStream};
use crate::SourceCtx;

pub const RULE_TAG_PREFIX: &str = "cashtag:";

/// A rule request that failed.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("{0}")]
    Limits(String),
    #[error("{what}: {detail}")]
    Request { what: &'static str, detail: String },
}

/// The rule values (with their tags) that cover the tickers.
pub fn build_rules(tickers: &[Ticker], cfg: &XConfig) -> Result<Vec<(String, String)>, RulesError> {
    let mut suffix = String::new();
    match cfg.languages.len() {
        0 => {}
        1 => suffix.push_str(&format!(" lang:{}", cfg.languages[0])),
        _ => suffix.push_str(&format!(
            " ({})",
            cfg.languages.iter().map(|l| format!("lang:{l}")).collect::<Vec<_>>().join(" OR ")
        )),
    }
    if !cfg.include_reposts {
        suffix.push_str(" -is:retweet");
    }
    let mut rules: Vec<String> = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let render = |tags: &[String]| format!("({}){suffix}", tags.join(" OR "));
    for t in tickers {
        let tag = format!("${t}");
        let mut candidate = current.clone();
        candidate.push(tag.clone());
        if render(&candidate).len() <= cfg.rule_max_len {
            current = candidate;
        } else {
            if current.is_empty() {
                return Err(RulesError::Limits(format!(
                    "rule length limit {} is too small for {tag}",
                    cfg.rule_max_len
                )));
            }
            rules.push(render(&current));
            current = vec![tag];
        }
    }
    if !current.is_empty() {
        rules.push(render(&current));
    }
    if rules.len() > cfg.max_rules {
        return Err(RulesError::Limits(format!("{} rules needed, the limit is {}", rules.len(), cfg.max_rules)));
    }
    Ok(rules.into_iter().enumerate().map(|(i, v)| (v, format!("{RULE_TAG_PREFIX}{}", i + 1))).collect())
}

/// An existing rule.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Rule {
    pub id: String,
    pub value: String,
    #[serde(default)]
    pub tag: Option<String>,
}

/// What to delete and add to go from `existing` to `desired`. Only rules with our tag
/// prefix are ever deleted; a value present twice is deleted down to one.
pub fn plan_sync(existing: &[Rule], desired: &[(String, String)]) -> (Vec<String>, Vec<(String, String)>) {
    let want: HashSet<&str> = desired.iter().map(|(v, _)| v.as_str()).collect();
    let mut kept: HashSet<&str> = HashSet::new();
    let mut delete = Vec::new();
    for r in existing {
        let ours = r.tag.as_deref().is_some_and(|t| t.starts_with(RULE_TAG_PREFIX));
        if !ours {
            kept.insert(&r.value);
            continue;
        }
        if want.contains(r.value.as_str()) && kept.insert(&r.value) {
            continue;
        }
        delete.push(r.id.clone());
    }
    let add = desired.iter().filter(|(v, _)| !kept.contains(v.as_str())).cloned().collect();
    (delete, add)
}

impl XStream {
    /// Synchronizes the stream rules with the watchlist.
    pub async fn sync_rules(&self, ctx: &SourceCtx) -> Result<(), RulesError> {
        let tickers: Vec<Ticker> = ctx.watchlist.borrow().tickers();
        let desired = build_rules(&tickers, &self.cfg)?;
        let listing = |detail: String| RulesError::Request { what: "listing rules", detail };
        let resp = self
            .http
            .get(self.url("/2/tweets/search/stream/rules"))
            .bearer_auth(self.cfg.bearer.expose())
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .map_err(|e| listing(e.without_url().to_string()))?;
        if !resp.status().is_success() {
            return Err(listing(format!("HTTP {}", resp.status())));
        }
        #[derive(Deserialize)]
        struct Rules {
            #[serde(default)]
            data: Vec<Rule>,
        }
        let existing: Rules = resp.json().await.map_err(|e| listing(e.without_url().to_string()))?;
        let (delete, add) = plan_sync(&existing.data, &desired);
        if !delete.is_empty() {
            self.post_rules(json!({"delete": {"ids": delete}})).await?;
        }
        if !add.is_empty() {
            let body = json!({"add": add.iter().map(|(v, t)| json!({"value": v, "tag": t})).collect::<Vec<_>>()});
            let answer = self.post_rules(body).await?;
            let invalid = answer.pointer("/meta/summary/invalid").and_then(|v| v.as_u64()).unwrap_or(0);
            if invalid > 0 {
                ctx.emit_event(catalog::x_rule_invalid(invalid, answer.get("errors").cloned().unwrap_or_default()));
            }
        }
        ctx.emit_event(catalog::x_rules_synced(desired.len(), add.len(), delete.len()));
        Ok(())
    }

    async fn post_rules(&self, body: serde_json::Value) -> Result<serde_json::Value, RulesError> {
        let changing = |detail: String| RulesError::Request { what: "changing rules", detail };
        let resp = self
            .http
            .post(self.url("/2/tweets/search/stream/rules"))
            .bearer_auth(self.cfg.bearer.expose())
            .timeout(Duration::from_secs(20))
            .json(&body)
            .send()
            .await
            .map_err(|e| changing(e.without_url().to_string()))?;
        let status = resp.status();
        let v: serde_json::Value = resp.json().await.unwrap_or_default();
        if !status.is_success() {
            return Err(changing(format!("HTTP {status}: {v}")));
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cashtag_core::Secret;

    fn cfg(max: usize) -> XConfig {
        XConfig {
            api_url: String::new(),
            bearer: Secret::default(),
            rule_max_len: max,
            max_rules: 1000,
            languages: vec!["en".into()],
            include_reposts: false,
            timing: super::super::XTiming::default(),
        }
    }

    #[test]
    fn rules_pack_under_the_length_limit() {
        let tickers: Vec<Ticker> = (0..300u32)
            .map(|i| {
                Ticker::parse(&format!(
                    "A{}{}{}",
                    (b'A' + (i / 676) as u8) as char,
                    (b'A' + (i / 26 % 26) as u8) as char,
                    (b'A' + (i % 26) as u8) as char
                ))
                .unwrap()
            })
            .collect();
        let rules = build_rules(&tickers, &cfg(1024)).unwrap();
        assert!(rules.len() >= 3);
        for (v, tag) in &rules {
            assert!(v.len() <= 1024, "{}", v.len());
            assert!(v.ends_with(") lang:en -is:retweet"), "{v}");
            assert!(tag.starts_with(RULE_TAG_PREFIX));
        }
        // Every ticker exactly once.
        let all: Vec<&str> =
            rules.iter().flat_map(|(v, _)| v.split(['(', ')', ' ']).filter(|w| w.starts_with('$'))).collect();
        assert_eq!(all.len(), 300);
        let one = build_rules(&tickers[..2], &cfg(1024)).unwrap();
        assert_eq!(one[0].0, "($AAAA OR $AAAB) lang:en -is:retweet");
        assert!(build_rules(&tickers, &cfg(20)).is_err());
    }

    #[test]
    fn sync_adds_missing_deletes_stale_and_never_duplicates() {
        let r = |id: &str, v: &str, tag: Option<&str>| Rule {
            id: id.into(),
            value: v.into(),
            tag: tag.map(str::to_string),
        };
        let existing = vec![
            r("1", "A", Some("cashtag:1")),
            r("2", "A", Some("cashtag:9")),
            r("3", "OLD", Some("cashtag:2")),
            r("4", "someone else's", Some("other")),
        ];
        let desired = vec![("A".to_string(), "cashtag:1".to_string()), ("B".to_string(), "cashtag:2".to_string())];
        let (delete, add) = plan_sync(&existing, &desired);
        assert_eq!(delete, vec!["2", "3"]);
        assert_eq!(add, vec![("B".to_string(), "cashtag:2".to_string())]);
    }
}
