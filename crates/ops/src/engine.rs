//! The compose project's containers through the Docker Engine API.
//!
//! Containers are found by the labels Compose puts on them (`com.docker.compose.project`,
//! `…service`, `…oneoff`), so this works with `docker compose` v2 and `docker-compose`
//! 1.29 alike, and with no compose file at hand.

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::StartExecResults;
use bollard::models::{ContainerInspectResponse, ExecConfig};
use bollard::query_parameters::{
    InspectContainerOptions, ListContainersOptionsBuilder, LogsOptionsBuilder, RestartContainerOptionsBuilder,
};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;

use crate::OpsError;

pub const PROJECT_LABEL: &str = "com.docker.compose.project";
pub const SERVICE_LABEL: &str = "com.docker.compose.service";
pub const ONEOFF_LABEL: &str = "com.docker.compose.oneoff";

/// The engine this process talks to: `DOCKER_HOST`, else the local socket.
pub fn engine_address() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

/// What an engine error means for the operator (unreachable socket, permission, …).
pub fn describe(e: &bollard::errors::Error) -> OpsError {
    let address = engine_address();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return OpsError::Docker(match io.kind() {
                std::io::ErrorKind::NotFound => format!(
                    "cannot reach the Docker engine: {address} does not exist (is Docker running? \
                     DOCKER_HOST selects another engine)"
                ),
                std::io::ErrorKind::PermissionDenied => format!(
                    "permission denied on {address}: add your user to the docker group (and log in again), \
                     or run cashtagctl with sudo"
                ),
                std::io::ErrorKind::ConnectionRefused => {
                    format!("the Docker engine at {address} refuses connections (is dockerd running?)")
                }
                _ => format!("cannot reach the Docker engine at {address}: {io}"),
            });
        }
        source = s.source();
    }
    match e {
        bollard::errors::Error::SocketNotFoundError(path) => OpsError::Docker(format!(
            "cannot reach the Docker engine: {path} does not exist (is Docker running? DOCKER_HOST selects \
             another engine)"
        )),
        bollard::errors::Error::DockerResponseServerError { status_code: 404, message } => {
            OpsError::NotFound(message.clone())
        }
        bollard::errors::Error::DockerResponseServerError { status_code, message } => {
            OpsError::Docker(format!("the Docker engine answered {status_code}: {message}"))
        }
        other => OpsError::Docker(format!("the Docker engine at {address}: {other}")),
    }
}

/// One line of a container's log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub service: String,
    /// The engine's timestamp of the line.
    pub at: Option<DateTime<Utc>>,
    pub stderr: bool,
    pub text: String,
}

/// Which log lines to read.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    pub follow: bool,
    /// The last N lines of each container (all when none).
    pub tail: Option<u64>,
    pub since: Option<DateTime<Utc>>,
}

/// The containers of one compose project on one engine.
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    pub project: String,
}

impl Engine {
    /// Connects (and checks that the engine answers within 5 s).
    pub async fn connect(project: &str) -> Result<Engine, OpsError> {
        let docker = Docker::connect_with_local_defaults().map_err(|e| describe(&e))?;
        match tokio::time::timeout(Duration::from_secs(5), docker.ping()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(describe(&e)),
            Err(_) => {
                return Err(OpsError::Docker(format!(
                    "the Docker engine at {} did not answer within 5 s",
                    engine_address()
                )));
            }
        }
        Ok(Engine { docker, project: project.to_string() })
    }

    /// Every container of the project (running or not, one-off `run` containers left
    /// out), inspected, ordered by service and name.
    pub async fn containers(&self) -> Result<Vec<ContainerInspectResponse>, OpsError> {
        let filters = HashMap::from([("label".to_string(), vec![format!("{PROJECT_LABEL}={}", self.project)])]);
        let list = self
            .docker
            .list_containers(Some(ListContainersOptionsBuilder::default().all(true).filters(&filters).build()))
            .await
            .map_err(|e| describe(&e))?;
        let mut out = Vec::new();
        for c in list {
            let labels = c.labels.clone().unwrap_or_default();
            if labels.get(ONEOFF_LABEL).is_some_and(|v| v.eq_ignore_ascii_case("true")) {
                continue;
            }
            let Some(id) = c.id else { continue };
            match self.docker.inspect_container(&id, None::<InspectContainerOptions>).await {
                Ok(i) => out.push(i),
                // Removed between the list and the inspect.
                Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {}
                Err(e) => return Err(describe(&e)),
            }
        }
        out.sort_by_key(|c| (service_of(c), c.name.clone().unwrap_or_default()));
        Ok(out)
    }

