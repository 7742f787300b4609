//! `cashtag-twitter backfill` and `import` as processes: fake X search and StockTwits
//! servers speaking the documented history protocols (full-archive search refused for
//! the plan, recent search with `next_token` and rate-limit headers, a bad tweet object,
//! StockTwits paged back with `max`), checkpoints that make a rerun fetch nothing, and a
//! mixed archive (v1.1, v2, StockTwits, gzip, a truncated gzip, malformed lines) that
//! imports everything good, reports each bad line, and stores nothing new the second time.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use cashtag_testkit::{aws_endpoint, mongo_uri, redis_url, unique};
use chrono::{TimeDelta, Utc};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_cashtag-twitter");

#[derive(Default)]
struct Fake {
    /// (path, query parameters) of every request.
    log: Mutex<Vec<(String, HashMap<String, String>)>>,
}

fn tweet(id: &str, text: &str, ago: TimeDelta) -> Value {
    json!({"id": id, "text": text, "author_id": "9", "lang": "en", "created_at": (Utc::now() - ago).to_rfc3339(),
           "public_metrics": {"like_count": 1, "retweet_count": 0, "reply_count": 0, "quote_count": 0}, "edit_history_tweet_ids": [id]})
}

async fn search_all(State(f): State<Arc<Fake>>, Query(q): Query<HashMap<String, String>>) -> Response {
    f.log.lock().unwrap().push(("/2/tweets/search/all".into(), q));
    (
        StatusCode::FORBIDDEN,
        axum::Json(json!({"title": "Client Forbidden", "reason": "client-not-enrolled", "type": "https://api.twitter.com/2/problems/client-forbidden",
                          "detail": "When authenticating requests to the Twitter API v2 endpoints, you must use keys and tokens from a Twitter developer App that is attached to a Project."})),
    )
        .into_response()
}

async fn search_recent(
    State(f): State<Arc<Fake>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer tok") {
        return (StatusCode::UNAUTHORIZED, "{\"title\":\"Unauthorized\"}").into_response();
    }
    f.log.lock().unwrap().push(("/2/tweets/search/recent".into(), q.clone()));
    let users = json!({"users": [{"id": "9", "username": "trader", "public_metrics": {"followers_count": 50}}]});
    match q.get("next_token").map(String::as_str) {
        None => {
            let body = json!({"data": [tweet("101", "$AAA looks great, strong buy", TimeDelta::hours(20)),
                                       tweet("102", "$ZZZ is not ours", TimeDelta::hours(20)),
                                       {"id": "103"}],
                              "includes": users, "meta": {"result_count": 3, "next_token": "n2", "newest_id": "103", "oldest_id": "101"}});
            let reset = (Utc::now().timestamp() + 1).to_string();
            (
                [
                    ("x-rate-limit-limit", "450".to_string()),
                    ("x-rate-limit-remaining", "0".into()),
                    ("x-rate-limit-reset", reset),
                ],
                axum::Json(body),
            )
                .into_response()
        }
        Some("n2") => {
            let mut rt = tweet("105", "RT @x: $BBB up", TimeDelta::hours(10));
            rt["referenced_tweets"] = json!([{"type": "retweeted", "id": "99"}]);
            axum::Json(json!({"data": [tweet("104", "$BBB awful news, terrible quarter", TimeDelta::hours(10)), rt],
                              "includes": users, "meta": {"result_count": 2}}))
            .into_response()
        }
        Some(other) => (StatusCode::BAD_REQUEST, format!("unknown token {other}")).into_response(),
    }
}

