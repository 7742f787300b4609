//! cashtag-deploy: drives the compose suite on this machine's Docker engine for the
//! deployment tests — builds the offline images (`deploy/build-offline`), brings a project
//! up with the production `docker-compose.yml` plus `deploy/compose.offline.yml`, waits for
//! health, finds containers and their addresses, and takes the project down (volumes too)
//! when dropped.
//!
//! It runs the Compose tool an operator runs: `docker compose` (v2) when the Docker CLI has
//! it, else `docker-compose` (1.29); `CASHTAG_COMPOSE` overrides (e.g. `docker-compose`).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use cashtag_testkit::{service_bin, workspace_root};

/// The six service binaries.
pub const BINARIES: [&str; 7] = [
    "cashtag-manager",
    "cashtag-stocks",
    "cashtag-twitter",
    "cashtag-log",
    "cashtag-backup",
    "cashtag-analysis",
    "cashtagctl",
];

/// Fails (never skips) when the Docker engine does not answer: these tests need it.
pub fn require_docker() {
    let out = Command::new("docker").args(["info", "--format", "{{.ServerVersion}}"]).output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!("the Docker engine does not answer: {}", String::from_utf8_lossy(&o.stderr).trim()),
        Err(e) => panic!("docker is not installed: {e}"),
    }
}