    /// The memory a running container uses now, as `docker stats` counts it (its cgroup's
    /// usage less the page cache it can drop); none when the engine does not say.
    pub async fn memory_used(&self, id: &str) -> Option<u64> {
        let options = bollard::query_parameters::StatsOptionsBuilder::default().stream(false).one_shot(true).build();
        let stats = self.docker.stats(id, Some(options)).next().await?.ok()?;
        let m = stats.memory_stats?;
        let usage = m.usage?;
        let cache = m.stats.as_ref().and_then(|s| s.get("inactive_file").or_else(|| s.get("total_inactive_file")));
        Some(usage.saturating_sub(cache.copied().unwrap_or(0)))
    }

    /// The containers of one service; an error naming the services there are when it has none.
    pub async fn service(&self, service: &str) -> Result<Vec<ContainerInspectResponse>, OpsError> {
        let all = self.containers().await?;
        let services: Vec<String> = {
            let mut s: Vec<String> = all.iter().map(service_of).collect();
            s.dedup();
            s
        };
        let mine: Vec<ContainerInspectResponse> = all.into_iter().filter(|c| service_of(c) == service).collect();
        if mine.is_empty() {
            return Err(OpsError::NotFound(if services.is_empty() {
                format!("project {:?} has no containers (is it up? --project names another)", self.project)
            } else {
                format!("project {:?} has no service {service:?}; it has {}", self.project, services.join(", "))
            }));
        }
        Ok(mine)
    }

    /// Restarts every container of a service, each given its stop grace period
    /// (`stop_grace_period` in the compose file) unless `grace` overrides it.
    pub async fn restart(&self, service: &str, grace: Option<Duration>) -> Result<Vec<(String, Duration)>, OpsError> {
        let mut done = Vec::new();
        for c in self.service(service).await? {
            let id = c.id.clone().unwrap_or_default();
            let t = grace.unwrap_or_else(|| stop_grace(&c));
            let options = RestartContainerOptionsBuilder::default().t(t.as_secs() as i32).build();
            self.docker.restart_container(&id, Some(options)).await.map_err(|e| describe(&e))?;
            done.push((container_name(&c), t));
        }
        Ok(done)
    }

    /// The log lines of the given services (all when empty), interleaved by time when not
    /// following, as they come when following. Lines go to `tx`; returns when every stream
    /// ends (never, when following, until the containers stop or `tx` closes).
    pub async fn logs(&self, services: &[String], query: &LogQuery, tx: mpsc::Sender<LogLine>) -> Result<(), OpsError> {
        let mut containers = self.containers().await?;
        if !services.is_empty() {
            for s in services {
                if !containers.iter().any(|c| &service_of(c) == s) {
                    self.service(s).await?;
                }
            }
            containers.retain(|c| services.contains(&service_of(c)));
        }
        let mut builder = LogsOptionsBuilder::default().stdout(true).stderr(true).timestamps(true).follow(query.follow);
        builder = builder.tail(&query.tail.map(|n| n.to_string()).unwrap_or_else(|| "all".into()));
        if let Some(since) = query.since {
            builder = builder.since(since.timestamp() as i32);
        }
        let options = builder.build();
        let mut tasks = Vec::new();
        if query.follow {
            // As they come.
            let (inner_tx, mut inner_rx) = mpsc::channel::<Result<LogLine, OpsError>>(1024);
            for c in &containers {
                let stream = self.docker.logs(&c.id.clone().unwrap_or_default(), Some(options.clone()));
                tasks.push(tokio::spawn(pump(service_of(c), stream, inner_tx.clone())));
            }
            drop(inner_tx);
            while let Some(line) = inner_rx.recv().await {
                if tx.send(line?).await.is_err() {
                    break;
                }
            }
        } else {
            // Each container's log is in time order: merge them by time, a line at a time
            // (a suite's logs can be gigabytes; nothing is held but one line each).
            let mut streams = Vec::new();
            for c in &containers {
                let (one_tx, one_rx) = mpsc::channel::<Result<LogLine, OpsError>>(256);
                let stream = self.docker.logs(&c.id.clone().unwrap_or_default(), Some(options.clone()));
                tasks.push(tokio::spawn(pump(service_of(c), stream, one_tx)));
                streams.push(one_rx);
            }
            let mut heads: Vec<Option<LogLine>> = Vec::new();
            for rx in &mut streams {
                heads.push(rx.recv().await.transpose()?);
            }
            while let Some(i) =
                (0..heads.len()).filter(|i| heads[*i].is_some()).min_by_key(|i| heads[*i].as_ref().map(|l| l.at))
            {
                let line = heads[i].take().expect("a head");
                if tx.send(line).await.is_err() {
                    break;
                }
                heads[i] = streams[i].recv().await.transpose()?;
            }
        }
        for t in tasks {
            t.abort();
        }
        Ok(())
    }