async fn stocktwits(
    State(f): State<Arc<Fake>>,
    Path(file): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    f.log.lock().unwrap().push((format!("/api/2/streams/symbol/{file}"), q.clone()));
    let sym = file.trim_end_matches(".json");
    let top: u64 = q.get("max").map_or(130, |m| m.parse().unwrap());
    let messages: Vec<Value> = if sym == "AAA" {
        (0..10u64)
            .map(|i| top - i)
            .filter(|id| *id > 100)
            .map(|id| {
                // Older ids are older messages; below 115 they are before the range.
                let at = if id >= 115 {
                    Utc::now() - TimeDelta::hours(130 - id as i64)
                } else {
                    Utc::now() - TimeDelta::days(9)
                };
                json!({"id": id, "body": format!("$AAA message {id}"), "created_at": at.to_rfc3339(),
                       "user": {"id": 7, "username": "st", "followers": 3}, "symbols": [{"symbol": "AAA"}],
                       "entities": {"sentiment": {"basic": "Bullish"}}})
            })
            .collect()
    } else {
        vec![]
    };
    axum::Json(json!({"response": {"status": 200}, "cursor": {"more": true, "max": top}, "messages": messages}))
        .into_response()
}

async fn fakes() -> (String, Arc<Fake>) {
    let fake = Arc::new(Fake::default());
    let app = axum::Router::new()
        .route("/2/tweets/search/all", axum::routing::get(search_all))
        .route("/2/tweets/search/recent", axum::routing::get(search_recent))
        .route("/api/2/streams/symbol/{file}", axum::routing::get(stocktwits))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, fake)
}

