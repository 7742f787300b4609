//! Timestamps that are RFC 3339 strings in JSON and native dates in BSON.
//!
//! Records travel as JSON (Kinesis, Redis streams, files) and are stored in MongoDB. In
//! JSON a timestamp is an RFC 3339 string with milliseconds; in BSON it is a BSON date, so
//! that MongoDB range queries and TTL indexes work. Use with `#[serde(with = "...")]`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Formats an instant the way cashtag writes it everywhere: `2026-11-27T14:30:00.000Z`.
pub fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn from_bson<E: serde::de::Error>(value: bson::Bson) -> Result<DateTime<Utc>, E> {
    match value {
        bson::Bson::DateTime(d) => Ok(d.to_chrono()),
        bson::Bson::String(s) => DateTime::parse_from_rfc3339(&s)
            .map(|d| d.with_timezone(&Utc))
            .map_err(|e| E::custom(format!("bad timestamp {s:?}: {e}"))),
        other => Err(E::custom(format!("expected a timestamp, found {other}"))),
    }
}

/// `#[serde(with = "cashtag_core::time::ts")]` for `DateTime<Utc>`.
pub mod ts {
    use super::*;

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() { s.serialize_str(&rfc3339(t)) } else { bson::DateTime::from_chrono(*t).serialize(s) }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        from_bson(bson::Bson::deserialize(d)?)
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
