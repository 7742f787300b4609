//! Timestamps that are RFC 3339 strings in JSON and native dates in BSON.
//!
//! Records travel as JSON (Kinesis, Redis streams, files) and are stored in MongoDB. In
//! JSON a timestamp is an RFC 3339 string with milliseconds; in BSON it is a BSON date, so
//! that MongoDB range queries and TTL indexes work. Use with `#[serde(with = "...")]`.

use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Formats an instant the way cashtag writes it everywhere: `2026-11-27T14:30:00.000Z`.
pub fn rfc3339(t: &DateTime<Utc>) -> String {
    let mut buf = [0u8; 24];
    match format_millis(t, &mut buf) {
        Some(s) => s.to_string(),
        None => t.to_rfc3339_opts(SecondsFormat::Millis, true),
    }
}

/// [`rfc3339`] into a buffer, without allocating: every record carries two timestamps,
/// and the journal and Kinesis write them all. `None` for what the fixed layout cannot
/// show (years outside 0–9999, a leap second), which chrono then formats.
fn format_millis<'b>(t: &DateTime<Utc>, buf: &'b mut [u8; 24]) -> Option<&'b str> {
    let (year, nanos) = (t.year(), t.nanosecond());
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        return None;
    }
    let mut put = |at: usize, value: u32, digits: usize| {
        let mut v = value;
        for i in (0..digits).rev() {
            buf[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, year as u32, 4);
    put(5, t.month(), 2);
    put(8, t.day(), 2);
    put(11, t.hour(), 2);
    put(14, t.minute(), 2);
    put(17, t.second(), 2);
    put(20, nanos / 1_000_000, 3);
    for (at, sep) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':'), (19, b'.'), (23, b'Z')] {
        buf[at] = sep;
    }
    std::str::from_utf8(buf).ok()
}

/// Parses an RFC 3339 instant. The layout cashtag and most providers write —
/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z` — is read directly; anything else (an offset, a
/// leap second) goes to chrono, so the two always agree.
pub fn parse_rfc3339(s: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    match parse_utc_fast(s.as_bytes()) {
        Some(t) => Ok(t),
        None => DateTime::parse_from_rfc3339(s).map(|d| d.with_timezone(&Utc)),
    }
}

/// `#[serde(deserialize_with = "cashtag_core::time::deserialize_lenient")]`: a provider's
/// timestamp read as chrono's own `Deserialize` reads it (RFC 3339, leniently: a space
/// for the `T`, any offset), with the common `...Z` layout read directly.
pub fn deserialize_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    struct Lenient;
    impl serde::de::Visitor<'_> for Lenient {
        type Value = DateTime<Utc>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an RFC 3339 timestamp")
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
            match parse_utc_fast(s.as_bytes()) {
                Some(t) => Ok(t),
                None => s.parse::<DateTime<chrono::FixedOffset>>().map(|d| d.with_timezone(&Utc)).map_err(E::custom),
            }
        }
    }
    d.deserialize_str(Lenient)
}