struct Env {
    db: String,
    prefix: String,
    url: String,
    watchlist: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Env {
    fn new(url: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let watchlist = dir.path().join("watchlist.toml");
        std::fs::write(
            &watchlist,
            "[[company]]\nticker = \"AAA\"\nname = \"A\"\n[[company]]\nticker = \"BBB\"\nname = \"B\"\n",
        )
        .unwrap();
        Env { db: unique("hist"), prefix: unique("t-hist"), url: url.into(), watchlist, _dir: dir }
    }

    async fn run(&self, args: &[&str]) -> Output {
        let mut c = Command::new(BIN);
        c.env("CASHTAG_MONGO_URI", mongo_uri())
            .env("CASHTAG_MONGO_DATABASE", &self.db)
            .env("CASHTAG_REDIS_URL", redis_url())
            .env("CASHTAG_REDIS_PREFIX", &self.prefix)
            .env("CASHTAG_AWS_ENDPOINT", aws_endpoint())
            .env("CASHTAG_FLAGS_KINESIS_WRITE", "false")
            .env("CASHTAG_WATCHLIST_FILE", &self.watchlist)
            .env("CASHTAG_TWITTER_X_API_URL", &self.url)
            .env("CASHTAG_TWITTER_X_BEARER_TOKEN", "tok")
            .env("CASHTAG_TWITTER_STOCKTWITS_URL", &self.url)
            .env("CASHTAG_TWITTER_STOCKTWITS_REQUESTS_PER_HOUR", "360000")
            .arg("--quiet")
            .args(args);
        let out = tokio::task::spawn_blocking(move || c.output().unwrap()).await.unwrap();
        println!(
            "$ cashtag-twitter {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    async fn json(&self, args: &[&str]) -> (Value, String) {
        let out = self.run(args).await;
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{args:?}: {err}");
        (serde_json::from_slice(&out.stdout).unwrap(), err)
    }

    async fn posts(&self, filter: bson::Document) -> Vec<bson::Document> {
        use futures::TryStreamExt;
        let c = mongodb::Client::with_uri_str(mongo_uri()).await.unwrap();
        c.database(&self.db)
            .collection::<bson::Document>("posts")
            .find(filter)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_finds_the_plan_follows_next_token_and_pages_stocktwits_back() {
    let (url, fake) = fakes().await;
    let env = Env::new(&url);
    let today = Utc::now().with_timezone(&chrono_tz::America::New_York).date_naive();
    let from = (today - TimeDelta::days(2)).to_string();
    let args = ["backfill", "--from", &from, "--to", &today.to_string(), "--sources", "x,stocktwits", "--json"];
    let (r, err) = env.json(&args).await;
    assert!(err.contains("using recent search"), "the plan has no full archive; said so: {err}");
    assert!(err.contains("bad item skipped"), "{err}");
    let log = fake.log.lock().unwrap().clone();
    let recent: Vec<&HashMap<String, String>> =
        log.iter().filter(|(p, _)| p == "/2/tweets/search/recent").map(|(_, q)| q).collect();
    assert_eq!(recent.len(), 2, "two pages");
    let q = recent[0];
    assert!(q["query"].contains("$AAA") && q["query"].contains("$BBB"), "the live rules' packed query: {}", q["query"]);
    assert!(q["tweet.fields"].contains("created_at") && q["expansions"] == "author_id" && q["max_results"] == "100");
    let start: chrono::DateTime<Utc> = q["start_time"].parse().unwrap();
    assert!(start >= Utc::now() - TimeDelta::days(7), "recent search starts within 7 days");
    assert_eq!(recent[1]["next_token"], "n2");
    let pages: Vec<&HashMap<String, String>> =
        log.iter().filter(|(p, _)| p.ends_with("AAA.json")).map(|(_, q)| q).collect();
    assert_eq!(pages.len(), 2, "paged back once with max");
    assert_eq!(pages[1]["max"], "120");

    let x = env.posts(bson::doc! {"source": "x"}).await;
    let ids: Vec<&str> = x.iter().map(|p| p.get_str("id").unwrap()).collect();
    assert_eq!(ids.len(), 2, "the watched, not reposted tweets: {ids:?}");
    for p in &x {
        assert!(p.get_document("sentiment").unwrap().get_document("vader").is_ok(), "scored as live");
    }
    let st = env.posts(bson::doc! {"source": "stocktwits"}).await;
    assert_eq!(st.len(), 16, "messages 115..130 are in the range, the older ones not");
    let t = &r["total"];
    assert_eq!((t["stored"].as_u64(), t["rejected"].as_u64()), (Some(18), Some(1)));

    // A rerun has nothing left to fetch.
    fake.log.lock().unwrap().clear();
    let (r, _) = env.json(&args).await;
    assert_eq!(r["total"]["stored"], 0);
    let again = fake.log.lock().unwrap().clone();
    assert!(again.iter().all(|(p, _)| p == "/2/tweets/search/all"), "only the plan probe: {again:?}");
}

fn gzip(lines: &[String]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for l in lines {
        writeln!(gz, "{l}").unwrap();
    }
    gz.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_archive_imports_every_good_line_and_reports_each_bad_one() {
    let env = Env::new("http://127.0.0.1:1");
    let dir = tempfile::tempdir().unwrap();
    let v1 = |id: u64, created: &str, text: &str| {
        json!({"created_at": created, "id": id, "id_str": id.to_string(), "text": text, "user": {"id_str": "5", "screen_name": "u"},
               "entities": {"symbols": []}, "lang": "en", "a_field_from_2014": {"x": 1}})
        .to_string()
    };
    std::fs::create_dir_all(dir.path().join("AAA")).unwrap();
    let mut research = [
        v1(1, "Wed Jan 01 03:59:03 +0000 2014", "$AAA is great"),
        v1(2, "Wed Jan 01 04:00:00 +0000 2014", "no cashtag, but the folder says AAA"),
        "{oops".to_string(),
        "[1, 2]".to_string(),
        v1(3, "2014-01-01", "$AAA bad date"),
    ]
    .join("\n")
    .into_bytes();
    research.extend(b"\n\xff\xfe not utf-8\n");
    std::fs::write(dir.path().join("AAA").join("2014-01-01"), research).unwrap();
    let v2_lines = vec![
        json!({"data": tweet("201", "$BBB with includes", TimeDelta::days(400)), "includes": {"users": [{"id": "9", "username": "trader"}]}}).to_string(),
        tweet("202", "bare v2 object about $AAA", TimeDelta::days(400)).to_string(),
        json!({"id": "203", "text": "$AAA without a date"}).to_string(),
    ];
    std::fs::write(dir.path().join("v2.jsonl.gz"), gzip(&v2_lines)).unwrap();
    let many: Vec<String> = (0..3000)
        .map(|i| {
            tweet(&format!("{}", 300_000 + i), &format!("$BBB number {i} of a long archive"), TimeDelta::days(300))
                .to_string()
        })
        .collect();
    let whole = gzip(&many);
    std::fs::write(dir.path().join("cut.gz"), &whole[..whole.len() / 2]).unwrap();
    let st = json!({"id": 9001, "body": "$AAA to the moon", "created_at": "2020-03-02T15:00:00Z", "user": {"id": 7, "username": "st"},
                    "symbols": [{"symbol": "AAA"}], "entities": {"sentiment": {"basic": "Bullish"}}, "likes": {"total": 3}});
    std::fs::write(dir.path().join("st.json"), format!("{st}\n")).unwrap();

    let args = ["import", "--ticker-from-path", "--json", dir.path().to_str().unwrap()];
    let (r, err) = env.json(&args).await;
    let files: HashMap<String, Value> = r["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f[0].as_str()
                    .unwrap()
                    .strip_prefix(dir.path().to_str().unwrap())
                    .unwrap()
                    .trim_start_matches('/')
                    .to_string(),
                f[1].clone(),
            )
        })
        .collect();
    let none: serde_json::Map<String, Value> = Default::default();
    assert_eq!(
        files["AAA/2014-01-01"],
        json!({"read": 6, "stored": 2, "duplicates": 0, "merged": 0, "skipped": 0, "skipped_by": none, "rejected": 4})
    );
    assert_eq!(
        files["v2.jsonl.gz"],
        json!({"read": 3, "stored": 2, "duplicates": 0, "merged": 0, "skipped": 0, "skipped_by": none, "rejected": 1})
    );
    assert_eq!(files["st.json"]["stored"], 1);
    let cut = &files["cut.gz"];
    let good = cut["stored"].as_u64().unwrap();
    assert!(good > 100 && good < 3000, "the whole lines before the cut: {good}");
    assert_eq!((cut["read"].as_u64(), cut["rejected"].as_u64()), (Some(good), Some(1)));
    for line in [
        "AAA/2014-01-01:3: not JSON",
        "AAA/2014-01-01:4: not a JSON object",
        "AAA/2014-01-01:5: created_at \"2014-01-01\" is not like",
        "AAA/2014-01-01:6: not UTF-8",
        "v2.jsonl.gz:3: v2 tweet without created_at",
        "cut.gz:",
    ] {
        assert!(err.contains(line), "{line:?} reported in:\n{err}");
    }
    assert!(err.contains("gzip stream ends early"), "{err}");
    let folder = env.posts(bson::doc! {"id": "2"}).await;
    assert_eq!(folder[0].get_array("tickers").unwrap()[0].as_str(), Some("AAA"), "the folder's ticker counts");
    let st = env.posts(bson::doc! {"source": "stocktwits"}).await;
    assert_eq!(st[0].get_str("author_label").ok(), Some("bullish"));

    // The same archive again stores nothing new.
    let (again, _) = env.json(&args).await;
    let stored = r["total"]["stored"].as_u64().unwrap();
    assert_eq!((again["total"]["stored"].as_u64(), again["total"]["duplicates"].as_u64()), (Some(0), Some(stored)));
}

/// What an import leaves out is counted by reason, and the same tweet in two tickers'
/// folders (as research archives lay them out) is one post with both tickers — in one
/// run, and across runs — scored for both; a dry run says "would store".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipped_posts_are_counted_by_reason_and_copies_in_two_folders_merge_their_tickers() {
    let env = Env::new("http://127.0.0.1:1");
    let dir = tempfile::tempdir().unwrap();
    let v1 = |id: u64, text: &str, lang: &str, retweet: bool| {
        let mut t = json!({"created_at": "Wed Jan 01 15:00:00 +0000 2014", "id": id, "id_str": id.to_string(), "text": text,
                           "user": {"id_str": "5", "screen_name": "u"}, "entities": {"symbols": []}, "lang": lang});
        if retweet {
            t["retweeted_status"] = json!({"id_str": "1"});
        }
        t.to_string()
    };
    let write = |folder: &str, lines: &[String]| {
        std::fs::create_dir_all(dir.path().join(folder)).unwrap();
        std::fs::write(dir.path().join(folder).join("2014-01-01"), lines.join("\n") + "\n").unwrap();
    };
    // The same tweet (id 7) in AAA's and BBB's folders; in AAA's also a retweet, a French
    // tweet; in a folder that is no ticker of ours a tweet without a watched cashtag.
    let shared = v1(7, "strong quarter, raising targets", "en", false);
    write("AAA", &[shared.clone(), v1(8, "RT great", "en", true), v1(9, "très bien", "fr", false)]);
    write("BBB", std::slice::from_ref(&shared));
    write("ZZZ", &[v1(10, "nothing for us", "en", false)]);

    let dry = env.run(&["import", "--ticker-from-path", "--dry-run", dir.path().to_str().unwrap()]).await;
    let dry_text = String::from_utf8_lossy(&dry.stdout);
    assert!(dry_text.contains("would store"), "{dry_text}");
    assert!(!String::from_utf8_lossy(&dry.stderr).contains("progress"), "--quiet prints no progress");

    let args = ["import", "--ticker-from-path", "--json", dir.path().to_str().unwrap()];
    let (r, _) = env.json(&args).await;
    let t = &r["total"];
    assert_eq!(t["read"], 5);
    assert_eq!(t["stored"], 1, "one post for the two copies");
    assert_eq!(t["merged"], 1);
    assert_eq!(t["skipped"], 3);
    assert_eq!(t["skipped_by"], json!({"repost": 1, "other language": 1, "not on the watchlist": 1}));
    let post = env.posts(bson::doc! {"id": "7"}).await;
    assert_eq!(post.len(), 1);
    let tickers: Vec<&str> = post[0].get_array("tickers").unwrap().iter().filter_map(|t| t.as_str()).collect();
    assert_eq!(tickers, ["AAA", "BBB"], "the second folder's ticker is kept");
    assert!(post[0].get_document("sentiment").unwrap().get_document("finance").is_ok(), "scored");

    // Again: nothing new, nothing merged. Then a third folder in a later run merges too.
    let (again, _) = env.json(&args).await;
    assert_eq!((again["total"]["stored"].as_u64(), again["total"]["merged"].as_u64()), (Some(0), Some(0)));
    assert_eq!(again["total"]["duplicates"], 2);
    let later = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(later.path().join("CCC")).unwrap();
    std::fs::write(later.path().join("CCC").join("2014-01-01"), shared + "\n").unwrap();
    std::fs::write(
        env.watchlist.clone(),
        "[[company]]\nticker = \"AAA\"\nname = \"A\"\n[[company]]\nticker = \"BBB\"\nname = \"B\"\n[[company]]\nticker = \"CCC\"\nname = \"C\"\n",
    )
    .unwrap();
    let (r, _) = env.json(&["import", "--ticker-from-path", "--json", later.path().to_str().unwrap()]).await;
    assert_eq!((r["total"]["stored"].as_u64(), r["total"]["merged"].as_u64()), (Some(0), Some(1)));
    let post = env.posts(bson::doc! {"id": "7"}).await;
    let tickers: Vec<&str> = post[0].get_array("tickers").unwrap().iter().filter_map(|t| t.as_str()).collect();
    assert_eq!(tickers, ["AAA", "BBB", "CCC"]);
}
