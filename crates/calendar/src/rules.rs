//! The NYSE's rule-based holidays and early closes (rules in force since 2000).

use chrono::{Datelike, NaiveDate, TimeDelta, Weekday};

/// Easter Sunday (Gregorian), by the anonymous Gregorian algorithm.
pub fn easter(year: i32) -> NaiveDate {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, month as u32, day as u32).expect("valid Easter date")
}

fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
}

/// The weekday a fixed-date holiday is observed on: Saturday → Friday, Sunday → Monday.
fn observed(d: NaiveDate) -> NaiveDate {
    match d.weekday() {
        Weekday::Sat => d - TimeDelta::days(1),
        Weekday::Sun => d + TimeDelta::days(1),
        _ => d,
    }
}

/// The n-th (1-based) given weekday of a month.
fn nth_weekday(y: i32, m: u32, wd: Weekday, n: u8) -> NaiveDate {
    NaiveDate::from_weekday_of_month_opt(y, m, wd, n).expect("valid nth weekday")
}

fn last_monday_of_may(y: i32) -> NaiveDate {
    let d = ymd(y, 5, 31);
    d - TimeDelta::days(d.weekday().num_days_from_monday() as i64)
}

/// The holiday on a weekday date, if any.
pub fn holiday(date: NaiveDate) -> Option<&'static str> {
    let y = date.year();
    // New Year's Day: Sunday → Monday; Saturday → not observed.
    let ny = ymd(y, 1, 1);
    if (date == ny && !matches!(ny.weekday(), Weekday::Sat | Weekday::Sun))
        || (ny.weekday() == Weekday::Sun && date == ymd(y, 1, 2))
    {
        return Some(if date == ny { "New Year's Day" } else { "New Year's Day (observed)" });
    }
    let fixed = |m: u32, d: u32, name: &'static str, observed_name: &'static str| {
        let actual = ymd(y, m, d);
        (observed(actual) == date).then_some(if actual == date { name } else { observed_name })
    };
    let checks: [Option<&'static str>; 10] = [
        (y >= 1998 && date == nth_weekday(y, 1, Weekday::Mon, 3)).then_some("Martin Luther King Jr. Day"),
        (date == nth_weekday(y, 2, Weekday::Mon, 3)).then_some("Washington's Birthday"),
        (date == easter(y) - TimeDelta::days(2)).then_some("Good Friday"),
        (date == last_monday_of_may(y)).then_some("Memorial Day"),
        if y >= 2022 { fixed(6, 19, "Juneteenth", "Juneteenth (observed)") } else { None },
        fixed(7, 4, "Independence Day", "Independence Day (observed)"),
        (date == nth_weekday(y, 9, Weekday::Mon, 1)).then_some("Labor Day"),
        (date == nth_weekday(y, 11, Weekday::Thu, 4)).then_some("Thanksgiving Day"),
        fixed(12, 25, "Christmas Day", "Christmas Day (observed)"),
        None,
    ];
    checks.into_iter().flatten().next()
}

/// The regular early close on a date (13:00), if any; the date is a trading day.
pub fn early_close(date: NaiveDate) -> Option<&'static str> {
    let y = date.year();
    let wd = date.weekday();
    if date == nth_weekday(y, 11, Weekday::Thu, 4) + TimeDelta::days(1) {
        return Some("day after Thanksgiving");
    }
    if date == ymd(y, 12, 24) && matches!(wd, Weekday::Mon | Weekday::Tue | Weekday::Wed | Weekday::Thu) {
        return Some("Christmas Eve");
    }
    if date == ymd(y, 7, 3)
        && (matches!(wd, Weekday::Mon | Weekday::Tue | Weekday::Thu) || (wd == Weekday::Wed && y >= 2013))
    {
        return Some("day before Independence Day");
    }
    if y < 2013 && date == ymd(y, 7, 5) && wd == Weekday::Fri {
        return Some("day after Independence Day");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn easter_dates() {
        for (y, m, d) in [(2000, 4, 23), (2008, 3, 23), (2011, 4, 24), (2024, 3, 31), (2026, 4, 5), (2038, 4, 25)] {
            assert_eq!(easter(y), ymd(y, m, d));
        }
    }
}
