//! The compose end-to-end test: the production docker-compose.yml, with only the images
//! swapped for the offline ones (deploy/build-offline), runs the whole suite as
//! containers on this machine's Docker engine — simulated market, simulated clock, moto
//! standing in for AWS — and holds what the deployment promises:
//!
//! - every service becomes healthy; the sources switch on at the simulated open; posts,
//!   trades and counts reach MongoDB through an authenticated connection, and Kinesis;
//! - a flag flip stops Kinesis writes within a second;
//! - `kill -9` of the stocks process: its restart policy brings it back and it writes again;
//! - `restart mongo` during intake, and `down` then `up` of the whole project: every
//!   simulated trade is in MongoDB exactly once (against the simulator's ground truth);
//! - MongoDB and Redis refuse clients without credentials, the analyst user cannot write;
//! - no password in any image, in the build context, in the logs or in the events.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cashtag_deploy::{Project, Secrets, build_offline_images, docker, image_config, require_docker};
use chrono::{DateTime, TimeDelta, Utc};
use futures::TryStreamExt;

const SERVICES: [&str; 10] =
    ["redis", "mongo", "moto", "manager", "stocks", "twitter", "log", "backup", "analysis", "predict"];
const TRADES_PER_MINUTE: f64 = 5.0;
const POSTS_PER_MINUTE: f64 = 2.0;
const SPEED: f64 = 10.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_suite_runs_as_containers_with_authentication_and_loses_nothing() {
    require_docker();
    let t0 = Instant::now();
    let build_time = build_offline_images();
    eprintln!("compose: offline images built in {:.0} s", build_time.as_secs_f64());
    let dir = std::env::temp_dir().join(cashtag_testkit::unique("compose"));
    std::fs::create_dir_all(&dir).unwrap();
    // The passwords as Compose file secrets, made by deploy/secrets-init.
    let secrets = Secrets::init(&dir.join("secrets"));
    no_secret_in_the_build_context(&secrets);
    let project_name = cashtag_testkit::unique("ct").to_lowercase().replace(|c: char| !c.is_ascii_alphanumeric(), "");
    // 09:24 New York on a Tuesday, 15 s from now: the manager turns the sources on at 09:25.
    let start: DateTime<Utc> = "2026-11-24T14:24:00Z".parse().unwrap();
    let anchor = Utc::now() + TimeDelta::seconds(15);
    let spec = format!("{}@{SPEED}@{}", cashtag_core::time::rfc3339(&start), cashtag_core::time::rfc3339(&anchor));
    let clock = cashtag_core::Clock::Simulated(cashtag_core::SimSpec::parse(&spec).unwrap());
    // A watchlist file, set the documented way: in the config directory every service
    // mounts as /etc/cashtag, named by CASHTAG_WATCHLIST_FILE.
    let watched: Vec<String> =
        cashtag_core::Watchlist::builtin().tickers().iter().take(8).map(|t| t.to_string()).collect();
    let config_dir = dir.join("config");
    std::fs::create_dir_all(&config_dir).unwrap();
    let companies: String =
        watched.iter().map(|t| format!("[[company]]\nticker = \"{t}\"\nname = \"{t} Inc.\"\n")).collect();
    std::fs::write(config_dir.join("watchlist.toml"), companies).unwrap();
    let cashtag_env = dir.join("cashtag.env");
    std::fs::write(
        &cashtag_env,
        format!(
            "AWS_ACCESS_KEY_ID=test\nAWS_SECRET_ACCESS_KEY=test\nCASHTAG_AWS_ENDPOINT=http://moto:5000\n\
             CASHTAG_AWS_CREATE_MISSING=true\n\
             CASHTAG_CLOCK_SPEC={spec}\nCASHTAG_SIM_TRADES_PER_MINUTE={TRADES_PER_MINUTE}\n\
             CASHTAG_SIM_POSTS_PER_MINUTE={POSTS_PER_MINUTE}\nCASHTAG_SINKS_BATCH_AGE_MS=200\n\
             CASHTAG_SINKS_RETRY_BUDGET_SECS=3\nCASHTAG_HEARTBEAT_INTERVAL_SECS=2\n\
             CASHTAG_WATCHLIST_FILE=/etc/cashtag/watchlist.toml\n"
        ),
    )
    .unwrap();
    // The services' HTTP ports go to free host ports (an operator's suite may hold 9101…).
    let env = dir.join("compose.env");
    std::fs::write(
        &env,
        format!(
            "COMPOSE_PROJECT_NAME={project_name}\nCASHTAG_SECRETS_DIR={}\nCASHTAG_ENV_FILE={}\n\
             HTTP_PORT_MANAGER=\nHTTP_PORT_STOCKS=\nHTTP_PORT_TWITTER=\nHTTP_PORT_LOG=\nHTTP_PORT_BACKUP=\n\
             HTTP_PORT_ANALYSIS=\nHTTP_PORT_PREDICT=\nCASHTAG_CONFIG_DIR={}\n",
            secrets.dir.display(),
            cashtag_env.display(),
            config_dir.display()
        ),
    )
    .unwrap();
    let project = Project::new(&project_name, &env, &[]);
    eprintln!("compose: {} with project {project_name}", project.tool());

    // Up: every service healthy.
    project.run(&["up", "-d", "--no-build"]);
    let healthy_after = project.wait_healthy(&SERVICES, Duration::from_secs(240));
    eprintln!("compose: every service healthy {:.0} s after up", healthy_after.as_secs_f64());
    eprintln!("{}", project.run(&["ps"]));
    for s in ["manager", "stocks", "twitter", "log", "backup", "analysis", "predict"] {
        assert_eq!(project.inspect(s, "{{.Config.User}}"), "cashtag", "{s} runs as the non-root user");
        assert_eq!(project.inspect(s, "{{.HostConfig.ReadonlyRootfs}}"), "true", "{s} has a read-only root");
        assert!(project.inspect(s, "{{.HostConfig.Memory}}").parse::<u64>().unwrap() > 0, "{s} has a memory limit");
    }
    for s in ["manager", "stocks", "twitter", "log", "backup", "analysis", "predict", "redis", "mongo", "moto"] {
        assert!(project.inspect(s, "{{json .HostConfig.SecurityOpt}}").contains("no-new-privileges"), "{s}");
        assert_eq!(project.inspect(s, "{{json .HostConfig.CapDrop}}"), "[\"ALL\"]", "{s} drops every capability");
        assert!(project.inspect(s, "{{.HostConfig.PidsLimit}}").parse::<i64>().unwrap_or(0) > 0, "{s} has a PID limit");
        assert_eq!(project.inspect(s, "{{.HostConfig.ReadonlyRootfs}}"), "true", "{s} has a read-only root");
        // The passwords are files under /run/secrets: `docker inspect` shows none of them.
        let inspected = docker(&["inspect", &project.container(s)]);
        for pw in secrets.all() {
            assert!(!inspected.contains(pw), "a password is in `docker inspect` of {s}");
        }
    }
    // cashtagctl is in the image, and the image carries the release's version as a tag.
    let ctl = cashtag_deploy::docker(&["exec", &project.container("manager"), "cashtagctl", "--version"]);
    assert!(ctl.starts_with("cashtagctl "), "{ctl}");
    let version = format!("cashtag:{}", env!("CARGO_PKG_VERSION"));
    assert!(!cashtag_deploy::docker(&["image", "inspect", "-f", "{{.Id}}", &version]).trim().is_empty(), "{version}");
    let setuid = cashtag_deploy::docker(&[
        "run",
        "--rm",
        "--user",
        "root",
        "--entrypoint",
        "find",
        "cashtag:latest",
        "/",
        "-xdev",
        "-perm",
        "/6000",
        "-type",
        "f",
    ]);
    assert!(setuid.trim().is_empty(), "setuid or setgid binaries in the cashtag image: {setuid}");
    // Redis as its own user, its server PID 1 (so `down` stops it with SIGTERM, not a kill).
    assert_eq!(project.inspect("redis", "{{.Config.User}}"), "redis");
    let pid1 = cashtag_deploy::docker(&["exec", &project.container("redis"), "cat", "/proc/1/cmdline"]);
    assert!(pid1.starts_with("redis-server"), "PID 1 is {pid1:?}");
    assert_eq!(
        project.inspect("redis", "{{json .NetworkSettings.Ports}}").matches("HostPort").count(),
        0,
        "redis publishes no port"
    );
    assert_eq!(
        project.inspect("mongo", "{{json .NetworkSettings.Ports}}").matches("HostPort").count(),
        0,
        "mongo publishes no port"
    );

    // The fetchers create the streams in the emulator themselves (aws.create_missing).
    let moto = format!("http://{}:5000", project.ip("moto"));
    let kinesis = cashtag_stores::kinesis::client("us-east-1", &moto).await;
    let mongo_ip = project.ip("mongo");
    let redis_ip = project.ip("redis");
    let app_uri = format!("mongodb://cashtag:{}@{mongo_ip}:27017/?directConnection=true&authSource=admin", secrets.app);
    let mongo = mongodb::Client::with_uri_str(&app_uri).await.unwrap();
    let db = mongo.database("cashtag");

    // The sources switch on at the open: posts, trades, counts in MongoDB; records in Kinesis.
    let count = |c: &'static str| {
        let db = db.clone();
        async move { db.collection::<bson::Document>(c).count_documents(bson::doc! {}).await.unwrap_or(0) }
    };
    let flowing = cashtag_soak::wait_until(Duration::from_secs(120), || async {
        count("trades").await > 0 && count("posts").await > 0 && count("counts").await > 0
    })
    .await;
    assert!(
        flowing,
        "trades {}, posts {}, counts {} in MongoDB",
        count("trades").await,
        count("posts").await,
        count("counts").await
    );
    let in_kinesis = cashtag_soak::wait_until(Duration::from_secs(60), || async {
        !arrivals(&kinesis, "cashtag-market").await.is_empty() && !arrivals(&kinesis, "cashtag-posts").await.is_empty()
    })
    .await;
    assert!(in_kinesis, "records reach both Kinesis streams");
    eprintln!("compose: data flowing {:.0} s after up", t0.elapsed().as_secs_f64() - build_time.as_secs_f64());

    // A flag flip stops Kinesis writes within a second.
    let bus = cashtag_bus::Bus::open(
        &format!("redis://:{}@{redis_ip}:6379", secrets.redis),
        "cashtag",
        cashtag_bus::Identity { service: "e2e".into(), instance: "e2e".into() },
        cashtag_core::Clock::System,
        1_000,
    )
    .unwrap();
    bus.set_flag("kinesis_write", false, "compose e2e").await.unwrap();
    let flipped = Utc::now();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let late: Vec<DateTime<Utc>> = arrivals(&kinesis, "cashtag-market")
        .await
        .into_iter()
        .filter(|t| *t > flipped + TimeDelta::milliseconds(1_000))
        .collect();
    assert!(late.is_empty(), "{} records reached Kinesis more than 1 s after the flag was turned off", late.len());
    let before_on = arrivals(&kinesis, "cashtag-market").await.len();
    bus.set_flag("kinesis_write", true, "compose e2e").await.unwrap();
    let resumed = cashtag_soak::wait_until(Duration::from_secs(30), || async {
        arrivals(&kinesis, "cashtag-market").await.len() > before_on
    })
    .await;
    assert!(resumed, "Kinesis writes resume when the flag is on again");

    // kill -9 of the stocks process (a crash, an OOM kill): its restart policy brings it
    // back, and it writes again. (`docker kill` would not do: Docker takes it for an
    // operator's stop and no policy restarts the container after it.)
    let restarts = project.restart_count("stocks");
    let pid = project.inspect("stocks", "{{.State.Pid}}");
    assert!(std::process::Command::new("kill").args(["-9", &pid]).status().unwrap().success(), "kill -9 {pid}");
    let back = cashtag_soak::wait_until(Duration::from_secs(60), || async {
        project.restart_count("stocks") > restarts && project.health("stocks") == "healthy"
    })
    .await;
    assert!(
        back,
        "stocks restarted by its policy ({} restarts, {})",
        project.restart_count("stocks"),
        project.health("stocks")
    );
    let n = count("trades").await;
    assert!(
        cashtag_soak::wait_until(Duration::from_secs(60), || async { count("trades").await > n }).await,
        "stocks writes again after the restart"
    );
    // ... and says it restarted uncleanly (the incident the webhook hears about).
    let restarted = || async {
        db.collection::<bson::Document>("events")
            .count_documents(bson::doc! {"code": "service.restarted"})
            .await
            .unwrap_or(0)
    };
    assert!(
        cashtag_soak::wait_until(Duration::from_secs(30), || async { restarted().await == 1 }).await,
        "one service.restarted after the kill -9 ({})",
        restarted().await
    );

    // MongoDB restarted during intake: records wait in the journals and are replayed.
    project.run(&["restart", "-t", "10", "mongo"]);
    project.wait_healthy(&["mongo"], Duration::from_secs(120));
    let n = count("trades").await;
    assert!(
        cashtag_soak::wait_until(Duration::from_secs(90), || async { count("trades").await > n }).await,
        "writes resume after the MongoDB restart"
    );

    // down, then up: the volumes keep the data (and the journals what was not written).
    let keys_before: HashSet<String> =
        cashtag_soak::mongo_keys(&db, "trades", "ts").await.into_iter().map(|k| k.0).collect();
    drop(mongo);
    project.run(&["down", "-t", "30"]);
    project.run(&["up", "-d", "--no-build"]);
    project.wait_healthy(&SERVICES, Duration::from_secs(240));
    let mongo_ip = project.ip("mongo");
    let app_uri = format!("mongodb://cashtag:{}@{mongo_ip}:27017/?directConnection=true&authSource=admin", secrets.app);
    let mongo = mongodb::Client::with_uri_str(&app_uri).await.unwrap();
    let db = mongo.database("cashtag");
    let keys_after: HashSet<String> =
        cashtag_soak::mongo_keys(&db, "trades", "ts").await.into_iter().map(|k| k.0).collect();
    assert!(
        keys_after.is_superset(&keys_before),
        "{} trades gone after down/up",
        keys_before.difference(&keys_after).count()
    );
    let n = keys_after.len();
    let count2 = |c: &'static str| {
        let db = db.clone();
        async move { db.collection::<bson::Document>(c).count_documents(bson::doc! {}).await.unwrap_or(0) }
    };
    assert!(
        cashtag_soak::wait_until(Duration::from_secs(90), || async { count2("trades").await as usize > n }).await,
        "the suite writes again after down and up"
    );

    // Every simulated trade of the run is in MongoDB exactly once: through the kill, the
    // MongoDB restart and down/up. (Up to two simulated minutes before the newest stored
    // trade: what is younger may still be on its way.)
    let trades = cashtag_soak::mongo_keys(&db, "trades", "ts").await;
    let from = trades.iter().map(|t| t.1).min().unwrap();
    let to = trades.iter().map(|t| t.1).max().unwrap() - TimeDelta::minutes(2);
    assert!(clock.now() - to < TimeDelta::minutes(10), "trades are current: newest {to}, now {}", clock.now());
    let cfg = cashtag_soak::SoakConfig {
        speed: SPEED,
        tickers: watched.clone(),
        trades_per_minute: TRADES_PER_MINUTE,
        posts_per_minute: POSTS_PER_MINUTE,
        ..cashtag_soak::SoakConfig::ci()
    };
    let truth = cashtag_soak::Truth::compute(&cfg, (from, to), (from, to));
    let stored: HashSet<String> = trades.iter().filter(|t| t.1 <= to).map(|t| t.0.clone()).collect();
    let lost = truth.trades.difference(&stored).count();
    let extra = stored.difference(&truth.trades).count();
    eprintln!(
        "compose: {} trades from {from} to {to}: {} expected, {} stored, {lost} lost, {extra} not simulated",
        stored.len(),
        truth.trades.len(),
        stored.len()
    );
    assert_eq!((lost, extra), (0, 0), "every simulated trade exactly once");
    let traded: std::collections::BTreeSet<String> = db
        .collection::<bson::Document>("trades")
        .distinct("ticker", bson::doc! {})
        .await
        .unwrap()
        .iter()
        .filter_map(|t| t.as_str().map(str::to_string))
        .collect();
    assert_eq!(traded, watched.iter().cloned().collect(), "the watchlist file's tickers, and only those");

    // Credentials: required by both servers; the analyst reads and cannot write.
    let anon =
        mongodb::Client::with_uri_str(format!("mongodb://{mongo_ip}:27017/?directConnection=true")).await.unwrap();
    let refused = anon.database("cashtag").collection::<bson::Document>("trades").count_documents(bson::doc! {}).await;
    assert!(refused.is_err(), "MongoDB answers a client without credentials");
    let analyst = mongodb::Client::with_uri_str(format!(
        "mongodb://analyst:{}@{mongo_ip}:27017/?directConnection=true&authSource=admin",
        secrets.analyst
    ))
    .await
    .unwrap();
    let adb = analyst.database("cashtag");
    assert!(
        adb.collection::<bson::Document>("trades").count_documents(bson::doc! {}).await.unwrap() > 0,
        "the analyst reads"
    );
    assert!(
        adb.collection::<bson::Document>("trades").insert_one(bson::doc! {"x": 1}).await.is_err(),
        "the analyst cannot write"
    );
    // The analysts' query path of docs/deploying.md, which works with the offline images
    // too (they have no mongosh): a one-off analysis container as the read-only analyst.
    // The analyst's password is mounted like a secret, never passed in the environment.
    let analyst_secret = format!("{}:/run/secrets/analyst:ro", secrets.dir.join("mongo_analyst_password").display());
    let as_analyst = [
        "-v",
        &analyst_secret,
        "-e",
        "CASHTAG_MONGO_URI=mongodb://analyst@mongo:27017/?directConnection=true&authSource=admin",
        "-e",
        "CASHTAG_MONGO_PASSWORD_FILE=/run/secrets/analyst",
    ];
    let export = ["cashtag-analysis", "export", "--collection", "trades", "--format", "csv", "--out", "/dev/stdout"];
    let csv = project
        .run(&[&["run", "--rm", "-T", "--no-deps"][..], &as_analyst[..], &["analysis"][..], &export[..]].concat());
    let mut lines = csv.lines();
    assert!(lines.next().is_some_and(|h| h.contains("ticker") && h.contains("price")), "{csv:.300}");
    assert!(lines.count() > 10, "trades as CSV: {csv:.300}");
    let redis_ip = project.ip("redis");
    for url in [format!("redis://{redis_ip}:6379"), format!("redis://:wrong@{redis_ip}:6379")] {
        let refused = async {
            let c = redis::Client::open(url.as_str())?;
            let mut conn = c.get_multiplexed_async_connection().await?;
            redis::cmd("GET").arg("cashtag:control:state").query_async::<Option<String>>(&mut conn).await
        }
        .await;
        assert!(refused.is_err(), "Redis answers {}", url.replace("wrong", "***"));
    }

    // No password in the images, the logs or the events.
    for image in
        ["cashtag:latest", "cashtag-offline/redis:7", "cashtag-offline/mongo:secantus", "cashtag-offline/moto:5.2.5"]
    {
        let config = image_config(image).to_string() + &docker(&["history", "--no-trunc", image]);
        for s in secrets.all() {
            assert!(!config.contains(s), "a password is in image {image}");
        }
    }
    let logs = project.output(&["logs", "--no-color"]);
    let logs = String::from_utf8_lossy(&logs.stdout).into_owned() + &String::from_utf8_lossy(&logs.stderr);
    assert!(logs.len() > 1_000, "the services logged");
    let events: Vec<bson::Document> =
        db.collection::<bson::Document>("events").find(bson::doc! {}).await.unwrap().try_collect().await.unwrap();
    assert!(!events.is_empty(), "events reached the log store");
    let unclean = events.iter().filter(|e| e.get_str("code") == Ok("service.restarted")).count();
    assert_eq!(unclean, 1, "the kill -9 only: stops by `down`, `restart` and SIGTERM are clean ends");
    let event_count = events.len();
    let events = format!("{events:?}");
    for s in secrets.all() {
        assert!(!logs.contains(s), "a password is in the logs");
        assert!(!events.contains(s), "a password is in the events");
    }
    eprintln!(
        "compose: passed in {:.0} s ({:.0} s building images, {event_count} events, {} log bytes)",
        t0.elapsed().as_secs_f64(),
        build_time.as_secs_f64(),
        logs.len()
    );
    // Down before the directory goes: `down` reads the env file in it (without it, compose
    // fails and the whole suite stayed up, running, through the rest of the tests).
    drop(project);
    let _ = std::fs::remove_dir_all(dir);
}

