//! The study's statistics for any two columns of a CSV file, for analysts working from
//! exports: Pearson and Spearman correlation, cross-correlation by lag, and Granger
//! causality in both directions.
//!
//! Rows where either column is empty or `NA`/`NaN`/`null`/`None` are dropped (pairwise,
//! before any statistic — as the parity fixtures do); any other non-number is an error
//! that names its row.

use std::path::Path;

use cashtag_stats::{Correlation, GrangerLag, cross_correlation, granger, pearson, spearman};
use serde::Serialize;

use crate::AnalysisError;

/// Splits CSV text (RFC 4180: quoted fields, doubled quotes, CRLF or LF) into records,
/// with the `csv` crate; rows may differ in length (a short row's missing cells count as
/// empty). A quoted field that is never closed is an error, not the rest of the file.
pub(crate) fn parse(text: &str) -> Result<Vec<Vec<String>>, String> {
    if let Some(line) = unclosed_quote(text) {
        return Err(format!("line {line}: a quoted field is never closed"));
    }
    let mut reader = ::csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text.as_bytes());
    let mut records = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| e.to_string())?;
        records.push(record.iter().map(str::to_string).collect::<Vec<_>>());
    }
    // A blank line is not a record.
    records.retain(|r| !(r.len() == 1 && r[0].is_empty()));
    Ok(records)
}

/// The line where a quoted field opens and never closes, if one does (the `csv` crate
/// would read the rest of the file into it).
fn unclosed_quote(text: &str) -> Option<usize> {
    let (mut quoted, mut field_start, mut line, mut opened_at) = (false, true, 1, 0);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
            }
            (true, '"') => quoted = false,
            (false, '"') if field_start => {
                quoted = true;
                opened_at = line;
            }
            (_, '\n') => line += 1,
            _ => {}
        }
        field_start = !quoted && (c == ',' || c == '\n');
    }
    quoted.then_some(opened_at)
}

/// Appends one CSV field, quoted when it must be.
pub fn push_field(out: &mut String, value: &str) {
    if value.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

fn is_missing(v: &str) -> bool {
    matches!(v.trim(), "" | "NA" | "N/A" | "NaN" | "nan" | "null" | "NULL" | "None")
}

/// The two columns' complete pairs, and how many rows were dropped.
pub(crate) fn columns(records: &[Vec<String>], x: &str, y: &str) -> Result<(Vec<f64>, Vec<f64>, usize), String> {
    let header = records.first().ok_or("the file is empty")?;
    let find = |name: &str| {
        header
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| format!("no column {name:?}; the columns are {}", header.join(", ")))
    };
    let (xi, yi) = (find(x)?, find(y)?);
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    let mut dropped = 0;
    for (row, r) in records.iter().enumerate().skip(1) {
        let get = |i: usize, name: &str| -> Result<Option<f64>, String> {
            let v = r.get(i).map(String::as_str).unwrap_or("");
            if is_missing(v) {
                return Ok(None);
            }
            v.trim()
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map(Some)
                .ok_or_else(|| format!("row {} (line {}), column {name:?}: {v:?} is not a number", row, row + 1))
        };
        match (get(xi, x)?, get(yi, y)?) {
            (Some(a), Some(b)) => {
                xs.push(a);
                ys.push(b);
            }
            _ => dropped += 1,
        }
    }
    Ok((xs, ys, dropped))
}

/// Every statistic for one pair of columns.
#[derive(Debug, Clone, Serialize)]
pub struct PairStats {
    pub x: String,
    pub y: String,
    /// Complete rows used.
    pub n: usize,
    /// Rows dropped because a value was missing.
    pub dropped: usize,
    pub pearson: Correlation,
    pub spearman: Correlation,
    /// corr(x_t, y_{t+lag}); positive lag = x first.
    pub cross_correlation: Vec<(i64, Correlation)>,
    /// Does x's past improve the forecast of y? (and the reverse)
    pub granger_x_to_y: Vec<GrangerLag>,
    pub granger_y_to_x: Vec<GrangerLag>,
}

