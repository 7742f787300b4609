//! The backfill driver: a provider's history as tasks (a ticker or a query over a range),
//! each fetched page by page through a [`Pager`]. After every page is stored, the task's
//! checkpoint (the next page's token) is written to `backfill_checkpoints`, so a rerun of
//! the same command continues where the last one stopped, and a finished task is not
//! fetched again. Rate limits are waited out (and reported); network and server errors
//! are retried a few times with backoff, then the command stops with the checkpoint kept.

use std::future::Future;
use std::time::Duration;

use bson::doc;
use cashtag_bus::Bus;
use cashtag_core::{Backoff, Record, catalog, collections};
use cashtag_intake::posts::PostFilter;
use cashtag_sources::Parsed;

use crate::import::Report;
use crate::store::Store;
use crate::{Counts, HistoryError};

/// One unit of resumable work.
#[derive(Debug, Clone)]
pub struct Task {
    /// The checkpoint's key: provider, what, ticker or query, range, options.
    pub id: String,
    /// What the summary calls it.
    pub label: String,
    /// The provider's own request parameters for this task (a symbol, a query).
    pub key: String,
}

/// What one request gave.
pub enum Fetched {
    /// A page: its records (and bad items), items read, the next page's token (None at
    /// the end), and a pause the provider asks for before the next request.
    Page { parsed: Parsed, read: u64, next: Option<String>, then_wait: Option<Duration> },
    /// Rate-limited: wait this long, then ask again.
    Wait(Duration, String),
}

/// A provider's history endpoint.
pub trait Pager: Sync {
    fn provider(&self) -> &'static str;

    /// Fetches a task's page (the first when `token` is None).
    fn fetch(&self, task: &Task, token: Option<&str>) -> impl Future<Output = Result<Fetched, HistoryError>> + Send;
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Checkpoint {
    token: Option<String>,
    done: bool,
}

async fn load(store: &Store, id: &str) -> Result<Checkpoint, HistoryError> {
    let c = store.db.collection::<bson::Document>(collections::BACKFILL_CHECKPOINTS);
    let d =
        c.find_one(doc! {"_id": id}).await.map_err(|e| HistoryError::Store(format!("reading the checkpoint: {e}")))?;
    Ok(d.map(|d| Checkpoint {
        token: d.get_str("token").ok().map(str::to_string),
        done: d.get_bool("done").unwrap_or(false),
    })
    .unwrap_or_default())
}

async fn save(
    store: &Store,
    id: &str,
    cp: &Checkpoint,
    counts: &Counts,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), HistoryError> {
    let c = store.db.collection::<bson::Document>(collections::BACKFILL_CHECKPOINTS);
    let counts = bson::to_document(counts).unwrap_or_default();
    c.replace_one(
        doc! {"_id": id},
        doc! {"_id": id, "token": cp.token.clone(), "done": cp.done, "counts": counts, "updated_at": bson::DateTime::from_chrono(now)},
    )
    .upsert(true)
    .await
    .map_err(|e| HistoryError::Store(format!("writing the checkpoint: {e}")))?;
    Ok(())
}

/// Options of a run.
pub struct RunOptions<'a> {
    /// `stocks` or `twitter` history, for the event (`alpaca bars 1Day …`).
    pub what: String,
    /// Posts are scored (and filtered) as live; None for market data.
    pub filter: Option<&'a mut PostFilter>,
    /// Forget the checkpoints and fetch every task from its start.
    pub restart: bool,
    /// Network or server errors in a row before the run stops.
    pub max_errors: u32,
}

