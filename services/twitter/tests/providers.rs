//! The social sources against fake X, StockTwits and Jetstream servers, through the intake
//! (dedup, filters, scoring) into a real MongoDB, with the control state on a real Redis.
// tungstenite's handshake callback returns its error response by value; that is its API.
#![allow(clippy::result_large_err)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bson::doc;
use cashtag_core::{CountKind, Secret, Ticker, Watchlist};
use cashtag_intake::IntakeConfig;
use cashtag_intake::harness::*;
use cashtag_intake::posts::PostFilter;
use cashtag_sources::social::x::{XConfig, XStream, XTiming};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

fn config() -> IntakeConfig {
    IntakeConfig { bars_from_trades: false, primary_kind: CountKind::Posts, ..fast_config() }
}

fn filter() -> Option<cashtag_intake::Transform> {
    let mut f = PostFilter::new(vec!["en".into()], false);
    Some(Box::new(move |r| f.apply(r)))
}

async fn serve(app: axum::Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

// ---------------------------------------------------------------------------- X

#[derive(Default)]
struct XState {
    rules: Vec<(String, String, String)>, // id, value, tag
    next_id: u64,
    connections: usize,
    adds: Vec<serde_json::Value>,
}

fn tweet(id: &str, text: &str) -> String {
    serde_json::json!({
        "data": {"id": id, "text": text, "author_id": "u1", "created_at": "2026-11-24T15:00:00.000Z", "lang": "en",
                 "public_metrics": {"like_count": 2, "retweet_count": 0, "reply_count": 0, "quote_count": 0}},
        "includes": {"users": [{"id": "u1", "username": "trader", "public_metrics": {"followers_count": 50}}]},
        "matching_rules": [{"id": "1", "tag": "cashtag:1"}]
    })
    .to_string()
}

async fn fake_x(state: Arc<Mutex<XState>>) -> String {
    let s1 = state.clone();
    let s2 = state.clone();
    let s3 = state.clone();
    let app = axum::Router::new()
        .route(
            "/2/tweets/search/stream/rules",
            axum::routing::get(move |h: axum::http::HeaderMap| {
                let s = s1.clone();
                async move {
                    assert_eq!(h["authorization"], "Bearer xtoken");
                    let rules = s.lock().unwrap().rules.clone();
                    axum::Json(serde_json::json!({"data": rules.iter().map(|(id, v, t)| serde_json::json!({"id": id, "value": v, "tag": t})).collect::<Vec<_>>(), "meta": {"result_count": rules.len()}}))
                }
            })
            .post(move |axum::Json(body): axum::Json<serde_json::Value>| {
                let s = s2.clone();
                async move {
                    let mut st = s.lock().unwrap();
                    if let Some(ids) = body.pointer("/delete/ids").and_then(|v| v.as_array()) {
                        let ids: Vec<String> = ids.iter().map(|i| i.as_str().unwrap().to_string()).collect();
                        st.rules.retain(|(id, _, _)| !ids.contains(id));
                        return axum::Json(serde_json::json!({"meta": {"summary": {"deleted": ids.len(), "not_deleted": 0}}}));
                    }
                    st.adds.push(body.clone());
                    let (mut created, mut invalid, mut errors) = (0, 0, vec![]);
                    for r in body["add"].as_array().unwrap() {
                        let v = r["value"].as_str().unwrap().to_string();
                        if v.contains("$NVDA") {
                            invalid += 1;
                            errors.push(serde_json::json!({"value": v, "title": "Invalid Rule", "details": ["test says no"]}));
                            continue;
                        }
                        st.next_id += 1;
                        let id = format!("r{}", st.next_id);
                        st.rules.push((id, v, r["tag"].as_str().unwrap().to_string()));
                        created += 1;
                    }
                    axum::Json(serde_json::json!({"meta": {"summary": {"created": created, "not_created": invalid, "valid": created, "invalid": invalid}}, "errors": errors}))
                }
            }),
        )
        .route(
            "/2/tweets/search/stream",
            axum::routing::get(move |axum::extract::RawQuery(q): axum::extract::RawQuery| {
                let s = s3.clone();
                async move {
                    use axum::response::IntoResponse;
                    let q = q.unwrap_or_default();
                    assert!(q.contains("expansions=author_id") && q.contains("tweet.fields="), "{q}");
                    let n = {
                        let mut st = s.lock().unwrap();
                        st.connections += 1;
                        st.connections
                    };
                    let lines: Vec<String> = match n {
                        // keep-alive, a post, a malformed line, another post; then the connection drops.
                        1 => vec!["\r\n".into(), tweet("1", "$AAPL to the moon 🚀"), "{bad json".into(), tweet("2", "shorting $MSFT, bearish")],
                        2 => return (axum::http::StatusCode::TOO_MANY_REQUESTS, "Too Many Requests").into_response(),
                        // a duplicate after the reconnect, a new post, an operational disconnect.
                        3 => vec![tweet("2", "shorting $MSFT, bearish"), tweet("3", "$AAPL and $BABA, nothing else"), r#"{"errors":[{"title":"operational-disconnect","disconnect_type":"UpstreamOperationalDisconnect","detail":"This stream has been disconnected upstream for operational reasons."}]}"#.into()],
                        _ => vec![tweet("4", "$TSLA earnings beat"), "\r\n".into()],
                    };
                    let keep_open = n >= 4;
                    let stream = async_stream(lines, keep_open);
                    axum::body::Body::from_stream(stream).into_response()
                }
            }),
        );
    serve(app).await
}

/// The lines, one per chunk; then either the end (a dropped connection) or keep-alives.
fn async_stream(lines: Vec<String>, keep_open: bool) -> impl futures::Stream<Item = Result<String, std::io::Error>> {
    futures::stream::unfold((lines.into_iter(), keep_open), |(mut it, keep)| async move {
        match it.next() {
            Some(l) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let l = if l.ends_with('\n') { l } else { format!("{l}\r\n") };
                Some((Ok(l), (it, keep)))
            }
            None if keep => {
                tokio::time::sleep(Duration::from_millis(300)).await;
                Some((Ok("\r\n".to_string()), (it, keep)))
            }
            None => None,
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_rules_sync_and_the_stream_survives_its_failures_without_loss_or_duplicates() {
    let state = Arc::new(Mutex::new(XState::default()));
    {
        let mut st = state.lock().unwrap();
        st.rules.push(("old".into(), "($OLD) lang:en -is:retweet".into(), "cashtag:1".into()));
        st.rules.push(("theirs".into(), "from:someone".into(), "other".into()));
        st.next_id = 100;
    }
    let url = fake_x(state.clone()).await;
    let x = XStream::new(XConfig {
        api_url: url,
        bearer: Secret::new("xtoken"),
        rule_max_len: 1024,
        max_rules: 1000,
        languages: vec!["en".into()],
        include_reposts: false,
        timing: XTiming {
            read_timeout: Duration::from_secs(3),
            network_step: Duration::from_millis(50),
            network_max: Duration::from_millis(500),
            http_initial: Duration::from_millis(100),
            http_max: Duration::from_secs(1),
            rate_limit_initial: Duration::from_millis(300),
        },
    });
    let h = start_with(x, &["AAPL", "MSFT", "TSLA", "BA"], config(), filter()).await;
    h.control(true, 0).await;
    assert_eq!(h.wait_count("posts", doc! {}, 4, Duration::from_secs(20)).await, 4, "posts 1–4");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.count("posts", doc! {}).await, 4, "no duplicate after the reconnect");
    assert_eq!(h.count("posts", doc! {"tickers": "BA"}).await, 0, "$BABA is not $BA");
    assert_eq!(h.count("posts", doc! {"sentiment.finance.label": "bearish", "tickers": "MSFT"}).await, 1, "scored");

    // Rules: ours synchronized, the stale one deleted, someone else's untouched.
    {
        let st = state.lock().unwrap();
        let values: Vec<&str> = st.rules.iter().map(|(_, v, _)| v.as_str()).collect();
        assert_eq!(values, vec!["from:someone", "($AAPL OR $MSFT OR $TSLA OR $BA) lang:en -is:retweet"]);
        assert!(st.connections >= 4);
    }
    // The watchlist changes: rules follow; the server refuses the new one as invalid.
    let tickers = ["AAPL", "MSFT", "TSLA", "BA", "NVDA"].map(|t| Ticker::parse(t).unwrap());
    h.manager.publish_watchlist(&Watchlist::from_tickers(tickers)).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while state.lock().unwrap().adds.len() < 2 {
        assert!(std::time::Instant::now() < deadline, "no resync after the watchlist change");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let wanted = ["x.rules_synced", "x.rule_invalid", "source.malformed", "source.rate_limited", "source.disconnected"];
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut events = h.events().await;
    while !wanted.iter().all(|w| events.iter().any(|e| e.code == *w)) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        events = h.events().await;
    }
    let codes: Vec<&str> = events.iter().map(|e| e.code.as_str()).collect();
    for code in wanted {
        assert!(codes.contains(&code), "{code} missing from {codes:?}");
    }
    assert!(events.iter().all(|e| !e.message.contains("xtoken")));
    h.finish().await;
}

// ------------------------------------------------------------------- StockTwits

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stocktwits_polls_with_a_cursor_keeps_labels_and_waits_on_429() {
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/api/2/streams/symbol/{file}",
        axum::routing::get(move |axum::extract::Path(file): axum::extract::Path<String>, axum::extract::RawQuery(q): axum::extract::RawQuery| {
            let s = s.clone();
            async move {
                use axum::response::IntoResponse;
                let q = q.unwrap_or_default();
                let n = {
                    let mut v = s.lock().unwrap();
                    v.push(format!("{file}?{q}"));
                    v.len()
                };
                if n == 2 {
                    return (axum::http::StatusCode::TOO_MANY_REQUESTS, [("Retry-After", "0")], "").into_response();
                }
                let sym = file.trim_end_matches(".json");
                let msg = |id: u64, body: &str, label: Option<&str>| serde_json::json!({
                    "id": id, "body": body, "created_at": "2026-11-24T15:00:00Z",
                    "user": {"id": 7, "username": "bull", "followers": 10},
                    "symbols": [{"symbol": sym}],
                    "entities": {"sentiment": label.map(|l| serde_json::json!({"basic": l}))}
                });
                let since: u64 = q.strip_prefix("since=").and_then(|v| v.parse().ok()).unwrap_or(0);
                let all = [msg(10, &format!("${sym} looking good"), Some("Bullish")), msg(11, &format!("${sym} meh"), None), msg(12, &format!("${sym} dumping"), Some("Bearish"))];
                let base = if sym == "AAPL" { 0 } else { 100 };
                let msgs: Vec<serde_json::Value> = all
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| n > 2 || *i < 2)
                    .map(|(_, m)| {
                        let mut m = m.clone();
                        m["id"] = (m["id"].as_u64().unwrap() + base).into();
                        m
                    })
                    .filter(|m| m["id"].as_u64().unwrap() > since)
                    .collect();
                axum::Json(serde_json::json!({"response": {"status": 200}, "symbol": {"symbol": sym}, "cursor": {"more": false}, "messages": msgs})).into_response()
            }
        }),
    );
    let url = serve(app).await;
    let st = cashtag_sources::social::stocktwits::StockTwits::new(url, Duration::from_millis(100));
    let h = start_with(st, &["AAPL", "MSFT"], config(), filter()).await;
    h.control(true, 0).await;
    assert_eq!(h.wait_count("posts", doc! {}, 6, Duration::from_secs(20)).await, 6);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(h.count("posts", doc! {}).await, 6, "the cursor prevents repeats");
    assert_eq!(h.count("posts", doc! {"author_label": "bullish"}).await, 2);
    assert_eq!(h.count("posts", doc! {"sentiment.author_label": "bearish"}).await, 2);
    let urls = seen.lock().unwrap().clone();
    assert!(urls.iter().any(|u| u.starts_with("AAPL.json?since=11")), "{urls:?}");
    assert!(h.events().await.iter().any(|e| e.code == "source.rate_limited"));
    h.finish().await;
}

// --------------------------------------------------------------------- Bluesky

fn jet(did: &str, rkey: &str, time_us: i64, text: &str, tag: &str) -> String {
    serde_json::json!({"did": did, "time_us": time_us, "kind": "commit", "commit": {"rev": "r", "operation": "create", "collection": "app.bsky.feed.post", "rkey": rkey, "cid": "c",
        "record": {"$type": "app.bsky.feed.post", "text": text, "createdAt": "2026-11-24T15:00:00.000Z", "langs": ["en"],
                   "facets": [{"index": {"byteStart": 0, "byteEnd": 1}, "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": tag}]}]}}})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_filters_locally_and_resumes_from_its_cursor() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let paths = Arc::new(Mutex::new(Vec::<String>::new()));
    let p2 = paths.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let paths = p2.clone();
            tokio::spawn(async move {
                let mut path = String::new();
                let mut ws = tokio_tungstenite::accept_hdr_async(
                    tcp,
                    |req: &tokio_tungstenite::tungstenite::handshake::server::Request, resp| {
                        path = req.uri().to_string();
                        Ok(resp)
                    },
                )
                .await
                .unwrap();
                let n = {
                    let mut p = paths.lock().unwrap();
                    p.push(path.clone());
                    p.len()
                };
                let msgs = if n == 1 {
                    vec![
                        jet("did:a", "1", 1000, "buying more", "$AAPL"),
                        jet("did:b", "2", 1001, "cats are great", "cats"),
                        jet("did:c", "3", 1002, "$TSLA in text only", "x"),
                        "nonsense".into(),
                    ]
                } else {
                    // Inclusive replay from the cursor: the last post again, then a new one.
                    vec![
                        jet("did:c", "3", 1002, "$TSLA in text only", "x"),
                        jet("did:d", "4", 1003, "$MSFT not watched", "$MSFT"),
                        jet("did:e", "5", 1004, "so bullish", "$AAPL"),
                    ]
                };
                for m in msgs {
                    ws.send(Message::Text(m.into())).await.unwrap();
                }
                if n == 1 {
                    return; // drop the connection
                }
                while let Some(Ok(m)) = ws.next().await {
                    if m.is_close() {
                        break;
                    }
                }
            });
        }
    });
    let js = cashtag_sources::social::bluesky::Jetstream::new(url);
    let h = start_with(js, &["AAPL", "TSLA"], config(), filter()).await;
    h.control(true, 0).await;
    assert_eq!(h.wait_count("posts", doc! {}, 3, Duration::from_secs(20)).await, 3);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.count("posts", doc! {}).await, 3, "the replayed post is stored once");
    let paths = paths.lock().unwrap().clone();
    assert!(paths[0].contains("wantedCollections=app.bsky.feed.post") && !paths[0].contains("cursor"), "{paths:?}");
    assert!(paths[1].contains("cursor=1002"), "{paths:?}");
    assert!(h.events().await.iter().any(|e| e.code == "source.malformed"));
    h.finish().await;
}
