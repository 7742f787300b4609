//! Price files: OHLCV CSV as Yahoo Finance writes it (`Date,Open,High,Low,Close,Adj Close,
//! Volume`, `null` on days without data; minute files with a `Datetime` column), one file
//! per ticker named by its symbol (`BRK-B.csv` is `BRK.B`).

use cashtag_core::{Bar, Record, Ticker, Timeframe};
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::America::New_York;

/// The provider name of bars imported from CSV files.
pub const CSV_PROVIDER: &str = "csv";

/// The ticker a price file is named for: `BRK-B` → `BRK.B`, `aapl` → `AAPL`.
pub fn ticker_from_stem(stem: &str) -> Result<Ticker, String> {
    let s = stem.trim().to_ascii_uppercase().replace('-', ".");
    Ticker::parse(&s).map_err(|e| format!("file name {stem:?} is not a ticker: {e}"))
}

/// Midnight New York time of a session date: where a daily bar starts (as Alpaca's do).
pub fn day_start(date: NaiveDate) -> DateTime<Utc> {
    New_York
        .from_local_datetime(&date.and_hms_opt(0, 0, 0).expect("midnight"))
        .earliest()
        .expect("midnight exists in New York")
        .with_timezone(&Utc)
}

/// The columns of a CSV header.
#[derive(Debug, Clone)]
pub struct Columns {
    time: usize,
    open: usize,
    high: usize,
    low: usize,
    close: usize,
    adj_close: Option<usize>,
    volume: Option<usize>,
    /// `Date` (daily) or `Datetime`/`Timestamp` (minutes).
    pub timeframe: Timeframe,
}

impl Columns {
    /// Reads the header line; `timeframe` overrides what the time column's name says.
    pub fn from_header(line: &str, timeframe: Option<Timeframe>) -> Result<Columns, String> {
        let names: Vec<String> = fields(line)?.iter().map(|c| c.to_ascii_lowercase()).collect();
        let find = |n: &[&str]| names.iter().position(|c| n.contains(&c.as_str()));
        let need = |n: &[&str]| find(n).ok_or_else(|| format!("no {} column in the header {line:?}", n[0]));
        let (time, tf) = match (find(&["date"]), find(&["datetime", "timestamp", "time"])) {
            (_, Some(i)) => (i, Timeframe::Minute),
            (Some(i), None) => (i, Timeframe::Day),
            _ => return Err(format!("no Date or Datetime column in the header {line:?}")),
        };
        Ok(Columns {
            time,
            open: need(&["open"])?,
            high: need(&["high"])?,
            low: need(&["low"])?,
            close: need(&["close"])?,
            adj_close: find(&["adj close", "adj_close", "adjclose"]),
            volume: find(&["volume"]),
            timeframe: timeframe.unwrap_or(tf),
        })
    }
}

/// The fields of one CSV line, unquoted by the `csv` crate (a quoted field may hold a
/// comma), each trimmed.
fn fields(line: &str) -> Result<Vec<String>, String> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(line.as_bytes());
    match reader.records().next() {
        Some(Ok(record)) => Ok(record.iter().map(|f| f.trim().to_string()).collect()),
        Some(Err(e)) => Err(format!("not a CSV line: {e}")),
        None => Ok(Vec::new()),
    }
}

fn parse_time(s: &str, timeframe: Timeframe) -> Result<DateTime<Utc>, String> {
    let s = s.trim().trim_matches('"');
    if timeframe == Timeframe::Day {
        // The date is the first ten characters (`2024-01-02`, or `2024-01-02 00:00:00`); a
        // cell whose tenth byte is inside a character is not a date either.
        let date = NaiveDate::parse_from_str(s.get(..10).unwrap_or(s), "%Y-%m-%d")
            .map_err(|e| format!("date {s:?} is not YYYY-MM-DD: {e}"))?;
        return Ok(day_start(date));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%:z") {
        return Ok(t.with_timezone(&Utc));
    }
    // Without an offset, a minute is New York time (as the exchange's clock reads).
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M"))
        .map_err(|e| format!("time {s:?} is not like 2024-01-02 09:30:00-05:00: {e}"))?;
    New_York
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| format!("time {s:?} does not exist in New York"))
}

