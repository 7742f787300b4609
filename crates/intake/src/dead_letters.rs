//! `dead-letters list|redrive`: the fetchers' command over the records their sinks refused
//! (kept by [`cashtag_sinks::dead`] in `<sinks.spool_dir>/dead-letters`). It reads the
//! files the running service writes (under the same lock), so an operator runs it beside
//! the service: `docker compose exec stocks cashtag-stocks dead-letters list`.

use std::time::Duration;

use cashtag_core::{Settings, catalog};
use cashtag_runtime::{Failure, other};
use cashtag_sinks::{DeadLetters, KinesisSink, MongoSink, Redriven};

use crate::cli::{DeadLetterAction, DeadLetterArgs, SinkName};

/// Runs the command for `service` (`stocks` or `twitter`: the name its events carry).
pub async fn run(settings: &Settings, service: &str, args: DeadLetterArgs) -> Result<(), Failure> {
    let dead = DeadLetters::in_spool(settings.sinks.spool_dir.as_ref());
    match args.action {
        DeadLetterAction::List { sink, json } => {
            let sinks = match sink {
                Some(s) => vec![s],
                None => vec![SinkName::Mongo, SinkName::Kinesis],
            };
            let mut total = 0;
            for s in sinks {
                for l in dead.list(s.as_str()).map_err(other)? {
                    total += 1;
                    if json {
                        println!("{}", serde_json::to_string(&l).expect("dead letters serialize"));
                    } else {
                        println!("{}  {:<7}  {}  {}", l.at.format("%Y-%m-%d %H:%M:%S"), l.sink, l.key, l.reason);
                    }
                }
            }
            if !json {
                eprintln!("{total} dead letter(s) in {}", settings.sinks.spool_dir);
            }
            Ok(())
        }
        DeadLetterAction::Redrive { sink } => {
            // The operator waits for this one: a slow store (or the first connection) gets
            // at least 30 s per write, not the service's deadline.
            let timeout = Duration::from_millis(settings.sinks.op_timeout_ms).max(Duration::from_secs(30));
            let outcome = match sink {
                SinkName::Mongo => {
                    let client = cashtag_stores::mongo::connect(settings.mongo.uri.expose(), service)
                        .await
                        .map_err(|e| other(anyhow::anyhow!("MongoDB: {e}")))?;
                    let mut s = MongoSink::new(&client, &settings.mongo.database);
                    dead.redrive(&mut s, timeout).await
                }
                SinkName::Kinesis => {
                    let c = cashtag_stores::kinesis::client(&settings.aws.region, &settings.aws.endpoint).await;
                    let s = &settings.sinks;
                    let mut s = KinesisSink::new(c, &s.kinesis_posts_stream, &s.kinesis_market_stream);
                    dead.redrive(&mut s, timeout).await
                }
            }
            .map_err(other)?;
            report(settings, service, &outcome).await;
            println!(
                "{}: {} written, {} already there, {} refused again, {} kept{}",
                outcome.sink,
                outcome.written,
                outcome.duplicates,
                outcome.refused,
                outcome.kept,
                outcome.stopped.as_deref().map(|s| format!(" (stopped: {s})")).unwrap_or_default()
            );
            if outcome.refused + outcome.kept > 0 {
                return Err(other(anyhow::anyhow!(
                    "{} dead letter(s) stay in {}",
                    outcome.refused + outcome.kept,
                    dead.path(&outcome.sink).display()
                )));
            }
            Ok(())
        }
    }
}

/// The `sink.redriven` event, when Redis is there to take it (the redrive itself does not
/// need it).
async fn report(settings: &Settings, service: &str, o: &Redriven) {
    let Ok(clock) = settings.clock.clock() else { return };
    match cashtag_bus::Bus::from_settings(settings, service, clock) {
        Ok(bus) => {
            bus.emit(catalog::sink_redriven(&o.sink, o.written, o.duplicates, o.refused, o.kept));
            if !bus.events().flush(Duration::from_secs(3)).await {
                eprintln!("warning: the sink.redriven event did not reach Redis");
            }
        }
        Err(e) => eprintln!("warning: no sink.redriven event: {e}"),
    }
}
