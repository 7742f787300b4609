"""Generates the NYSE session oracle from the `exchange_calendars` XNYS calendar.

Writes one line per trading session from 2000-01-01 to 2030-12-31:
    date,open_utc,close_utc
The Rust test in crates/calendar/tests/oracle.rs compares every session (and every
non-session day) with cashtag's calendar.

    python3 -m venv /tmp/oracle && /tmp/oracle/bin/pip install -r oracle/requirements.txt
    /tmp/oracle/bin/python oracle/generate.py > oracle/xnys-2000-2030.csv
"""
import sys

import exchange_calendars as xcals

cal = xcals.get_calendar("XNYS", start="2000-01-01", end="2030-12-31")
sched = cal.schedule.loc["2000-01-01":"2030-12-31"]
out = sys.stdout
out.write(f"# exchange_calendars {xcals.__version__} XNYS sessions\n")
out.write("date,open_utc,close_utc\n")
for day, row in sched.iterrows():
    o = row["open"].tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
    c = row["close"].tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
    out.write(f"{day.strftime('%Y-%m-%d')},{o},{c}\n")