/// One data row: a bar, None for a `null` row (a day without data), or why it is bad.
pub fn parse_row(
    line: &str,
    cols: &Columns,
    ticker: &Ticker,
    received_at: DateTime<Utc>,
) -> Result<Option<Record>, String> {
    let f = fields(line)?;
    let get = |i: usize| f.get(i).map(String::as_str).ok_or_else(|| format!("{} fields, expected more", f.len()));
    let num = |i: usize| -> Result<Option<f64>, String> {
        let v = get(i)?;
        if v.is_empty() || v.eq_ignore_ascii_case("null") || v.eq_ignore_ascii_case("nan") {
            return Ok(None);
        }
        v.parse::<f64>().map(Some).map_err(|_| format!("{v:?} is not a number"))
    };
    let start = parse_time(get(cols.time)?, cols.timeframe)?;
    let (Some(open), Some(high), Some(low), Some(close)) =
        (num(cols.open)?, num(cols.high)?, num(cols.low)?, num(cols.close)?)
    else {
        return Ok(None);
    };
    if [open, high, low, close].iter().any(|p| !p.is_finite() || *p <= 0.0) {
        return Err(format!("prices must be positive: {open} {high} {low} {close}"));
    }
    let adj_close = cols.adj_close.map(num).transpose()?.flatten();
    Ok(Some(Record::Bar(Bar {
        provider: CSV_PROVIDER.into(),
        ticker: ticker.clone(),
        start,
        open,
        high,
        low,
        close,
        volume: cols.volume.map(num).transpose()?.flatten().unwrap_or(0.0),
        trade_count: None,
        vwap: None,
        origin: "provider".into(),
        received_at: Some(received_at),
        timeframe: cols.timeframe,
        adj_close,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_yahoo_rows() {
        let at = Utc::now();
        let cols = Columns::from_header("Date,Open,High,Low,Close,Adj Close,Volume", None).unwrap();
        let t = ticker_from_stem("BRK-B").unwrap();
        assert_eq!(t.as_str(), "BRK.B");
        let Some(Record::Bar(b)) = parse_row("2024-01-02,10,11,9,10.5,10.25,1000", &cols, &t, at).unwrap() else {
            panic!()
        };
        assert_eq!(b.start.to_rfc3339(), "2024-01-02T05:00:00+00:00", "midnight New York (EST)");
        assert_eq!((b.timeframe, b.adj_close, b.volume), (Timeframe::Day, Some(10.25), 1000.0));
        let Some(Record::Bar(s)) = parse_row("2024-07-01,10,11,9,10.5,10.25,1000", &cols, &t, at).unwrap() else {
            panic!()
        };
        assert_eq!(s.start.to_rfc3339(), "2024-07-01T04:00:00+00:00", "midnight New York (EDT)");
        assert_eq!(parse_row("2024-01-03,null,null,null,null,null,null", &cols, &t, at).unwrap(), None);
        assert!(parse_row("2024-01-04,10,x,9,10,10,1", &cols, &t, at).is_err());
        assert!(parse_row("01/05/2024,10,11,9,10,10,1", &cols, &t, at).is_err());
        assert!(parse_row("2024-01-04,10", &cols, &t, at).is_err());
        let m = Columns::from_header("Datetime,Open,High,Low,Close,Adj Close,Volume", None).unwrap();
        let Some(Record::Bar(b)) = parse_row("2024-01-02 09:30:00-05:00,10,11,9,10.5,10.5,5", &m, &t, at).unwrap()
        else {
            panic!()
        };
        assert_eq!((b.timeframe, b.start.to_rfc3339().as_str()), (Timeframe::Minute, "2024-01-02T14:30:00+00:00"));
        assert!(Columns::from_header("a,b,c", None).is_err());
    }

    #[test]
    fn a_date_cell_in_other_characters_is_an_error_not_a_panic() {
        let cols = Columns::from_header("Date,Open,High,Low,Close,Adj Close,Volume", None).unwrap();
        let t = ticker_from_stem("AAPL").unwrap();
        for cell in ["2024年1月2日", "２０２４-01-02", "2024-01-0\u{e9}"] {
            let row = format!("{cell},10,11,9,10.5,10.25,1000");
            let err = parse_row(&row, &cols, &t, Utc::now()).unwrap_err();
            assert!(err.contains("is not YYYY-MM-DD"), "{err}");
        }
    }

    #[test]
    fn a_quoted_comma_stays_in_its_field() {
        let cols = Columns::from_header("Date,\"Name, full\",Open,High,Low,Close,Volume", None).unwrap();
        let t = ticker_from_stem("AAPL").unwrap();
        let row = "2024-01-02,\"Apple, Inc.\",10,11,9,10.5,\"1000\"";
        let Some(Record::Bar(b)) = parse_row(row, &cols, &t, Utc::now()).unwrap() else { panic!() };
        assert_eq!((b.open, b.high, b.low, b.close, b.volume), (10.0, 11.0, 9.0, 10.5, 1000.0));
    }
}
