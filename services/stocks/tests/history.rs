//! `cashtag-stocks backfill` and `import` as processes: a fake Alpaca history server that
//! speaks the documented protocol (pages with `next_page_token`, `limit`, a 429 with
//! `Retry-After`, a page with a bad item, a server error mid-run), a resumed run that
//! continues from its checkpoint, and Yahoo Finance files with bad rows.

use std::collections::HashMap;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use cashtag_bus::{Bus, Identity};
use cashtag_core::{Clock, Event};
use cashtag_testkit::{aws_endpoint, mongo_uri, redis_url, unique};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_cashtag-stocks");

#[derive(Default)]
struct Fake {
    /// (path, symbol, page token) of every request.
    log: Mutex<Vec<(String, String, Option<String>)>>,
    throttled: AtomicBool,
    broken: AtomicBool,
    days: Vec<String>,
}

async fn history(
    State(f): State<Arc<Fake>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if headers.get("APCA-API-KEY-ID").and_then(|v| v.to_str().ok()) != Some("kid")
        || headers.get("APCA-API-SECRET-KEY").and_then(|v| v.to_str().ok()) != Some("sekret")
    {
        return (StatusCode::UNAUTHORIZED, "{\"message\":\"forbidden.\"}").into_response();
    }
    let sym = q.get("symbols").cloned().unwrap_or_default();
    let token = q.get("page_token").cloned();
    f.log.lock().unwrap().push((uri.path().to_string(), sym.clone(), token.clone()));
    if !f.throttled.swap(true, Ordering::SeqCst) {
        return (StatusCode::TOO_MANY_REQUESTS, [("Retry-After", "1")], "{\"message\":\"too many requests.\"}")
            .into_response();
    }
    let offset: usize = token.as_deref().and_then(|t| t.strip_prefix('o')).and_then(|t| t.parse().ok()).unwrap_or(0);
    if f.broken.load(Ordering::SeqCst) && sym == "BBB" && offset == 10 {
        return (StatusCode::INTERNAL_SERVER_ERROR, "oops").into_response();
    }
    let limit: usize = q["limit"].parse().unwrap();
    assert_eq!((q["timeframe"].as_str(), q["adjustment"].as_str(), q["feed"].as_str()), ("1Day", "all", "sip"));
    let end = (offset + limit).min(f.days.len());
    let bars: Vec<Value> = (offset..end)
        .map(|i| {
            if sym == "BBB" && i == 7 {
                json!({"t": f.days[i], "o": 1.0, "h": 1.0, "l": 1.0, "c": "oops", "v": 5})
            } else {
                let p = 100.0 + i as f64;
                json!({"t": f.days[i], "o": p, "h": p + 1.0, "l": p - 1.0, "c": p + 0.5, "v": 1000 + i, "n": 10, "vw": p})
            }
        })
        .collect();
    let next = (end < f.days.len()).then(|| format!("o{end}"));
    axum::Json(json!({"bars": {sym: bars}, "next_page_token": next, "currency": "USD"})).into_response()
}

async fn fake_alpaca() -> (String, Arc<Fake>) {
    let days = cashtag_calendar::Calendar::nyse()
        .sessions("2024-01-02".parse().unwrap(), "2024-01-31".parse().unwrap())
        .iter()
        .map(|s| cashtag_core::time::rfc3339(&cashtag_calendar::local(s.date, chrono::NaiveTime::MIN)))
        .collect();
    let fake = Arc::new(Fake { days, ..Default::default() });
    let app = axum::Router::new().route("/v2/stocks/bars", axum::routing::get(history)).with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, fake)
}

struct Env {
    db: String,
    prefix: String,
    alpaca: String,
    secret: String,
}

impl Env {
    fn new(alpaca: &str) -> Self {
        Env { db: unique("hist"), prefix: unique("t-hist"), alpaca: alpaca.into(), secret: "sekret".into() }
    }

