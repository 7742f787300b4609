//! The controller with a simulated clock against a real Redis: normal days, an early
//! close, a holiday, both DST-change weeks, a restart mid-session, a watchlist change.
//! A stand-in subscriber (what stocks or twitter do) counts the control messages.

use std::time::Duration;

use cashtag_bus::{Bus, ControlState, Identity};
use cashtag_calendar::Calendar;
use cashtag_control::{Controller, HoursPolicy, WatchlistPublisher};
use cashtag_core::{Clock, Event, SimSpec, Watchlist};
use cashtag_testkit::{redis_url, unique};
use chrono::{DateTime, TimeDelta, Utc};
use futures::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn bus(prefix: &str, service: &str, clock: Clock) -> Bus {
    Bus::open(&redis_url(), prefix, Identity { service: service.into(), instance: unique("i") }, clock, 100_000)
        .unwrap()
}

/// A stand-in for a data source: subscribes to the control channel and records every message.
async fn stand_in(prefix: &str) -> mpsc::UnboundedReceiver<ControlState> {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut ps = client.get_async_pubsub().await.unwrap();
    ps.subscribe(cashtag_bus::Keys::new(prefix).control_channel()).await.unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut msgs = ps.into_on_message();
        while let Some(m) = msgs.next().await {
            let s: String = m.get_payload().unwrap();
            if tx.send(serde_json::from_str(&s).unwrap()).is_err() {
                return;
            }
        }
    });
    rx
}

struct Harness {
    prefix: String,
    clock: Clock,
    evaluated: watch::Receiver<Option<DateTime<Utc>>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

fn start_manager(prefix: &str, clock: &Clock) -> Harness {
    let b = bus(prefix, "manager", clock.clone());
    let controller = Controller::new(b, Calendar::nyse(), HoursPolicy::default(), Duration::from_millis(5));
    let evaluated = controller.evaluated();
    let stop = CancellationToken::new();
    let task = tokio::spawn(controller.run(stop.clone()));
    Harness { prefix: prefix.to_string(), clock: clock.clone(), evaluated, stop, task }
}

impl Harness {
    async fn step_to(&mut self, t: DateTime<Utc>) {
        self.clock.set(t);
        tokio::time::timeout(Duration::from_secs(10), self.evaluated.wait_for(|e| e.is_some_and(|e| e >= t)))
            .await
            .unwrap_or_else(|_| panic!("controller did not evaluate {t}"))
            .unwrap();
    }

    /// Walks the clock from `from` to `to` in 5-minute steps, also stopping one second
    /// before and exactly at every window edge.
    async fn walk(&mut self, from: DateTime<Utc>, to: DateTime<Utc>) {
        let cal = Calendar::nyse();
        let policy = HoursPolicy::default();
        let mut stops: Vec<DateTime<Utc>> = Vec::new();
        let mut t = from;
        while t <= to {
            stops.push(t);
            t += TimeDelta::minutes(5);
        }
        for s in cal.sessions(Calendar::local_date(from), Calendar::local_date(to)) {
            let (on, off) = policy.window(&s);
            for edge in [on, off] {
                if from <= edge && edge <= to {
                    stops.push(edge - TimeDelta::seconds(1));
                    stops.push(edge);
                }
            }
        }
        stops.sort();
        stops.dedup();
        for t in stops {
            self.step_to(t).await;
        }
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap();
    }