fn parse_utc_fast(b: &[u8]) -> Option<DateTime<Utc>> {
    if b.len() < 20 || b.len() > 30 || *b.last()? != b'Z' {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |n, &c| c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0')))
    };
    let seps = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if seps.iter().any(|&(at, c)| b[at] != c) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let nanos = match &b[19..b.len() - 1] {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            num(20, 20 + digits.len())? * 10u32.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    if second > 59 {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(year as i32, month, day)?;
    Some(date.and_hms_nano_opt(hour, minute, second, nanos)?.and_utc())
}

fn from_str<E: serde::de::Error>(s: &str) -> Result<DateTime<Utc>, E> {
    parse_rfc3339(s).map_err(|e| E::custom(format!("bad timestamp {s:?}: {e}")))
}

fn from_bson<E: serde::de::Error>(value: bson::Bson) -> Result<DateTime<Utc>, E> {
    match value {
        bson::Bson::DateTime(d) => Ok(d.to_chrono()),
        bson::Bson::String(s) => from_str(&s),
        other => Err(E::custom(format!("expected a timestamp, found {other}"))),
    }
}

/// A timestamp as a human-readable format gives it: a string, read where it lies, or a
/// BSON date in extended JSON (a map, as `bson::from_document` presents it).
struct TimestampVisitor;

impl<'de> serde::de::Visitor<'de> for TimestampVisitor {
    type Value = DateTime<Utc>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an RFC 3339 timestamp")
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
        from_str(s)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        from_bson(bson::Bson::deserialize(serde::de::value::MapAccessDeserializer::new(map))?)
    }
}

/// `#[serde(with = "cashtag_core::time::ts")]` for `DateTime<Utc>`.
pub mod ts {
    use super::*;

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        if !s.is_human_readable() {
            return bson::DateTime::from_chrono(*t).serialize(s);
        }
        let mut buf = [0u8; 24];
        match format_millis(t, &mut buf) {
            Some(text) => s.serialize_str(text),
            None => s.serialize_str(&rfc3339(t)),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        if d.is_human_readable() { d.deserialize_any(TimestampVisitor) } else { from_bson(bson::Bson::deserialize(d)?) }
    }
}

/// `#[serde(with = "cashtag_core::time::ts_opt", default)]` for `Option<DateTime<Utc>>`.
pub mod ts_opt {
    use super::*;

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::ts::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        match bson::Bson::deserialize(d)? {
            bson::Bson::Null | bson::Bson::Undefined => Ok(None),
            other => from_bson(other).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Instants from year 0 to 9999 and a little beyond, at any nanosecond.
    fn instant() -> impl Strategy<Value = DateTime<Utc>> {
        (-62_200_000_000i64..253_500_000_000i64, 0u32..1_000_000_000)
            .prop_map(|(secs, nanos)| DateTime::from_timestamp(secs, nanos).expect("in range"))
    }

    proptest! {
        #[test]
        fn formatting_is_chronos(t in instant()) {
            prop_assert_eq!(rfc3339(&t), t.to_rfc3339_opts(SecondsFormat::Millis, true));
        }

        #[test]
        fn parsing_agrees_with_chrono(t in instant(), digits in 0usize..=9, offset in prop::bool::ANY) {
            let mut text = t.to_rfc3339_opts(SecondsFormat::Nanos, true);
            // Keep `digits` digits of the fraction (none: no dot).
            let dot = text.find('.').expect("nanos are written");
            text.replace_range(if digits == 0 { dot..text.len() - 1 } else { dot + 1 + digits..text.len() - 1 }, "");
            if offset {
                text = text.replace('Z', "+00:00");
            }
            let chrono = DateTime::parse_from_rfc3339(&text).map(|d| d.with_timezone(&Utc));
            prop_assert_eq!(parse_rfc3339(&text).ok(), chrono.ok(), "{}", text);
        }

        #[test]
        fn garbage_parses_as_chrono_says(text in "[0-9TZ:.+ -]{18,32}") {
            let chrono = DateTime::parse_from_rfc3339(&text).map(|d| d.with_timezone(&Utc));
            prop_assert_eq!(parse_rfc3339(&text).ok(), chrono.ok(), "{}", text);
        }
    }

    /// A provider's timestamp reads as chrono's own `Deserialize` would read it.
    #[test]
    fn lenient_reading_is_chronos() {
        #[derive(Deserialize)]
        struct Ours(#[serde(deserialize_with = "deserialize_lenient")] DateTime<Utc>);
        for text in [
            "2026-11-27T14:30:00.123456789Z",
            "2026-11-27T14:30:00Z",
            "2026-11-27 14:30:00.5Z",
            "2026-11-27T09:30:00-05:00",
            "2026-11-27t14:30:00z",
            "2026-02-30T14:30:00Z",
            "not a time",
        ] {
            let json = format!("{text:?}");
            let ours = serde_json::from_str::<Ours>(&json).ok().map(|o| o.0);
            let chrono = serde_json::from_str::<DateTime<Utc>>(&json).ok();
            assert_eq!(ours, chrono, "{text}");
        }
    }

    #[test]
    fn edge_cases_agree_with_chrono() {
        for text in [
            "2026-02-29T00:00:00Z",
            "2028-02-29T23:59:59.999999999Z",
            "2026-12-31T23:59:60Z",
            "2026-13-01T00:00:00Z",
            "2026-11-27T24:00:00Z",
            "2026-11-27T14:30:00.Z",
            "2026-11-27T14:30:00.1234567890Z",
            "2026-11-27t14:30:00z",
            "2026-11-27 14:30:00Z",
            "2026-11-27T14:30:00-05:00",
            "+2026-11-27T14:30:00Z",
            "2026-11-27T14:30:00.123Z",
        ] {
            let chrono = DateTime::parse_from_rfc3339(text).map(|d| d.with_timezone(&Utc));
            assert_eq!(parse_rfc3339(text).ok(), chrono.ok(), "{text}");
        }
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Stamped {
        #[serde(with = "ts")]
        at: DateTime<Utc>,
        #[serde(with = "ts_opt", default)]
        maybe: Option<DateTime<Utc>>,
    }

    /// JSON carries strings; a BSON document (read typed or as a `Document`) carries dates.
    #[test]
    fn round_trips_through_json_and_bson() {
        let at = DateTime::parse_from_rfc3339("2026-11-27T14:30:01.250Z").unwrap().with_timezone(&Utc);
        let v = Stamped { at, maybe: Some(at) };
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, r#"{"at":"2026-11-27T14:30:01.250Z","maybe":"2026-11-27T14:30:01.250Z"}"#);
        assert_eq!(serde_json::from_str::<Stamped>(&json).unwrap(), v);
        // As the sinks write documents (the raw serializer), read back both ways.
        let raw = bson::to_raw_document_buf(&v).unwrap();
        assert!(matches!(raw.get("at"), Ok(Some(bson::RawBsonRef::DateTime(_)))));
        assert_eq!(bson::from_slice::<Stamped>(raw.as_bytes()).unwrap(), v);
        let doc = raw.to_document().unwrap();
        assert!(matches!(doc.get("at"), Some(bson::Bson::DateTime(_))));
        assert_eq!(bson::from_document::<Stamped>(doc).unwrap(), v);
        let err = serde_json::from_str::<Stamped>(r#"{"at":"yesterday"}"#).unwrap_err().to_string();
        assert!(err.contains("bad timestamp \"yesterday\""), "{err}");
    }
}