pub fn pair_stats(
    x_name: &str,
    y_name: &str,
    x: &[f64],
    y: &[f64],
    dropped: usize,
    max_lag: usize,
) -> Result<PairStats, String> {
    if x.len() < 3 {
        return Err(format!("{} complete rows; at least 3 are needed", x.len()));
    }
    Ok(PairStats {
        x: x_name.into(),
        y: y_name.into(),
        n: x.len(),
        dropped,
        pearson: pearson(x, y),
        spearman: spearman(x, y),
        cross_correlation: cross_correlation(x, y, max_lag),
        granger_x_to_y: granger(y, x, max_lag),
        granger_y_to_x: granger(x, y, max_lag),
    })
}

/// Reads the file and computes the statistics.
pub fn stats_for_file(path: &Path, x: &str, y: &str, max_lag: usize) -> Result<PairStats, AnalysisError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| AnalysisError::Io { path: path.display().to_string(), source })?;
    let records = parse(&text).map_err(|e| AnalysisError::Input(format!("{}: {e}", path.display())))?;
    let (xs, ys, dropped) =
        columns(&records, x, y).map_err(|e| AnalysisError::Input(format!("{}: {e}", path.display())))?;
    pair_stats(x, y, &xs, &ys, dropped, max_lag).map_err(|e| AnalysisError::Input(format!("{}: {e}", path.display())))
}

/// A plain-text table of the statistics.
pub fn render(s: &PairStats) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(o, "x = {}, y = {}: {} complete rows ({} dropped for missing values)", s.x, s.y, s.n, s.dropped);
    let _ = writeln!(o, "Pearson  r = {:>9.6}  p = {:.6e}", s.pearson.r, s.pearson.p);
    let _ = writeln!(o, "Spearman ρ = {:>9.6}  p = {:.6e}", s.spearman.r, s.spearman.p);
    let _ = writeln!(
        o,
        "\ncross-correlation corr(x_t, y_t+lag), positive lag = x first\n  lag          r            p      n"
    );
    for (k, c) in &s.cross_correlation {
        let _ = writeln!(o, "  {k:>3} {:>10.6} {:>12.4e} {:>6}", c.r, c.p, c.n);
    }
    for (title, rows) in [("Granger: x → y", &s.granger_x_to_y), ("Granger: y → x", &s.granger_y_to_x)] {
        let _ = writeln!(o, "\n{title} (ssr F-test)\n  lag          F            p  df");
        for g in rows.iter() {
            let _ = writeln!(o, "  {:>3} {:>10.4} {:>12.4e}  ({}, {})", g.lag, g.f, g.p, g.df_num, g.df_denom);
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quotes_and_line_endings() {
        let r = parse("a,b,\"c, d\"\r\n1,\"say \"\"hi\"\"\",\"two\nlines\"\n\n").unwrap();
        assert_eq!(r, vec![vec!["a", "b", "c, d"], vec!["1", "say \"hi\"", "two\nlines"]]);
        assert!(parse("a,\"b\n").unwrap_err().contains("never closed"));
        let mut s = String::new();
        push_field(&mut s, "x,\"y\"");
        assert_eq!(s, "\"x,\"\"y\"\"\"");
    }

    #[test]
    fn drops_missing_rows_and_names_bad_ones() {
        let r = parse("t,x,y\n1,1.0,2\n2,,3\n3,NA,4\n4,2.5,5\n5,3,7\n6,4,4.5\n").unwrap();
        let (x, y, dropped) = columns(&r, "x", "y").unwrap();
        assert_eq!((x, y, dropped), (vec![1.0, 2.5, 3.0, 4.0], vec![2.0, 5.0, 7.0, 4.5], 2));
        let bad = parse("x,y\n1,2\nfoo,3\n").unwrap();
        assert_eq!(columns(&bad, "x", "y").unwrap_err(), "row 2 (line 3), column \"x\": \"foo\" is not a number");
        assert!(columns(&bad, "x", "z").unwrap_err().contains("no column \"z\""));
        assert!(pair_stats("x", "y", &[1.0, 2.0], &[1.0, 3.0], 0, 2).unwrap_err().contains("at least 3"));
    }
}
