//! Spans of time as people type them on a command line: `90s`, `15m`, `1h`, `2d`, `1w`,
//! or plain seconds. One parser for every command (`cashtag-log --since`, `cashtagctl
//! --wait`/`--for`/`--timeout`, the study's `--interval`), so they all read the same.

use chrono::TimeDelta;

/// A span that does not parse, with the text and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SpanError(String);

impl crate::exit::ExitStatus for SpanError {
    fn exit_code(&self) -> u8 {
        crate::exit::CONFIG
    }
}

/// Parses `<n>` (seconds) or `<n><unit>` with unit `s`, `m`, `h`, `d` or `w`; never negative.
pub fn parse(s: &str) -> Result<TimeDelta, SpanError> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num.parse().map_err(|_| SpanError(format!("{s:?} is not a span like 30s, 15m, 1h, 2d")))?;
    let span = match unit {
        "" | "s" => TimeDelta::try_seconds(n),
        "m" => TimeDelta::try_minutes(n),
        "h" => TimeDelta::try_hours(n),
        "d" => TimeDelta::try_days(n),
        "w" => TimeDelta::try_weeks(n),
        _ => return Err(SpanError(format!("{s:?}: unit must be s, m, h, d or w"))),
    };
    span.ok_or_else(|| SpanError(format!("{s:?} is too long")))
}

/// [`parse`], and the span must be longer than zero.
pub fn parse_positive(s: &str) -> Result<TimeDelta, SpanError> {
    let span = parse(s)?;
    if span <= TimeDelta::zero() {
        return Err(SpanError(format!("{:?} must be positive", s.trim())));
    }
    Ok(span)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans() {
        assert_eq!(parse_positive("90s").unwrap(), TimeDelta::seconds(90));
        assert_eq!(parse_positive("2d").unwrap(), TimeDelta::days(2));
        assert!(parse_positive("1y").is_err());
        assert!(parse_positive("h").is_err());
        assert!(parse_positive("0m").is_err());
    }

    #[test]
    fn plain_seconds_and_zero_where_allowed() {
        assert_eq!(parse("120").unwrap(), TimeDelta::seconds(120));
        assert_eq!(parse("0").unwrap(), TimeDelta::zero());
        assert_eq!(parse(" 1w ").unwrap(), TimeDelta::weeks(1));
        assert!(parse("-5m").is_err());
        assert!(parse("99999999999999w").is_err());
    }
}