/// The arrival instants of every record of a Kinesis stream (none while it is missing).
async fn arrivals(client: &aws_sdk_kinesis::Client, stream: &str) -> Vec<DateTime<Utc>> {
    let shards = cashtag_stores::kinesis::read_stream(client, stream).await.unwrap_or_default();
    shards
        .iter()
        .flatten()
        .filter_map(|r| r.approximate_arrival_timestamp())
        .filter_map(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
        .collect()
}

/// The build context of deploy/Dockerfile leaves `.env` files out: a build of a copy of
/// the context's ignore rules with secret files in it sees none of them.
fn no_secret_in_the_build_context(secrets: &Secrets) {
    let ctx: PathBuf = std::env::temp_dir().join(cashtag_testkit::unique("context"));
    std::fs::create_dir_all(ctx.join("deploy")).unwrap();
    std::fs::copy(cashtag_testkit::workspace_root().join(".dockerignore"), ctx.join(".dockerignore")).unwrap();
    std::fs::write(ctx.join(".env"), format!("REDIS_PASSWORD={}\n", secrets.redis)).unwrap();
    std::fs::write(ctx.join("cashtag.env"), format!("CASHTAG_X={}\n", secrets.app)).unwrap();
    std::fs::write(ctx.join("deploy/.env"), format!("X={}\n", secrets.root)).unwrap();
    std::fs::create_dir_all(ctx.join("secrets")).unwrap();
    std::fs::write(ctx.join("secrets/redis_password"), &secrets.redis).unwrap();
    std::fs::write(ctx.join("README.md"), "kept\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile.check"),
        "FROM cashtag-offline/base:bookworm\nCOPY . /ctx\nRUN test -f /ctx/README.md \
         && test ! -e /ctx/.env && test ! -e /ctx/cashtag.env && test ! -e /ctx/deploy/.env \
         && test ! -e /ctx/secrets\n",
    )
    .unwrap();
    let tag = format!("cashtag-context-check:{}", std::process::id());
    let out = std::process::Command::new("docker")
        .args(["build", "-q", "-t", &tag, "-f"])
        .arg(ctx.join("Dockerfile.check"))
        .arg(&ctx)
        .output()
        .unwrap();
    let _ = std::process::Command::new("docker").args(["rmi", "-f", &tag]).output();
    let _ = std::fs::remove_dir_all(&ctx);
    assert!(
        out.status.success(),
        "a .env or secret file reached the build context: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
