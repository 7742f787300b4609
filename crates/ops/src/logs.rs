//! Service log lines for people. The services log one JSON object per line (tracing's
//! JSON format: `timestamp`, `level`, `fields.message`, the other fields, `target`);
//! shown as `2026-12-02 02:40:11.123 INFO  message key=value`, each line after its
//! service's name, so several services' logs read as one.

use serde_json::Value;

use crate::engine::LogLine;

/// How lines are shown.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rendering {
    /// Keep each line's text as the service wrote it.
    pub raw: bool,
    /// No `service |` before each line.
    pub no_prefix: bool,
    /// The width the service names are padded to.
    pub prefix_width: usize,
}

/// A JSON log line made readable; none when the line is not one (it is shown as it is).
pub fn readable(text: &str) -> Option<String> {
    let v: Value = serde_json::from_str(text.trim()).ok()?;
    let obj = v.as_object()?;
    let level = obj.get("level")?.as_str()?;
    let ts = obj
        .get("timestamp")
        .and_then(Value::as_str)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc).format("%Y-%m-%d %H:%M:%S%.3f").to_string())
        .unwrap_or_default();
    let empty = serde_json::Map::new();
    let fields = obj.get("fields").and_then(Value::as_object).unwrap_or(&empty);
    let message = fields.get("message").map(plain).unwrap_or_default();
    let mut out = format!("{ts} {level:<5} {message}");
    for (k, v) in fields {
        if k == "message" {
            continue;
        }
        // An event's structured fields arrive as one JSON string: shown as their pairs.
        match v.as_str().and_then(|s| serde_json::from_str::<serde_json::Map<String, Value>>(s).ok()) {
            Some(inner) => {
                for (k, v) in &inner {
                    out.push_str(&format!(" {k}={}", quoted(v)));
                }
            }
            None => out.push_str(&format!(" {k}={}", quoted(v))),
        }
    }
    // Top-level extras (a flattened event's fields, a span) after the fields.
    for (k, v) in obj {
        if !matches!(k.as_str(), "timestamp" | "level" | "fields" | "target" | "threadName" | "threadId") {
            out.push_str(&format!(" {k}={}", quoted(v)));
        }
    }
    Some(out.trim_start().to_string())
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A value as `key=value`: strings with spaces are quoted.
fn quoted(v: &Value) -> String {
    match v {
        Value::String(s) if s.is_empty() || s.contains(char::is_whitespace) || s.contains('"') => {
            format!("{s:?}")
        }
        other => plain(other),
    }
}

/// One line as `cashtagctl logs` prints it.
pub fn render(line: &LogLine, how: &Rendering) -> String {
    let text = if how.raw {
        line.text.clone()
    } else {
        readable(&line.text).unwrap_or_else(|| match line.at {
            Some(t) => format!("{} {}", t.format("%Y-%m-%d %H:%M:%S%.3f"), line.text),
            None => line.text.clone(),
        })
    };
    if how.no_prefix { text } else { format!("{:<w$} | {text}", line.service, w = how.prefix_width) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tracing_json_line_reads_as_a_sentence() {
        let line = r#"{"timestamp":"2026-12-02T02:40:11.123456Z","level":"INFO","fields":{"message":"sink down","sink":"mongo","error":"connection refused (os error 111)","attempt":3},"target":"cashtag_sinks::delivery"}"#;
        assert_eq!(
            readable(line).unwrap(),
            r#"2026-12-02 02:40:11.123 INFO  sink down sink=mongo error="connection refused (os error 111)" attempt=3"#
        );
    }

    #[test]
    fn an_events_fields_are_shown_as_pairs() {
        let line = r#"{"timestamp":"2026-12-02T03:19:09.453Z","level":"INFO","fields":{"message":"kinesis_write switched off","code":"flag.switched","fields":"{\"flag\":\"kinesis_write\",\"value\":false}"},"target":"cashtag_bus"}"#;
        assert_eq!(
            readable(line).unwrap(),
            "2026-12-02 03:19:09.453 INFO  kinesis_write switched off code=flag.switched flag=kinesis_write value=false"
        );
    }

    #[test]
    fn other_lines_are_shown_as_they_are_with_the_engines_time() {
        assert_eq!(readable("plain text"), None);
        assert_eq!(readable(r#"{"no":"level"}"#), None);
        let l = LogLine {
            service: "mongo".into(),
            at: Some("2026-12-02T02:40:11.5Z".parse().unwrap()),
            stderr: false,
            text: "waiting for connections".into(),
        };
        let how = Rendering { prefix_width: 8, ..Default::default() };
        assert_eq!(render(&l, &how), "mongo    | 2026-12-02 02:40:11.500 waiting for connections");
        let raw = Rendering { raw: true, no_prefix: true, prefix_width: 0 };
        assert_eq!(render(&l, &raw), "waiting for connections");
    }
}