/// Runs every task to its end; returns the counts per task.
pub async fn run<P: Pager>(
    pager: &P,
    tasks: &[Task],
    store: &mut Store,
    bus: &Bus,
    mut opts: RunOptions<'_>,
    progress: &cashtag_telemetry::progress::Progress,
) -> Result<Report, HistoryError> {
    bus.emit(catalog::backfill_start("backfill", &opts.what));
    let mut report = Report::default();
    let mut bar = progress.task(&format!("backfill {}", pager.provider()), tasks.len() as u64, "tasks");
    let result = async {
        for task in tasks {
            let counts = run_task(pager, task, store, bus, &mut opts).await?;
            report.total.add(&counts);
            report.files.push((task.label.clone(), counts));
            bar.add(1);
        }
        Ok::<(), HistoryError>(())
    }
    .await;
    bar.done();
    let t = &report.total;
    match result {
        Ok(()) => {
            bus.emit(catalog::backfill_done("backfill", &opts.what, t.read, t.stored, t.duplicates, t.rejected));
            Ok(report)
        }
        Err(e) => {
            bus.emit(catalog::backfill_failed("backfill", &opts.what, format!("{e} (after {t}); a rerun resumes")));
            Err(e)
        }
    }
}

async fn run_task<P: Pager>(
    pager: &P,
    task: &Task,
    store: &mut Store,
    bus: &Bus,
    opts: &mut RunOptions<'_>,
) -> Result<Counts, HistoryError> {
    let mut cp = if opts.restart { Checkpoint::default() } else { load(store, &task.id).await? };
    let mut counts = Counts::default();
    if cp.done {
        tracing::info!(task = %task.label, "already done (checkpoint); --restart fetches it again");
        return Ok(counts);
    }
    if cp.token.is_some() {
        tracing::info!(task = %task.label, "resuming from the checkpoint");
    }
    let mut backoff = Backoff::exponential(Duration::from_secs(2), Duration::from_secs(60));
    let mut errors = 0;
    let mut bad = (0u64, None::<String>);
    loop {
        let fetched = match pager.fetch(task, cp.token.as_deref()).await {
            Ok(f) => f,
            Err(e @ HistoryError::Provider { .. }) if errors + 1 < opts.max_errors => {
                errors += 1;
                let wait = backoff.next_delay();
                tracing::warn!(task = %task.label, error = %e, wait_s = wait.as_secs_f64(), "request failed; retrying");
                tokio::time::sleep(wait).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        errors = 0;
        let (parsed, read, next, then_wait) = match fetched {
            Fetched::Wait(d, why) => {
                bus.emit(catalog::source_rate_limited(pager.provider(), &why, d.as_secs_f64()));
                eprintln!("{}: {why}; waiting {:.0} s", pager.provider(), d.as_secs_f64());
                tokio::time::sleep(d).await;
                continue;
            }
            Fetched::Page { parsed, read, next, then_wait } => (parsed, read, next, then_wait),
        };
        counts.read += read;
        for e in &parsed.errors {
            counts.rejected += 1;
            bad.0 += 1;
            bad.1.get_or_insert_with(|| e.clone());
            if bad.0 <= 20 {
                eprintln!("{}: bad item skipped: {e}", task.label);
            }
        }
        // Items the parser left out: no watched ticker, or outside the range.
        let left_out = read.saturating_sub((parsed.records.len() + parsed.errors.len()) as u64);
        if left_out > 0 {
            counts.skipped += left_out;
            *counts.skipped_by.entry("not on the watchlist or out of range".into()).or_default() += left_out;
        }
        let mut records: Vec<Record> = Vec::with_capacity(parsed.records.len());
        for r in parsed.records {
            match opts.filter.as_mut() {
                Some(f) => match f.decide(r) {
                    Ok(r) => records.push(r),
                    Err(why) => counts.skip(why.reason()),
                },
                None => records.push(r),
            }
        }
        let written = store.write(records).await?;
        let c = written.counts();
        counts.stored += c.stored;
        counts.duplicates += c.duplicates;
        counts.rejected += c.rejected;
        for (key, why) in &written.rejected {
            eprintln!("{}: refused by the store: {key}: {why}", task.label);
        }
        cp = Checkpoint { done: next.is_none(), token: next };
        save(store, &task.id, &cp, &counts, bus.clock().now()).await?;
        if cp.done {
            break;
        }
        if let Some(w) = then_wait {
            tokio::time::sleep(w).await;
        }
    }
    if let Some(first) = bad.1 {
        bus.emit(catalog::backfill_rejected(&task.label, bad.0, &first));
    }
    Ok(counts)
}