    async fn events(&self) -> Vec<Event> {
        events(&self.prefix).await
    }
}

/// Every event on the prefix's events stream so far.
async fn events(prefix: &str) -> Vec<Event> {
    let b = bus(prefix, "reader", Clock::System);
    b.peek_events(100_000).await.unwrap()
}

async fn drain(rx: &mut mpsc::UnboundedReceiver<ControlState>) -> Vec<(bool, DateTime<Utc>, String)> {
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut out = Vec::new();
    while let Ok(s) = rx.try_recv() {
        out.push((s.is_on(), s.at, s.reason));
    }
    out
}

#[tokio::test]
async fn a_normal_day_gives_one_start_and_one_stop() {
    let prefix = unique("t-mgr-normal");
    let mut sub = stand_in(&prefix).await;
    let clock = Clock::manual(utc("2026-11-24T05:00:00Z"));
    let mut m = start_manager(&prefix, &clock);
    m.walk(utc("2026-11-24T05:00:00Z"), utc("2026-11-25T04:55:00Z")).await;
    let msgs = drain(&mut sub).await;
    assert_eq!(
        msgs,
        vec![
            (true, utc("2026-11-24T14:25:00Z"), "regular open".to_string()),
            (false, utc("2026-11-24T21:05:00Z"), "regular close".to_string()),
        ]
    );
    let events = m.events().await;
    assert!(events.iter().any(|e| e.code == "control.start"));
    assert!(events.iter().any(|e| e.code == "control.stop" && e.message.contains("regular close")));
    m.stop().await;
}

#[tokio::test]
async fn the_friday_after_thanksgiving_stops_after_the_early_close() {
    let prefix = unique("t-mgr-early");
    let mut sub = stand_in(&prefix).await;
    let clock = Clock::manual(utc("2026-11-27T05:00:00Z"));
    let mut m = start_manager(&prefix, &clock);
    m.walk(utc("2026-11-27T05:00:00Z"), utc("2026-11-28T04:55:00Z")).await;
    let msgs = drain(&mut sub).await;
    assert_eq!(
        msgs,
        vec![
            (true, utc("2026-11-27T14:25:00Z"), "regular open".to_string()),
            (false, utc("2026-11-27T18:05:00Z"), "early close 13:00".to_string()),
        ]
    );
    m.stop().await;
}

#[tokio::test]
async fn a_holiday_stays_off_all_day_and_says_why() {
    let prefix = unique("t-mgr-holiday");
    let mut sub = stand_in(&prefix).await;
    let clock = Clock::manual(utc("2026-11-26T05:00:00Z"));
    let mut m = start_manager(&prefix, &clock);
    m.walk(utc("2026-11-26T05:00:00Z"), utc("2026-11-27T04:55:00Z")).await;
    assert!(drain(&mut sub).await.is_empty(), "no control message on Thanksgiving");
    let events = m.events().await;
    let resume = events.iter().find(|e| e.code == "control.resume").expect("a start-up event");
    assert!(resume.message.contains("holiday: Thanksgiving Day"), "{}", resume.message);
    assert!(resume.message.contains("2026-11-27 09:25"), "{}", resume.message);
    m.stop().await;
}

async fn dst_week(prefix: &str, from: &str, to: &str) -> Vec<(bool, DateTime<Utc>, String)> {
    let mut sub = stand_in(prefix).await;
    let clock = Clock::manual(utc(from));
    let mut m = start_manager(prefix, &clock);
    m.walk(utc(from), utc(to)).await;
    m.stop().await;
    drain(&mut sub).await
}

fn expected_days(days: &[(&str, &str, &str)]) -> Vec<(bool, DateTime<Utc>, String)> {
    days.iter()
        .flat_map(|(_, on, off)| {
            [(true, utc(on), "regular open".to_string()), (false, utc(off), "regular close".to_string())]
        })
        .collect()
}

#[tokio::test]
async fn the_spring_dst_week_moves_the_utc_times() {
    // DST starts Sunday 2026-03-08: opens move from 14:30 UTC to 13:30 UTC.
    let msgs = dst_week(&unique("t-mgr-dst-spring"), "2026-03-05T05:00:00Z", "2026-03-11T04:55:00Z").await;
    assert_eq!(
        msgs,
        expected_days(&[
            ("Thu", "2026-03-05T14:25:00Z", "2026-03-05T21:05:00Z"),
            ("Fri", "2026-03-06T14:25:00Z", "2026-03-06T21:05:00Z"),
            ("Mon", "2026-03-09T13:25:00Z", "2026-03-09T20:05:00Z"),
            ("Tue", "2026-03-10T13:25:00Z", "2026-03-10T20:05:00Z"),
        ])
    );
}

#[tokio::test]
async fn the_autumn_dst_week_moves_the_utc_times() {
    // DST ends Sunday 2026-11-01: opens move from 13:30 UTC to 14:30 UTC.
    let msgs = dst_week(&unique("t-mgr-dst-autumn"), "2026-10-29T05:00:00Z", "2026-11-04T04:55:00Z").await;
    assert_eq!(
        msgs,
        expected_days(&[
            ("Thu", "2026-10-29T13:25:00Z", "2026-10-29T20:05:00Z"),
            ("Fri", "2026-10-30T13:25:00Z", "2026-10-30T20:05:00Z"),
            ("Mon", "2026-11-02T14:25:00Z", "2026-11-02T21:05:00Z"),
            ("Tue", "2026-11-03T14:25:00Z", "2026-11-03T21:05:00Z"),
        ])
    );
}

#[tokio::test]
async fn a_restart_mid_session_keeps_the_state_on() {
    let prefix = unique("t-mgr-restart");
    let mut sub = stand_in(&prefix).await;
    let clock = Clock::manual(utc("2026-11-24T15:00:00Z"));
    let mut first = start_manager(&prefix, &clock);
    first.step_to(utc("2026-11-24T15:00:00Z")).await;
    first.stop().await;
    let msgs = drain(&mut sub).await;
    assert_eq!(msgs.len(), 1);
    assert!(msgs[0].0);
    assert_eq!(msgs[0].2, "regular open (manager started during the session)");

    clock.set(utc("2026-11-24T16:00:00Z"));
    let mut second = start_manager(&prefix, &clock);
    second.walk(utc("2026-11-24T16:00:00Z"), utc("2026-11-24T21:30:00Z")).await;
    let msgs = drain(&mut sub).await;
    assert_eq!(msgs, vec![(false, utc("2026-11-24T21:05:00Z"), "regular close".to_string())], "no spurious stop");
    let events = second.events().await;
    assert!(events.iter().any(|e| e.code == "control.resume" && e.message.contains("stay on")));
    second.stop().await;
}

#[tokio::test]
async fn a_maintenance_stop_holds_the_sources_off_until_released_or_run_out() {
    let prefix = unique("t-mgr-hold");
    let mut sub = stand_in(&prefix).await;
    let clock = Clock::manual(utc("2026-11-24T15:00:00Z"));
    let mut m = start_manager(&prefix, &clock);
    m.step_to(utc("2026-11-24T15:00:00Z")).await;
    assert!(drain(&mut sub).await[0].0, "on during the session");

    // An operator's stop: published at once, and the manager does not undo it.
    let ops = bus(&prefix, "cashtagctl", clock.clone());
    let hold = cashtag_bus::ControlHold {
        reason: "disk swap".into(),
        by: "ops".into(),
        at: utc("2026-11-24T15:01:00Z"),
        until: None,
    };
    ops.hold_sources(&hold).await.unwrap();
    for t in ["2026-11-24T15:02:00Z", "2026-11-24T15:30:00Z", "2026-11-24T16:00:00Z"] {
        m.step_to(utc(t)).await;
    }
    assert_eq!(
        drain(&mut sub).await,
        vec![(false, utc("2026-11-24T15:01:00Z"), "maintenance stop by ops: disk swap".to_string())],
        "one stop, and the manager keeps it"
    );
    assert!(!ops.control_state().await.unwrap().is_on());

    // Released: the next evaluation follows the calendar, and says why. (The clock moves
    // first: the controller evaluates every 5 ms, so it may see the release before the step.)
    m.clock.set(utc("2026-11-24T16:01:00Z"));
    assert_eq!(ops.release_hold().await.unwrap(), Some(hold));
    m.step_to(utc("2026-11-24T16:01:00Z")).await;
    assert_eq!(
        drain(&mut sub).await,
        vec![(true, utc("2026-11-24T16:01:00Z"), "regular open (maintenance stop ended)".to_string())]
    );

    // A hold with an end: off until then, and the manager removes it and says so.
    let until = utc("2026-11-24T17:00:00Z");
    ops.hold_sources(&cashtag_bus::ControlHold {
        reason: "reindex".into(),
        by: "ops".into(),
        at: utc("2026-11-24T16:30:00Z"),
        until: Some(until),
    })
    .await
    .unwrap();
    m.step_to(utc("2026-11-24T16:59:59Z")).await;
    assert_eq!(drain(&mut sub).await.len(), 1, "the stop only");
    m.step_to(until).await;
    let msgs = drain(&mut sub).await;
    assert_eq!(msgs, vec![(true, until, "regular open (maintenance stop ended)".to_string())]);
    assert_eq!(ops.control_hold().await.unwrap(), None, "the run-out hold is removed");
    let released = m.events().await.into_iter().find(|e| e.code == "control.released").expect("control.released");
    assert!(released.message.contains("reindex") && released.message.contains("ran out"), "{}", released.message);

    // Ended after the close: the calendar's stop replaces the maintenance stop's reason.
    m.step_to(utc("2026-11-24T21:30:00Z")).await;
    assert_eq!(drain(&mut sub).await.len(), 1, "the regular close");
    ops.hold_sources(&cashtag_bus::ControlHold {
        reason: "late work".into(),
        by: "ops".into(),
        at: utc("2026-11-24T21:31:00Z"),
        until: None,
    })
    .await
    .unwrap();
    m.step_to(utc("2026-11-24T21:32:00Z")).await;
    m.clock.set(utc("2026-11-24T21:33:00Z"));
    ops.release_hold().await.unwrap();
    m.step_to(utc("2026-11-24T21:33:00Z")).await;
    let msgs = drain(&mut sub).await;
    assert_eq!(
        msgs.last().unwrap(),
        &(false, utc("2026-11-24T21:33:00Z"), "regular close (maintenance stop ended)".to_string())
    );
    m.stop().await;
}

#[tokio::test]
async fn a_running_simulated_clock_crosses_the_open() {
    // 600x: the ten simulated minutes before the open pass in one wall second.
    let prefix = unique("t-mgr-sim");
    let start = utc("2026-11-24T14:20:00Z");
    let spec = SimSpec { start, speed: 600.0, anchor: Utc::now() };
    let mut rx = bus(&prefix, "stocks", Clock::Simulated(spec)).watch_control();
    let b = bus(&prefix, "manager", Clock::Simulated(spec));
    let controller = Controller::new(b, Calendar::nyse(), HoursPolicy::default(), Duration::from_secs(2));
    let stop = CancellationToken::new();
    let task = tokio::spawn(controller.run(stop.clone()));
    let s = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|s| s.is_on())).await.unwrap().unwrap().clone();
    let late = (s.at - utc("2026-11-24T14:25:00Z")).num_seconds();
    assert!((0..=60).contains(&late), "start published {late} simulated seconds after 09:25");
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_watchlist_change_is_published_without_restart() {
    let prefix = unique("t-mgr-watchlist");
    let dir = std::env::temp_dir().join(unique("watchlist"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("watchlist.toml");
    std::fs::write(&file, "[[company]]\nticker = \"AAPL\"\nname = \"Apple\"\n").unwrap();

    let manager = bus(&prefix, "manager", Clock::System);
    let stop = CancellationToken::new();
    let publisher = WatchlistPublisher::new(manager.clone(), Some(file.clone()), Duration::from_millis(50));
    let task = tokio::spawn(publisher.run(stop.clone()));

    let follower = bus(&prefix, "stocks", Clock::System);
    let mut rx = follower.watch_watchlist(Watchlist::builtin());
    tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|w| w.len() == 1)).await.unwrap().unwrap();

    std::fs::write(
        &file,
        "[[company]]\nticker = \"AAPL\"\nname = \"Apple\"\n[[company]]\nticker = \"TSLA\"\nname = \"Tesla\"\n",
    )
    .unwrap();
    let w = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|w| w.len() == 2)).await.unwrap().unwrap().clone();
    assert_eq!(w.tickers()[1].as_str(), "TSLA");

    // A broken file is reported and the last good list stays.
    std::fs::write(&file, "[[company]]\nticker = \"tsla\"\n").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(follower.watchlist().await.unwrap().unwrap().len(), 2);

    stop.cancel();
    task.await.unwrap();
    let events = events(&prefix).await;
    let changed = events.iter().find(|e| e.code == "watchlist.changed").expect("a change event");
    assert_eq!(changed.fields["added"], serde_json::json!(["TSLA"]));
    assert!(events.iter().any(|e| e.code == "watchlist.invalid" && e.message.contains("tsla")));
    let _ = std::fs::remove_dir_all(dir);
}

