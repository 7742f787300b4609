//! `cashtag-manager calendar`: the sessions in a range, or one day and why it is closed.

use cashtag_calendar::{Calendar, Day, TZ};
use cashtag_core::Settings;
use chrono::NaiveDate;

#[derive(clap::Args)]
pub struct CalendarArgs {
    /// First date (YYYY-MM-DD).
    #[arg(long, requires = "to", conflicts_with = "date")]
    from: Option<NaiveDate>,
    /// Last date, inclusive.
    #[arg(long, requires = "from")]
    to: Option<NaiveDate>,
    /// One day: is it open, and if not, why.
    #[arg(long)]
    date: Option<NaiveDate>,
    /// JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn hm(t: chrono::DateTime<chrono::Utc>) -> String {
    t.with_timezone(&TZ).format("%H:%M %Z").to_string()
}

pub fn run(settings: &Settings, args: &CalendarArgs) -> anyhow::Result<()> {
    let cal = cashtag_runtime::calendar(&settings.manager)?;
    match (args.date, args.from, args.to) {
        (Some(date), _, _) => one_day(&cal, date, args.json),
        (None, Some(from), Some(to)) => {
            anyhow::ensure!(from <= to, "--from {from} is after --to {to}");
            anyhow::ensure!((to - from).num_days() <= 366 * 50, "at most 50 years at a time");
            range(&cal, from, to, args.json)
        }
        _ => anyhow::bail!("give --date DATE, or --from DATE --to DATE"),
    }
}

fn one_day(cal: &Calendar, date: NaiveDate, json: bool) -> anyhow::Result<()> {
    let day = cal.day(date);
    if json {
        println!("{}", serde_json::to_string_pretty(&day)?);
        return Ok(());
    }
    let weekday = date.format("%A");
    match day {
        Day::Open(s) => {
            println!(
                "{date} ({weekday}): open {}–{} New York time ({}–{} UTC)",
                s.open.with_timezone(&TZ).format("%H:%M"),
                hm(s.close),
                s.open.format("%H:%M"),
                s.close.format("%H:%M")
            );
            if let Some(reason) = &s.early_close {
                println!("early close at {}: {reason}", s.close_local());
            }
        }
        Day::Closed { reason, .. } => {
            let next =
                cal.next_open(cashtag_calendar::local(date, chrono::NaiveTime::from_hms_opt(23, 59, 0).unwrap()));
            println!("{date} ({weekday}): closed — {reason}");
            println!("next open: {} New York", next.with_timezone(&TZ).format("%Y-%m-%d %H:%M %Z"));
        }
    }
    Ok(())
}

fn range(cal: &Calendar, from: NaiveDate, to: NaiveDate, json: bool) -> anyhow::Result<()> {
    let sessions = cal.sessions(from, to);
    if json {
        println!("{}", serde_json::to_string_pretty(&sessions)?);
        return Ok(());
    }
    println!("{:<12}{:<22}{:<22}{:<11}{:<11}note", "date", "open (UTC)", "close (UTC)", "open (NY)", "close (NY)");
    for s in &sessions {
        println!(
            "{:<12}{:<22}{:<22}{:<11}{:<11}{}",
            s.date.to_string(),
            s.open.format("%Y-%m-%d %H:%MZ").to_string(),
            s.close.format("%Y-%m-%d %H:%MZ").to_string(),
            s.open.with_timezone(&TZ).format("%H:%M").to_string(),
            s.close.with_timezone(&TZ).format("%H:%M").to_string(),
            s.early_close.as_ref().map(|r| format!("early close: {r}")).unwrap_or_default()
        );
    }
    println!("{} sessions", sessions.len());
    Ok(())
}