    /// Runs a command in a service's (first) container, as `docker exec` does; its output
    /// goes to `out` as it comes; returns its exit code.
    pub async fn exec(&self, service: &str, cmd: &[&str], out: mpsc::Sender<LogLine>) -> Result<i64, OpsError> {
        let c = self.service(service).await?.remove(0);
        let id = c.id.clone().unwrap_or_default();
        let exec = self
            .docker
            .create_exec(
                &id,
                ExecConfig {
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| describe(&e))?;
        if let StartExecResults::Attached { output, .. } =
            self.docker.start_exec(&exec.id, None).await.map_err(|e| describe(&e))?
        {
            let (tx, mut rx) = mpsc::channel(256);
            let pumping = tokio::spawn(pump(service.to_string(), output, tx));
            while let Some(line) = rx.recv().await {
                if out.send(line?).await.is_err() {
                    break;
                }
            }
            let _ = pumping.await;
        }
        let inspected = self.docker.inspect_exec(&exec.id).await.map_err(|e| describe(&e))?;
        Ok(inspected.exit_code.unwrap_or(-1))
    }
}

/// A log stream cut into lines (a frame may hold several, or part of one).
async fn pump(
    service: String,
    mut stream: impl Stream<Item = Result<LogOutput, bollard::errors::Error>> + Unpin,
    tx: mpsc::Sender<Result<LogLine, OpsError>>,
) {
    let mut partial: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    while let Some(item) = stream.next().await {
        let (stderr, bytes) = match item {
            Ok(LogOutput::StdErr { message }) => (true, message),
            Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => (false, message),
            Ok(LogOutput::StdIn { .. }) => continue,
            Err(e) => {
                let _ = tx.send(Err(describe(&e))).await;
                return;
            }
        };
        let buf = &mut partial[stderr as usize];
        buf.extend_from_slice(&bytes);
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            if tx.send(Ok(split_timestamp(&service, stderr, &line[..line.len() - 1]))).await.is_err() {
                return;
            }
        }
    }
    for (i, rest) in partial.iter().enumerate() {
        if !rest.is_empty() {
            let _ = tx.send(Ok(split_timestamp(&service, i == 1, rest))).await;
        }
    }
}

/// `2026-12-02T02:40:11.123456789Z text` (the engine's `timestamps`) into its parts.
fn split_timestamp(service: &str, stderr: bool, line: &[u8]) -> LogLine {
    let text = String::from_utf8_lossy(line);
    let text = text.strip_suffix('\r').unwrap_or(&text);
    let (at, rest) = match text.split_once(' ') {
        Some((ts, rest)) => match DateTime::parse_from_rfc3339(ts) {
            Ok(t) => (Some(t.with_timezone(&Utc)), rest),
            Err(_) => (None, text),
        },
        None => match DateTime::parse_from_rfc3339(text) {
            Ok(t) => (Some(t.with_timezone(&Utc)), ""),
            Err(_) => (None, text),
        },
    };
    LogLine { service: service.to_string(), at, stderr, text: rest.to_string() }
}

/// The compose service of a container (its name when it has no label).
pub fn service_of(c: &ContainerInspectResponse) -> String {
    c.config
        .as_ref()
        .and_then(|cfg| cfg.labels.as_ref())
        .and_then(|l| l.get(SERVICE_LABEL).cloned())
        .unwrap_or_else(|| container_name(c))
}

/// The container's name without the leading `/`.
pub fn container_name(c: &ContainerInspectResponse) -> String {
    c.name.clone().unwrap_or_default().trim_start_matches('/').to_string()
}

/// The stop grace period the container was created with (Docker's 10 s default when unset).
pub fn stop_grace(c: &ContainerInspectResponse) -> Duration {
    let secs = c.config.as_ref().and_then(|cfg| cfg.stop_timeout).unwrap_or(10);
    Duration::from_secs(secs.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_timestamps_are_split_off() {
        let l = split_timestamp("stocks", false, b"2026-12-02T02:40:11.123456789Z {\"level\":\"INFO\"}");
        assert_eq!(l.at.unwrap().to_rfc3339(), "2026-12-02T02:40:11.123456789+00:00");
        assert_eq!(l.text, "{\"level\":\"INFO\"}");
        let l = split_timestamp("x", true, b"no timestamp here");
        assert_eq!((l.at, l.text.as_str(), l.stderr), (None, "no timestamp here", true));
    }
}
