//! The market sources against fake provider servers that speak the documented protocols,
//! with the intake writing to a real MongoDB and the control state on a real Redis.
// tungstenite's handshake callback returns its error response by value; that is its API.
#![allow(clippy::result_large_err)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bson::doc;
use cashtag_core::Secret;
use cashtag_intake::harness::*;
use cashtag_sources::Source;
use cashtag_sources::market::alpaca::{Alpaca, AlpacaConfig};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// What the fake servers saw.
#[derive(Default, Debug)]
struct Seen {
    connections: usize,
    subscriptions: Vec<serde_json::Value>,
    closed_by_client: usize,
    bars_requests: Vec<String>,
}

fn trade(sym: &str, id: u64, t: &str) -> serde_json::Value {
    serde_json::json!({"T":"t","S":sym,"i":id,"x":"V","p":100.0 + id as f64,"s":10,"c":["@"],"t":t,"z":"C"})
}

async fn send(ws: &mut Ws, v: serde_json::Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

async fn recv_json(ws: &mut Ws) -> serde_json::Value {
    loop {
        match ws.next().await.unwrap().unwrap() {
            Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            _ => continue,
        }
    }
}

/// The Alpaca stream: greeting, auth, subscription, then a per-connection script.
async fn alpaca_ws(seen: Arc<Mutex<Seen>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
                let n = {
                    let mut s = seen.lock().unwrap();
                    s.connections += 1;
                    s.connections
                };
                send(&mut ws, serde_json::json!([{"T":"success","msg":"connected"}])).await;
                let auth = recv_json(&mut ws).await;
                if auth["key"] == "bad" {
                    send(&mut ws, serde_json::json!([{"T":"error","code":402,"msg":"auth failed"}])).await;
                    return;
                }
                assert_eq!(auth["secret"], "s3cret");
                send(&mut ws, serde_json::json!([{"T":"success","msg":"authenticated"}])).await;
                let sub = recv_json(&mut ws).await;
                seen.lock().unwrap().subscriptions.push(sub.clone());
                send(&mut ws, serde_json::json!([{"T":"subscription","trades":sub["trades"],"quotes":sub["quotes"],"bars":sub["bars"]}])).await;
                match n {
                    1 => {
                        // Batched trades and a quote, a bad item, a frame that is not JSON, an
                        // error frame, one more trade, then the connection drops.
                        send(&mut ws, serde_json::json!([
                            trade("AAPL", 1, "2026-11-24T15:00:00.1Z"),
                            trade("MSFT", 2, "2026-11-24T15:00:00.2Z"),
                            {"T":"q","S":"AAPL","bx":"V","bp":100.5,"bs":1,"ax":"V","ap":100.6,"as":2,"c":["R"],"t":"2026-11-24T15:00:00.3Z","z":"C"},
                            {"T":"t","S":"AAPL","p":"oops"}
                        ])).await;
                        ws.send(Message::Text("garbage, not json".into())).await.unwrap();
                        send(&mut ws, serde_json::json!([{"T":"error","code":405,"msg":"symbol limit exceeded"}]))
                            .await;
                        send(&mut ws, serde_json::json!([trade("AAPL", 3, "2026-11-24T15:00:01Z")])).await;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        drop(ws); // mid-stream disconnect
                    }
                    _ => {
                        send(
                            &mut ws,
                            serde_json::json!([
                                trade("AAPL", 10 * n as u64, "2026-11-24T15:00:02Z"),
                                trade("MSFT", 10 * n as u64 + 1, "2026-11-24T15:00:02Z")
                            ]),
                        )
                        .await;
                        // Stay until the client closes (the market closed).
                        while let Some(m) = ws.next().await {
                            if matches!(m, Ok(Message::Close(_)) | Err(_)) {
                                break;
                            }
                        }
                        seen.lock().unwrap().closed_by_client += 1;
                    }
                }
            });
        }
    });
    url
}