/// Builds the service binaries of this workspace (the test profile) and the offline images
/// from them; returns how long it took.
pub fn build_offline_images() -> Duration {
    let t = Instant::now();
    let dirs: Vec<PathBuf> = BINARIES.iter().map(|b| service_bin(b).parent().unwrap().to_path_buf()).collect();
    let out = Command::new(workspace_root().join("deploy/build-offline"))
        .arg("--bin-dir")
        .arg(&dirs[0])
        .output()
        .expect("run deploy/build-offline");
    assert!(
        out.status.success(),
        "deploy/build-offline failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed()
}

/// The Compose command line: v2 plugin or the standalone 1.29 tool.
fn compose_program() -> Vec<String> {
    if let Ok(c) = std::env::var("CASHTAG_COMPOSE") {
        return c.split_whitespace().map(str::to_string).collect();
    }
    let v2 = Command::new("docker").args(["compose", "version"]).output();
    if v2.is_ok_and(|o| o.status.success()) {
        vec!["docker".into(), "compose".into()]
    } else {
        vec!["docker-compose".into()]
    }
}

/// One compose project of the suite; `down -v` when dropped.
pub struct Project {
    pub name: String,
    env_file: PathBuf,
    files: Vec<PathBuf>,
    program: Vec<String>,
}

impl Project {
    /// A project named `name` with the compose `.env` at `env_file`, from the production
    /// file and the offline override (and `extra` override files).
    pub fn new(name: &str, env_file: &Path, extra: &[PathBuf]) -> Project {
        let root = workspace_root();
        let mut files = vec![root.join("docker-compose.yml"), root.join("deploy/compose.offline.yml")];
        files.extend(extra.iter().cloned());
        Project { name: name.to_string(), env_file: env_file.to_path_buf(), files, program: compose_program() }
    }

    /// Which Compose tool runs (for the report).
    pub fn tool(&self) -> String {
        let mut c = Command::new(&self.program[0]);
        c.args(&self.program[1..]).arg("version").arg("--short");
        c.output()
            .map(|o| format!("{} {}", self.program.join(" "), String::from_utf8_lossy(&o.stdout).trim()))
            .unwrap_or_default()
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.program[0]);
        c.args(&self.program[1..]);
        c.arg("--project-name").arg(&self.name).arg("--env-file").arg(&self.env_file);
        for f in &self.files {
            c.arg("-f").arg(f);
        }
        c.args(["--profile", "emulators"]).current_dir(workspace_root());
        c
    }

    /// Runs a compose subcommand; its output, or a panic with what it printed.
    pub fn run(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "compose {} failed:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn output(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run the compose tool")
    }

    /// The id of a service's (first) container.
    pub fn container(&self, service: &str) -> String {
        let id = self.container_id(service);
        assert!(!id.is_empty(), "service {service} has no container");
        id
    }

    /// The id of a service's (first) container, or "" when it has none. Asked of the
    /// engine by Compose's labels (`docker ps`, quick) rather than `compose ps` (the 1.29
    /// tool is Python: a second of CPU per call, and the health waits call it often).
    fn container_id(&self, service: &str) -> String {
        let project = format!("label=com.docker.compose.project={}", self.name);
        let service = format!("label=com.docker.compose.service={service}");
        let out = Command::new("docker")
            .args(["ps", "-aq", "--filter", &project, "--filter", &service])
            .args(["--filter", "label=com.docker.compose.oneoff=False"])
            .output()
            .expect("run docker ps");
        String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default().trim().to_string()
    }

    /// A field of `docker inspect` of a service's container (a Go template).
    pub fn inspect(&self, service: &str, template: &str) -> String {
        inspect(&self.container(service), template)
    }

    /// The container's address on the project network (reachable from this host).
    pub fn ip(&self, service: &str) -> IpAddr {
        let s = self.inspect(service, "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}");
        s.split_whitespace()
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address for {service}: {s:?}"))
    }

    /// `healthy`, `unhealthy`, `starting`, or `running` / `exited` … for a container
    /// without a health check.
    pub fn health(&self, service: &str) -> String {
        self.inspect(service, "{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}")
    }

    pub fn restart_count(&self, service: &str) -> u64 {
        self.inspect(service, "{{.RestartCount}}").trim().parse().unwrap_or(0)
    }

    /// Waits until every service is healthy (or running, without a health check).
    pub fn wait_healthy(&self, services: &[&str], timeout: Duration) -> Duration {
        let t = Instant::now();
        loop {
            let states: Vec<(String, String)> = services
                .iter()
                .map(|s| {
                    let id = self.container_id(s);
                    let h = if id.is_empty() {
                        "absent".to_string()
                    } else {
                        inspect(&id, "{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}")
                    };
                    (s.to_string(), h)
                })
                .collect();
            if states.iter().all(|(_, h)| h == "healthy" || h == "running") {
                return t.elapsed();
            }
            if t.elapsed() > timeout {
                let logs = self.output(&["logs", "--tail", "30"]);
                panic!(
                    "not healthy within {timeout:?}: {states:?}\n{}",
                    String::from_utf8_lossy(&logs.stdout).lines().rev().take(120).collect::<Vec<_>>().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = self.output(&["down", "-v", "--remove-orphans", "-t", "5"]);
    }
}

/// `docker inspect -f TEMPLATE ID`.
pub fn inspect(id: &str, template: &str) -> String {
    let out = Command::new("docker").args(["inspect", "-f", template, id]).output().expect("run docker inspect");
    assert!(out.status.success(), "docker inspect {id}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `docker` with arguments; its standard output, or a panic.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("run docker");
    assert!(out.status.success(), "docker {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `Config` of an image as JSON (what `docker image inspect` shows anyone with the image).
pub fn image_config(image: &str) -> serde_json::Value {
    let s = docker(&["image", "inspect", image]);
    serde_json::from_str::<serde_json::Value>(&s).expect("image inspect JSON")[0].clone()
}

/// The suite's passwords, made the documented way: `deploy/secrets-init --dir DIR`, which
/// writes one Compose secret file each (docker-compose.yml's `secrets:`).
pub struct Secrets {
    pub dir: PathBuf,
    pub redis: String,
    pub root: String,
    pub app: String,
    pub analyst: String,
}

impl Secrets {
    /// Runs `deploy/secrets-init` into `dir` (with no .env to take passwords from).
    pub fn init(dir: &Path) -> Secrets {
        let script = workspace_root().join("deploy/secrets-init");
        let out = Command::new(&script)
            .arg("--dir")
            .arg(dir)
            .arg("--env-file")
            .arg(dir.join("no.env"))
            .output()
            .expect("run deploy/secrets-init");
        assert!(out.status.success(), "deploy/secrets-init: {}", String::from_utf8_lossy(&out.stderr));
        let printed = String::from_utf8_lossy(&out.stdout);
        assert_eq!(printed.matches("written (new)").count(), 4, "{printed}");
        let read = |name: &str| {
            let value = std::fs::read_to_string(dir.join(name)).expect("a secret file").trim_end().to_string();
            assert!(value.len() >= 32 && !printed.contains(&value), "{name}: a long password, never printed");
            value
        };
        Secrets {
            dir: dir.to_path_buf(),
            redis: read("redis_password"),
            root: read("mongo_root_password"),
            app: read("mongo_app_password"),
            analyst: read("mongo_analyst_password"),
        }
    }

    pub fn all(&self) -> [&str; 4] {
        [&self.redis, &self.root, &self.app, &self.analyst]
    }
}