    async fn run(&self, args: &[&str]) -> Output {
        let mut c = Command::new(BIN);
        c.env("CASHTAG_MONGO_URI", mongo_uri())
            .env("CASHTAG_MONGO_DATABASE", &self.db)
            .env("CASHTAG_REDIS_URL", redis_url())
            .env("CASHTAG_REDIS_PREFIX", &self.prefix)
            .env("CASHTAG_AWS_ENDPOINT", aws_endpoint())
            .env("CASHTAG_FLAGS_KINESIS_WRITE", "false")
            .env("CASHTAG_STOCKS_ALPACA_REST_URL", &self.alpaca)
            .env("CASHTAG_STOCKS_ALPACA_KEY_ID", "kid")
            .env("CASHTAG_STOCKS_ALPACA_SECRET_KEY", &self.secret)
            .env("CASHTAG_STOCKS_ALPACA_FEED", "sip")
            .arg("--quiet")
            .args(args);
        let out = tokio::task::spawn_blocking(move || c.output().unwrap()).await.unwrap();
        println!(
            "$ cashtag-stocks {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    async fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args).await;
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    async fn count(&self, coll: &str) -> u64 {
        let c = mongodb::Client::with_uri_str(mongo_uri()).await.unwrap();
        c.database(&self.db).collection::<bson::Document>(coll).count_documents(bson::doc! {}).await.unwrap()
    }

    /// The events the commands emitted, by code.
    async fn events(&self) -> Vec<Event> {
        let bus = Bus::open(
            &redis_url(),
            &self.prefix,
            Identity { service: "test".into(), instance: "t".into() },
            Clock::System,
            1000,
        )
        .unwrap();
        let mut c = bus
            .consumer(&bus.keys().events_stream(), &unique("g"), "t")
            .unwrap()
            .with_block(Duration::from_millis(100));
        let mut out = vec![];
        loop {
            let batch = c.read::<Event>().await.unwrap();
            if batch.is_empty() {
                return out;
            }
            out.extend(batch.into_iter().filter_map(|e| e.value.ok()));
        }
    }
}

const BACKFILL: [&str; 10] =
    ["backfill", "--from", "2024-01-02", "--to", "2024-01-31", "--tickers", "AAA,BBB", "--limit", "5", "--json"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_pages_waits_out_429_skips_a_bad_bar_and_resumes_where_it_stopped() {
    let (url, fake) = fake_alpaca().await;
    let env = Env::new(&url);
    let sessions = fake.days.len() as u64;
    assert_eq!(sessions, 21);

    // First run: BBB's third page fails; the run stops and keeps its checkpoints.
    fake.broken.store(true, Ordering::SeqCst);
    let out = env.run(&[&BACKFILL[..], &["--retries", "1"]].concat()).await;
    assert_eq!(out.status.code(), Some(4), "a provider failure exits 4");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("500") && !err.contains("sekret"), "{err}");
    assert!(err.contains("HTTP 429 on bars"), "the 429 was waited out and said: {err}");
    assert!(err.contains("bad item skipped"), "{err}");
    let first_run = env.count("bars_1d").await;
    assert_eq!(first_run, sessions + 10 - 1, "AAA whole, BBB's first two pages less the bad bar");

    // Second run: AAA is done, BBB continues at its third page.
    fake.broken.store(false, Ordering::SeqCst);
    fake.log.lock().unwrap().clear();
    let r = env.json(&BACKFILL).await;
    let log = fake.log.lock().unwrap().clone();
    assert!(log.iter().all(|(_, s, _)| s == "BBB"), "AAA is not fetched again: {log:?}");
    assert_eq!(log[0].2.as_deref(), Some("o10"), "BBB resumes at its checkpoint");
    assert_eq!(r["total"]["stored"], sessions - 10);
    assert_eq!(env.count("bars_1d").await, 2 * sessions - 1);

    // A third run has nothing to do; --restart fetches everything and stores nothing twice.
    fake.log.lock().unwrap().clear();
    let r = env.json(&BACKFILL).await;
    assert!(fake.log.lock().unwrap().is_empty());
    assert_eq!(r["total"]["stored"], 0);
    let r = env.json(&[&BACKFILL[..], &["--restart"]].concat()).await;
    assert_eq!((r["total"]["stored"].as_u64(), r["total"]["duplicates"].as_u64()), (Some(0), Some(2 * sessions - 1)));
    assert_eq!(r["total"]["rejected"], 1);

    let c = mongodb::Client::with_uri_str(mongo_uri()).await.unwrap();
    let bar = c
        .database(&env.db)
        .collection::<bson::Document>("bars_1d")
        .find_one(bson::doc! {"ticker": "AAA"})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bar.get_str("_id").unwrap(), "alpaca:AAA:2024-01-02T05:00:00.000Z:provider:1d");
    assert_eq!(bar.get_f64("adj_close").unwrap(), 100.5, "adjustment=all closes are adjusted closes");

    let events = env.events().await;
    let codes: Vec<&str> = events.iter().map(|e| e.code.as_str()).collect();
    for code in ["backfill.start", "backfill.done", "backfill.failed", "backfill.rejected", "source.rate_limited"] {
        assert!(codes.contains(&code), "{code} in {codes:?}");
    }
    let done = events.iter().find(|e| e.code == "backfill.done").unwrap();
    assert_eq!(done.fields["stored"], sessions - 10);
    assert!(events.iter().all(|e| !serde_json::to_string(e).unwrap().contains("sekret")), "no secret in events");

    // Wrong credentials: a clear refusal, exit 3, the secret never shown.
    let env2 = Env { secret: "wrong-secret".into(), ..Env::new(&url) };
    let out = env2.run(&BACKFILL).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("401") && !err.contains("wrong-secret"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yahoo_files_import_with_bad_rows_reported_by_file_and_line() {
    let env = Env::new("http://127.0.0.1:1");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("BRK-B.csv"),
        "Date,Open,High,Low,Close,Adj Close,Volume\n2024-01-02,10,11,9,10.5,10.25,1000\n2024-01-03,null,null,null,null,null,null\n2024-01-04,10,x,9,10,10,1\n2024-01-05,10,11,9,10.6,10.35,1200\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("AAPL.csv"),
        "Date,Open,High,Low,Close,Adj Close,Volume\n2024-01-02,180,182,179,181,180.5,5000\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.csv"), "just,a,header\n").unwrap();
    // A recorded Alpaca bars page (one-minute bars), one page per line.
    std::fs::write(
        dir.path().join("alpaca-pages.jsonl"),
        "{\"bars\":{\"AAPL\":[{\"t\":\"2024-01-02T14:30:00Z\",\"o\":1,\"h\":2,\"l\":0.5,\"c\":1.5,\"v\":10},{\"t\":\"2024-01-02T14:31:00Z\",\"o\":1}]},\"next_page_token\":null}\n",
    )
    .unwrap();
    let r = env.json(&["import", "--json", dir.path().to_str().unwrap()]).await;
    let files: HashMap<String, Value> = r["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f[0].as_str().unwrap().rsplit('/').next().unwrap().to_string(), f[1].clone()))
        .collect();
    assert_eq!(
        files["BRK-B.csv"],
        json!({"read": 4, "stored": 2, "duplicates": 0, "merged": 0, "skipped": 1,
               "skipped_by": {"no price (a null row)": 1}, "rejected": 1})
    );
    assert_eq!(files["AAPL.csv"]["stored"], 1);
    assert_eq!(files["notes.csv"]["rejected"], 1, "a file without the columns is reported, the others still import");
    assert_eq!(
        files["alpaca-pages.jsonl"],
        json!({"read": 2, "stored": 1, "duplicates": 0, "merged": 0, "skipped": 0, "skipped_by": {}, "rejected": 1})
    );
    assert_eq!(env.count("bars").await, 1, "minute bars go where live ones do");
    let out = env.run(&["import", dir.path().to_str().unwrap()]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("BRK-B.csv:4: \"x\" is not a number"), "{err}");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("total (4 files)") && table.contains("duplicates"), "{table}");
    let c = mongodb::Client::with_uri_str(mongo_uri()).await.unwrap();
    let n = c
        .database(&env.db)
        .collection::<bson::Document>("bars_1d")
        .count_documents(bson::doc! {"ticker": "BRK.B"})
        .await
        .unwrap();
    assert_eq!(n, 2, "BRK-B.csv is BRK.B; the second import stored nothing new");
}