/// The Alpaca REST bars endpoint: a 429 first, then two pages.
async fn alpaca_rest(seen: Arc<Mutex<Seen>>) -> String {
    let calls = Arc::new(Mutex::new(0usize));
    let app = axum::Router::new().route(
        "/v2/stocks/bars",
        axum::routing::get(move |headers: axum::http::HeaderMap, axum::extract::RawQuery(q): axum::extract::RawQuery| {
            let seen = seen.clone();
            let calls = calls.clone();
            async move {
                use axum::response::IntoResponse;
                assert_eq!(headers["APCA-API-KEY-ID"], "key");
                let q = q.unwrap_or_default();
                seen.lock().unwrap().bars_requests.push(q.clone());
                let n = {
                    let mut c = calls.lock().unwrap();
                    *c += 1;
                    *c
                };
                if n == 1 {
                    return (axum::http::StatusCode::TOO_MANY_REQUESTS, [("Retry-After", "1")], "slow down").into_response();
                }
                let body = if q.contains("page_token=p2") {
                    serde_json::json!({"bars": {"MSFT": [{"t":"2026-11-24T14:51:00Z","o":1,"h":2,"l":0.5,"c":1.5,"v":10,"n":3,"vw":1.2}]}, "next_page_token": null})
                } else {
                    serde_json::json!({"bars": {"AAPL": [{"t":"2026-11-24T14:50:00Z","o":1,"h":2,"l":0.5,"c":1.5,"v":10,"n":3,"vw":1.2}]}, "next_page_token": "p2"})
                };
                axum::Json(body).into_response()
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn alpaca(ws: &str, rest: &str, key: &str) -> Alpaca {
    Alpaca::new(AlpacaConfig {
        ws_url: ws.into(),
        rest_url: rest.into(),
        feed: "iex".into(),
        key_id: Secret::new(key),
        secret_key: Secret::new("s3cret"),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpaca_stream_reconnects_backfills_and_stops_with_the_market() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let ws = alpaca_ws(seen.clone()).await;
    let rest = alpaca_rest(seen.clone()).await;
    let h = start(alpaca(&format!("{ws}/"), &rest, "key"), &["AAPL", "MSFT"], fast_config()).await;
    // The market turned on ten minutes ago: the gap is backfilled from REST bars.
    h.control(true, 10).await;
    // Connection 1: 3 trades and a quote; connection 2 after the drop: 2 more.
    assert_eq!(
        h.wait_count("trades", doc! {}, 5, Duration::from_secs(20)).await,
        5,
        "nothing lost across the reconnect"
    );
    assert_eq!(
        h.wait_count("bars", doc! {"origin": "provider"}, 2, Duration::from_secs(20)).await,
        2,
        "backfilled bars"
    );
    assert_eq!(h.count("quotes", doc! {}).await, 1);
    assert_eq!(seen.lock().unwrap().subscriptions.len(), 2, "resubscribed after the reconnect");
    assert_eq!(seen.lock().unwrap().subscriptions[1]["trades"], serde_json::json!(["AAPL", "MSFT"]));

    // The market closes: the connection is closed and nothing more arrives.
    h.control(false, 0).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().closed_by_client < 1 {
        assert!(std::time::Instant::now() < deadline, "the source did not close its connection");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let connections = seen.lock().unwrap().connections;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(seen.lock().unwrap().connections, connections, "no reconnect while the market is closed");
    assert_eq!(h.count("trades", doc! {}).await, 5, "nothing written while stopped");

    // It opens again: a new connection, new data.
    h.control(true, 0).await;
    assert_eq!(h.wait_count("trades", doc! {}, 7, Duration::from_secs(20)).await, 7);

    let events = h.events().await;
    let codes: Vec<&str> = events.iter().map(|e| e.code.as_str()).collect();
    let malformed = events.iter().filter(|e| e.code == "source.malformed").count();
    assert!(malformed >= 2, "bad item and bad frame reported: {codes:?}");
    assert!(codes.contains(&"source.symbol_limit"), "{codes:?}");
    assert!(codes.contains(&"source.disconnected"), "{codes:?}");
    assert!(codes.contains(&"source.rate_limited"), "{codes:?}");
    assert!(codes.contains(&"source.backfill"), "{codes:?}");
    assert!(events.iter().all(|e| !e.message.contains("s3cret")), "no secret in events");
    let backfill_queries = seen.lock().unwrap().bars_requests.clone();
    assert!(
        backfill_queries.iter().any(|q| q.contains("timeframe=1Min") && q.contains("feed=iex")),
        "{backfill_queries:?}"
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpaca_auth_failure_is_reported_and_retried_without_a_crash() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let ws = alpaca_ws(seen.clone()).await;
    let h = start(alpaca(&ws, "http://127.0.0.1:9", "bad"), &["AAPL"], fast_config()).await;
    h.control(true, 0).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while seen.lock().unwrap().connections < 2 {
        assert!(std::time::Instant::now() < deadline, "no retry after the auth failure");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events = h.events().await;
    assert!(events.iter().any(|e| e.code == "source.auth_failed" && e.message.contains("alpaca.key_id")));
    assert!(events.iter().all(|e| !e.message.contains("s3cret")));
    assert_eq!(h.count("trades", doc! {}).await, 0);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iex_batch_polling_with_a_429_and_a_bad_response() {
    let calls = Arc::new(Mutex::new(0usize));
    let c = calls.clone();
    let app = axum::Router::new().route(
        "/stable/stock/market/batch",
        axum::routing::get(move |axum::extract::RawQuery(q): axum::extract::RawQuery| {
            let c = c.clone();
            async move {
                use axum::response::IntoResponse;
                let q = q.unwrap_or_default();
                assert!(q.contains("token=tok") && q.contains("types=quote") && q.contains("symbols=AAPL%2CMSFT"), "{q}");
                let n = {
                    let mut c = c.lock().unwrap();
                    *c += 1;
                    *c
                };
                let quote = |sym: &str, upd: i64| serde_json::json!({"quote": {"symbol": sym, "latestPrice": 10.0, "latestVolume": 5, "latestUpdate": upd, "iexBidPrice": 9.9, "iexAskPrice": 10.1}});
                match n {
                    1 => (axum::http::StatusCode::TOO_MANY_REQUESTS, [("Retry-After", "1")], "").into_response(),
                    2 | 3 => axum::Json(serde_json::json!({"AAPL": quote("AAPL", 1_795_532_400_000), "MSFT": quote("MSFT", 1_795_532_400_000)})).into_response(),
                    4 => "{truncated".into_response(),
                    _ => axum::Json(serde_json::json!({"AAPL": quote("AAPL", 1_795_532_460_000), "MSFT": quote("MSFT", 1_795_532_400_000)})).into_response(),
                }
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let source = cashtag_sources::market::iex::Iex::new(url, Secret::new("tok"), Duration::from_millis(100));
    let h = start(source, &["AAPL", "MSFT"], fast_config()).await;
    h.control(true, 0).await;
    // Two symbols' first quotes, then AAPL's update; repeats are not stored twice.
    assert_eq!(h.wait_count("quotes", doc! {}, 3, Duration::from_secs(15)).await, 3);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.count("quotes", doc! {}).await, 3);
    let events = h.events().await;
    assert!(events.iter().any(|e| e.code == "source.rate_limited"));
    assert!(events.iter().any(|e| e.code == "source.malformed"));
    assert!(events.iter().all(|e| !e.message.contains("tok")), "the token never appears");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finnhub_trades_pings_bad_lines_and_a_reconnect() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let conns = Arc::new(Mutex::new(0usize));
    let c2 = conns.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let c = c2.clone();
            tokio::spawn(async move {
                let mut req_path = String::new();
                let cb = |req: &tokio_tungstenite::tungstenite::handshake::server::Request, resp| {
                    req_path = req.uri().to_string();
                    Ok(resp)
                };
                let mut ws = tokio_tungstenite::accept_hdr_async(tcp, cb).await.unwrap();
                assert!(req_path.contains("token=fh"), "{req_path}");
                let n = {
                    let mut c = c.lock().unwrap();
                    *c += 1;
                    *c
                };
                let sub1 = recv_json(&mut ws).await;
                let sub2 = recv_json(&mut ws).await;
                assert_eq!((sub1["type"].as_str(), sub2["type"].as_str()), (Some("subscribe"), Some("subscribe")));
                send(&mut ws, serde_json::json!({"type": "ping"})).await;
                if n == 1 {
                    send(&mut ws, serde_json::json!({"type":"trade","data":[{"p":10.5,"s":"AAPL","t":1795532400100i64,"v":5},{"p":20.5,"s":"MSFT","t":1795532400200i64,"v":7}]})).await;
                    ws.send(Message::Text("nonsense".into())).await.unwrap();
                    drop(ws);
                } else {
                    send(
                        &mut ws,
                        serde_json::json!({"type":"trade","data":[{"p":10.6,"s":"AAPL","t":1795532401100i64,"v":1}]}),
                    )
                    .await;
                    while let Some(Ok(m)) = ws.next().await {
                        if m.is_close() {
                            break;
                        }
                    }
                }
            });
        }
    });
    let source = cashtag_sources::market::finnhub::Finnhub::new(url, Secret::new("fh"));
    let h = start(source, &["AAPL", "MSFT"], fast_config()).await;
    h.control(true, 0).await;
    assert_eq!(h.wait_count("trades", doc! {}, 3, Duration::from_secs(15)).await, 3);
    assert!(*conns.lock().unwrap() >= 2);
    let events = h.events().await;
    assert!(events.iter().any(|e| e.code == "source.malformed"));
    assert!(events.iter().all(|e| !e.message.contains("token=fh")), "the token never appears");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_replays_into_the_same_records() {
    use cashtag_core::{Ticker, Watchlist};
    use cashtag_sources::{Recorder, SourceCtx};
    let seen = Arc::new(Mutex::new(Seen::default()));
    let ws = alpaca_ws(seen.clone()).await;
    let dir = std::env::temp_dir().join(cashtag_testkit::unique("recording"));
    let b = bus(&cashtag_testkit::unique("t-replay"), "stocks");
    let watchlist =
        b.watch_watchlist(Watchlist::from_tickers([Ticker::parse("AAPL").unwrap(), Ticker::parse("MSFT").unwrap()]));
    let ctx = |out, recorder, cancel| SourceCtx {
        out,
        events: b.emitter(),
        recorder,
        watchlist: watchlist.clone(),
        cancel,
        resume_from: None,
        accepted: Default::default(),
    };

    // Live: connection 1 (three trades and a quote, then a drop), connection 2 (two trades).
    let (tx, mut rx) = tokio::sync::mpsc::channel(1_000);
    let cancel = tokio_util::sync::CancellationToken::new();
    let live_ctx = ctx(tx, Some(Recorder::new(&dir).unwrap()), cancel.clone());
    let mut source = alpaca(&ws, "http://127.0.0.1:9", "key");
    let task = tokio::spawn(async move { source.run(&live_ctx).await });
    let mut live = Vec::new();
    while live.len() < 6 {
        live.push(tokio::time::timeout(Duration::from_secs(15), rx.recv()).await.unwrap().unwrap());
    }
    cancel.cancel();
    task.await.unwrap().unwrap();

    // Replay, as fast as possible.
    let (tx, mut rx) = tokio::sync::mpsc::channel(1_000);
    let cancel = tokio_util::sync::CancellationToken::new();
    let replay_ctx = ctx(tx, None, cancel.clone());
    let mut replay = cashtag_sources::replay::Replay::new(dir.clone(), 0.0, cashtag_sources::registry::parse_recorded);
    let task = tokio::spawn(async move { replay.run(&replay_ctx).await });
    let mut replayed = Vec::new();
    while replayed.len() < live.len() {
        replayed.push(tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap());
    }
    assert!(tokio::time::timeout(Duration::from_millis(300), rx.recv()).await.is_err(), "nothing more");
    cancel.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(replayed, live);
    let _ = std::fs::remove_dir_all(dir);
}

/// An error storm: one frame of 100,000 bad items, then frame after frame of bad items. It
/// is one event per frame at most, held back past the bus's burst; the events stream stays
/// small in Redis, and the good trades around the storm are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_bad_items_stays_small_in_redis_and_the_good_data_flows() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws_url = format!("ws://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        send(&mut ws, serde_json::json!([{"T":"success","msg":"connected"}])).await;
        let _auth = recv_json(&mut ws).await;
        send(&mut ws, serde_json::json!([{"T":"success","msg":"authenticated"}])).await;
        let sub = recv_json(&mut ws).await;
        send(&mut ws, serde_json::json!([{"T":"subscription","trades":sub["trades"]}])).await;
        let bad = |n: usize| serde_json::Value::Array(vec![serde_json::json!({"T":"t","S":"AAPL","p":"oops"}); n]);
        send(&mut ws, bad(100_000)).await;
        send(&mut ws, serde_json::json!([trade("AAPL", 1, "2026-11-24T15:00:00Z")])).await;
        for _ in 0..200 {
            send(&mut ws, bad(500)).await;
        }
        send(&mut ws, serde_json::json!([trade("AAPL", 2, "2026-11-24T15:00:01Z")])).await;
        while let Some(Ok(_)) = ws.next().await {}
    });
    let rest = alpaca_rest(Arc::new(Mutex::new(Seen::default()))).await;
    let h = start(alpaca(&ws_url, &rest, "key"), &["AAPL"], fast_config()).await;
    h.control(true, 0).await;
    assert_eq!(h.wait_count("trades", doc! {}, 2, Duration::from_secs(30)).await, 2, "the good trades are stored");

    let producer = cashtag_intake::harness::bus(&h.prefix, "reader");
    let events = h.events().await;
    let malformed: Vec<_> = events.iter().filter(|e| e.code == "source.malformed").collect();
    assert!(!malformed.is_empty() && malformed.len() <= cashtag_bus::limit::BURST as usize, "{}", malformed.len());
    assert!(malformed[0].message.contains("100000 items skipped"), "{}", malformed[0].message);
    let stream = producer.keys().events_stream();
    let mut c = producer.conn();
    let bytes: u64 = memory_usage(&mut c, &stream).await;
    assert!(bytes < 256 * 1024, "the events stream holds {bytes} bytes after 200,100 bad items");
    h.finish().await;
}

/// `MEMORY USAGE key SAMPLES 0`: the exact size of a key in Redis.
async fn memory_usage(c: &mut redis::aio::ConnectionManager, key: &str) -> u64 {
    redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(key)
        .arg("SAMPLES")
        .arg(0)
        .query_async::<Option<u64>>(c)
        .await
        .unwrap()
        .unwrap_or(0)
}