/// Redis restarted without persistence (or flushed) during a session loses the state key:
/// the manager writes it again within seconds, and a data source watching the state never
/// sees the market go off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_state_heals_after_a_redis_restart_and_a_flushall() {
    let mut redis = cashtag_testkit::PrivateServer::start(cashtag_testkit::ServerKind::Redis);
    let prefix = unique("t-mgr-heal");
    let open = |service: &str| {
        Bus::open(
            &redis.url(),
            &prefix,
            Identity { service: service.into(), instance: unique("i") },
            Clock::System,
            1_000,
        )
        .unwrap()
    };
    // Mid-session on a Tuesday, in real time.
    let spec = SimSpec { start: utc("2026-11-24T16:00:00Z"), speed: 1.0, anchor: Utc::now() };
    let manager = Bus::open(
        &redis.url(),
        &prefix,
        Identity { service: "manager".into(), instance: "m".into() },
        Clock::Simulated(spec),
        1_000,
    )
    .unwrap();
    let controller = Controller::new(manager, Calendar::nyse(), HoursPolicy::default(), Duration::from_millis(500));
    let stop = CancellationToken::new();
    let task = tokio::spawn(controller.run(stop.clone()));
    let source = open("stocks");
    let mut control = source.watch_control();
    tokio::time::timeout(Duration::from_secs(10), control.wait_for(|s| s.is_on())).await.unwrap().unwrap();
    // The source's view must never turn off from here on.
    let mut view = control.clone();
    let saw_off = tokio::spawn(async move {
        loop {
            if view.changed().await.is_err() {
                return false;
            }
            if !view.borrow_and_update().is_on() {
                return true;
            }
        }
    });
    let reader = open("reader");
    let healed = |what: &'static str| {
        let reader = &reader;
        async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(15);
            loop {
                if let Ok(Some(s)) = reader.published_control().await
                    && s.is_on()
                {
                    return;
                }
                assert!(std::time::Instant::now() < deadline, "the state key did not come back after {what}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    redis.kill();
    redis.restart();
    healed("a restart without persistence").await;
    let mut c = redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("FLUSHALL").query_async(&mut c).await.unwrap();
    healed("FLUSHALL").await;
    assert!(source.watch_control().borrow().is_on() || control.borrow().is_on());
    saw_off.abort();
    assert!(!saw_off.await.unwrap_or(false), "the source saw the market go off");
    stop.cancel();
    task.await.unwrap();
}

/// Garbage in the state the manager owns — the control state, a flag, the watchlist —
/// written at start and mid-session: readers skip what does not parse and keep following
/// the rest (a flag change still applies), and the manager writes its own value over each,
/// with an event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_that_does_not_parse_is_repaired_and_never_wedges_the_readers() {
    let prefix = unique("t-mgr-garbage");
    let keys = cashtag_bus::Keys::new(&prefix);
    let c = redis::Client::open(redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let set = |key: String, value: &'static str| {
        let mut c = c.clone();
        async move {
            let _: () = redis::cmd("SET").arg(key).arg(value).query_async(&mut c).await.unwrap();
        }
    };
    // Before the manager starts: a control state it cannot read, and a bad flag beside a good one.
    set(keys.control_state(), "{\"cmd\":\"pause\",\"reason\":\"from a newer version\"").await;
    let _: () = redis::cmd("HSET")
        .arg(keys.flags())
        .arg("kinesis_write")
        .arg("yes please")
        .arg("mongo_write")
        .arg("1")
        .query_async(&mut c.clone())
        .await
        .unwrap();

    let source = bus(&prefix, "stocks", Clock::System);
    let flags = source.watch_flags();
    let control = source.watch_control();
    // The good flag is read whatever its neighbour holds.
    tokio::time::timeout(Duration::from_secs(5), flags.clone().wait_for(|f| f.0.get("mongo_write") == Some(&true)))
        .await
        .expect("one bad flag hid the others")
        .unwrap();

    // Mid-session on a Tuesday, in real time.
    let spec = SimSpec { start: utc("2026-11-24T16:00:00Z"), speed: 1.0, anchor: Utc::now() };
    let manager = bus(&prefix, "manager", Clock::Simulated(spec));
    let controller =
        Controller::new(manager.clone(), Calendar::nyse(), HoursPolicy::default(), Duration::from_millis(100));
    let stop = CancellationToken::new();
    let defaults =
        std::collections::BTreeMap::from([("kinesis_write".to_string(), true), ("mongo_write".to_string(), true)]);
    let tasks = vec![
        tokio::spawn(controller.run(stop.clone())),
        tokio::spawn(cashtag_control::flags::keep_flag_defaults(
            manager.clone(),
            defaults,
            Duration::from_millis(100),
            stop.clone(),
        )),
        tokio::spawn(WatchlistPublisher::new(manager.clone(), None, Duration::from_millis(100)).run(stop.clone())),
    ];
    tokio::time::timeout(Duration::from_secs(10), control.clone().wait_for(|s| s.is_on()))
        .await
        .expect("the sources never came on over a state that did not parse")
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), flags.clone().wait_for(|f| f.0.get("kinesis_write") == Some(&true)))
        .await
        .expect("the bad flag was not repaired")
        .unwrap();

    // Mid-session garbage again: the watchlist and the control state.
    let watchlist = source.watch_watchlist(Watchlist::from_tickers([cashtag_core::Ticker::parse("ZZZ").unwrap()]));
    tokio::time::timeout(Duration::from_secs(5), watchlist.clone().wait_for(|w| w.len() > 1)).await.unwrap().unwrap();
    set(keys.watchlist(), "not json").await;
    set(keys.control_state(), "42").await;
    // A flag change still applies while the garbage is there.
    manager.set_flag("mongo_write", false, "test").await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), flags.clone().wait_for(|f| f.0.get("mongo_write") == Some(&false)))
        .await
        .expect("a flag change did not apply")
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let state = source.published_control().await;
        let list = source.watchlist().await;
        if matches!(state, Ok(Some(ref s)) if s.is_on()) && matches!(list, Ok(Some(ref w)) if w.len() > 1) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not repaired: {state:?} {list:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(control.borrow().is_on(), "the sources stayed on throughout");
    stop.cancel();
    for t in tasks {
        t.await.unwrap();
    }
    let events = events(&prefix).await;
    let codes: Vec<&str> = events.iter().map(|e| e.code.as_str()).collect();
    assert!(codes.iter().filter(|c| **c == "control.repaired").count() >= 2, "{codes:?}");
    let flag = events.iter().find(|e| e.code == "flag.repaired").expect("flag.repaired");
    assert_eq!(flag.fields["flag"], "kinesis_write");
    assert!(codes.contains(&"watchlist.repaired"), "{codes:?}");
    assert!(!codes.contains(&"redis.outage"), "garbage is not an outage: {codes:?}");
}
