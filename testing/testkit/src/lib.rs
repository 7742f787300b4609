//! cashtag-testkit: how tests find real servers and isolate themselves.
//!
//! Tests talk to the real Redis, MongoDB-wire server and S3/Kinesis emulator of the local
//! stack (`scripts/stack up` writes their endpoints to `.stack/env`; the variables can
//! also be set directly). A server that cannot be reached fails the test with a message
//! saying how to start it — tests never skip silently.
//!
//! Tests that stop or kill a server start a private instance on a free port
//! ([`PrivateServer`]) so tests running in parallel keep theirs. Names from [`unique`]
//! keep parallel tests apart on the shared servers.

pub mod fault;

use std::collections::HashMap;
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The repository root: the nearest directory above the running package (cargo sets
/// `CARGO_MANIFEST_DIR` when it runs a test) whose `Cargo.toml` declares the workspace.
///
/// Resolved at run time, not compile time: a shared `CARGO_TARGET_DIR` may hold this
/// crate compiled in another clone, whose path must not leak into this one's tests.
pub fn workspace_root() -> PathBuf {
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    start
        .ancestors()
        .find(|dir| std::fs::read_to_string(dir.join("Cargo.toml")).is_ok_and(|text| text.contains("[workspace]")))
        .map(Path::to_path_buf)
        .unwrap_or_else(|| panic!("no workspace Cargo.toml above {}", start.display()))
}

/// The stack's env file: `$CASHTAG_STACK_ENV`, else `<root>/.stack/env`.
pub fn stack_env_file() -> PathBuf {
    std::env::var_os("CASHTAG_STACK_ENV").map(PathBuf::from).unwrap_or_else(|| workspace_root().join(".stack/env"))
}

fn stack_env() -> HashMap<String, String> {
    let mut vars = HashMap::new();
    if let Ok(text) = std::fs::read_to_string(stack_env_file()) {
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some((k, v)) = line.split_once('=') {
                let v = v.trim().trim_matches('"').trim_matches('\'');
                vars.insert(k.trim().trim_start_matches("export ").to_string(), v.to_string());
            }
        }
    }
    vars
}

/// A stack setting: from the process environment, else from the stack's env file.
pub fn stack_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty()).or_else(|| stack_env().remove(name))
}

fn require(name: &str, what: &str) -> String {
    let Some(v) = stack_var(name) else {
        panic!(
            "{what} is not configured: {name} is unset and {} has no value for it. \
             Start the local stack with `scripts/stack up` (the README's test command does). \
             Tests never skip a missing server{}.",
            stack_env_file().display(),
            if is_ci() { " (CI=true)" } else { "" }
        )
    };
    v
}

/// Whether we run in CI.
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn host_port(url: &str) -> String {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let rest = rest.rsplit('@').next().unwrap_or(rest);
    rest.split(['/', '?']).next().unwrap_or(rest).to_string()
}

/// The address a server URL points at (`mongodb://127.0.0.1:27017/?…`,
/// `http://127.0.0.1:5000`): where a [`fault::FaultProxy`] forwards to.
pub fn server_addr(url: &str) -> std::net::SocketAddr {
    let hp = host_port(url);
    resolve(&hp).unwrap_or_else(|| panic!("no address for {hp}"))
}

fn resolve(host_port: &str) -> Option<std::net::SocketAddr> {
    host_port.to_socket_addrs().ok().and_then(|mut a| a.next())
}

fn require_reachable(url: &str, what: &str) {
    let hp = host_port(url);
    let ok = resolve(&hp).is_some_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok());
    if !ok {
        panic!(
            "{what} at {hp} is not reachable. Start the local stack with `scripts/stack up` \
             (the README's test command does). Tests never skip a missing server{}.",
            if is_ci() { " (CI=true)" } else { "" }
        );
    }
}

/// The shared Redis of the local stack.
pub fn redis_url() -> String {
    let url = require("CASHTAG_REDIS_URL", "Redis");
    require_reachable(&url, "Redis");
    url
}

/// The shared MongoDB-wire server of the local stack.
pub fn mongo_uri() -> String {
    let uri = require("CASHTAG_MONGO_URI", "The MongoDB-wire server");
    require_reachable(&uri, "The MongoDB-wire server");
    uri
}

/// The shared S3 + Kinesis emulator of the local stack.
pub fn aws_endpoint() -> String {
    let url = require("CASHTAG_AWS_ENDPOINT", "The S3/Kinesis emulator");
    require_reachable(&url, "The S3/Kinesis emulator");
    url
}

/// The stack's Python virtual environment (SecantusDB, moto, reference packages).
pub fn venv() -> PathBuf {
    PathBuf::from(require("CASHTAG_STACK_VENV", "The stack's Python venv"))
}

/// A name no other test (or test run) uses: `<base>-<pid>-<n>-<time>`; lower case
/// letters, digits and dashes, valid as a key prefix, database, bucket or stream name.
pub fn unique(base: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() % 1_000_000_000;
    format!("{base}-{}-{n}-{t}", std::process::id()).to_ascii_lowercase()
}

/// A TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until something accepts TCP connections on the port.
///
/// A connection whose local address is its peer's does not count: while nothing listens
/// on a port of the ephemeral range (every [`free_port`] is one), the kernel can pick
/// that same port as the source of the attempt and connect the socket to itself (a TCP
/// simultaneous open), which looks like a server that is up.
pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", port))
            && s.local_addr().ok() != s.peer_addr().ok()
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Sends a signal to a process.
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) with a pid we spawned; no memory is shared.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// Which server a [`PrivateServer`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    Redis,
    /// MongoDB wire: `mongod` when on PATH, else SecantusDB from the stack's venv.
    Mongo,
    /// moto: S3 + Kinesis.
    Moto,
}

/// A server of the test's own, on a free port, that the test may stop, kill and restart.
/// Killed when dropped.
pub struct PrivateServer {
    kind: ServerKind,
    port: u16,
    child: Option<Child>,
    data_dir: PathBuf,
}

impl PrivateServer {
    pub fn start(kind: ServerKind) -> Self {
        let data_dir = std::env::temp_dir().join(unique("cashtag-private"));
        std::fs::create_dir_all(&data_dir).unwrap();
        let mut s = PrivateServer { kind, port: free_port(), child: None, data_dir };
        s.restart();
        s
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL clients use.
    pub fn url(&self) -> String {
        match self.kind {
            ServerKind::Redis => format!("redis://127.0.0.1:{}", self.port),
            ServerKind::Mongo => format!("mongodb://127.0.0.1:{}/?directConnection=true", self.port),
            ServerKind::Moto => format!("http://127.0.0.1:{}", self.port),
        }
    }

    fn command(&self) -> Command {
        let log = std::fs::File::create(self.data_dir.join("server.log")).unwrap();
        let mut cmd = match self.kind {
            ServerKind::Redis => {
                let mut c = Command::new("redis-server");
                c.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
                c.arg("--dir").arg(&self.data_dir);
                c
            }
            ServerKind::Mongo => {
                if which("mongod").is_some() {
                    let mut c = Command::new("mongod");
                    c.args(["--bind_ip", "127.0.0.1", "--port", &self.port.to_string(), "--dbpath"]);
                    c.arg(&self.data_dir);
                    c
                } else {
                    let mut c = Command::new(venv().join("bin/secantusd-py"));
                    // As scripts/stack starts it (the file says why).
                    c.arg("--config").arg(workspace_root().join("scripts/secantusd.toml"));
                    c.args([
                        "--host",
                        "127.0.0.1",
                        "--port",
                        &self.port.to_string(),
                        "--log-level",
                        "WARNING",
                        "--storage-path",
                    ]);
                    c.arg(self.data_dir.join("db"));
                    c
                }
            }
            ServerKind::Moto => {
                // moto with its Kinesis put made O(1), as scripts/stack starts it.
                let mut c = Command::new(venv().join("bin/python"));
                c.arg(workspace_root().join("scripts/moto_server.py"));
                c.args(["-H", "127.0.0.1", "-p", &self.port.to_string()]);
                c
            }
        };
        cmd.stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log);
        cmd
    }

    /// Starts (again) on the same port, with the same data directory; waits until ready.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "server already running");
        let mut child = self.command().spawn().unwrap_or_else(|e| panic!("cannot start {:?}: {e}", self.kind));
        let ready = wait_for_port(self.port, Duration::from_secs(60));
        // Something else answering on the port while ours gave up (e.g. could not bind)
        // is not our server.
        let exited = child.try_wait().ok().flatten();
        self.child = Some(child);
        if !ready || exited.is_some() {
            let log = std::fs::read_to_string(self.data_dir.join("server.log")).unwrap_or_default();
            let why = exited.map_or_else(|| "no answer within 60 s".to_string(), |s| format!("it exited: {s}"));
            panic!("{:?} did not start on port {} ({why}): {log}", self.kind, self.port);
        }
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// Finds a program on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|p| p.join(program)).find(|p| p.is_file()))
}

/// Polls `f` until it returns Some or the timeout passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The path of an example binary of the workspace, for tests that run it as a separate
/// process (built by [`ensure_workspace_built`]).
pub fn example_bin(name: &str) -> PathBuf {
    ensure_workspace_built();
    // target/<profile>/deps/<test binary> → target/<profile>/examples/<name>
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent().and_then(Path::parent).expect("target dir").join("examples").join(name)
}

/// The path of a service binary of the workspace (`cashtag-stocks` …), for tests outside its
/// package that run it as a process (built by [`ensure_workspace_built`]).
pub fn service_bin(name: &str) -> PathBuf {
    ensure_workspace_built();
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent().and_then(Path::parent).expect("target dir").join(name)
}

/// A service binary built with `cargo build --release` (for benches, which measure what
/// users run), built first if needed.
pub fn release_bin(name: &str) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["build", "--release", "--bin", name, "-p", name])
        .current_dir(workspace_root())
        .status()
        .expect("cargo build --release");
    assert!(status.success(), "building {name} failed");
    let target =
        std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| workspace_root().join("target"));
    target.join("release").join(name)
}

/// Makes sure the workspace's binaries and examples are built and current: runs
/// `cargo test --workspace --no-run --locked` once per test run.
///
/// That is the very build `cargo test --workspace` and `cargo nextest run --workspace`
/// make before they run anything, so in such a run it finds everything fresh (under a
/// second), and a filtered run (`-p x`, one test) still gets current binaries. It must be
/// that command: cargo resolves features per invocation, and `cargo build -p x --bin x`
/// would build x's dependency tree a second time with other features (minutes on two
/// cores, once per distinct package).
///
/// Once per process; under nextest (a process per test) once per run: the first test
/// builds under a file lock and leaves a stamp named after `NEXTEST_RUN_ID`, the others
/// wait on the lock and find the stamp.
pub fn ensure_workspace_built() {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let exe = std::env::current_exe().expect("test binary path");
        let profile_dir = exe.parent().and_then(Path::parent).expect("target dir").to_path_buf();
        let run_id = std::env::var("NEXTEST_RUN_ID").ok().filter(|r| !r.is_empty());
        let _lock = FileLock::acquire(&profile_dir.join(".cashtag-test-build.lock"));
        let stamp = run_id.map(|id| profile_dir.join(format!(".cashtag-test-build-{id}")));
        if stamp.as_ref().is_some_and(|s| s.exists()) {
            return;
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(&cargo)
            .args(["test", "--workspace", "--no-run", "--locked", "--quiet"])
            .current_dir(workspace_root())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {cargo}: {e}"));
        assert!(
            out.status.success(),
            "cargo test --workspace --no-run failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some(stamp) = stamp {
            // Stamps of earlier runs go; this run's stays until the next.
            if let Ok(entries) = std::fs::read_dir(&profile_dir) {
                for e in entries.flatten() {
                    if e.file_name().to_string_lossy().starts_with(".cashtag-test-build-") {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
            let _ = std::fs::write(stamp, b"");
        }
    });
}

/// An exclusive `flock(2)` on a file, released when dropped (or when the process dies).
pub struct FileLock {
    _file: std::fs::File,
}

impl FileLock {
    /// Waits until the lock is ours.
    pub fn acquire(path: &Path) -> FileLock {
        use std::os::fd::AsRawFd;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .unwrap_or_else(|e| panic!("cannot open the lock file {}: {e}", path.display()));
        loop {
            // SAFETY: flock(2) on a descriptor this function owns.
            let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
            if rc == 0 {
                return FileLock { _file: f };
            }
            let err = std::io::Error::last_os_error();
            assert!(err.kind() == std::io::ErrorKind::Interrupted, "flock {}: {err}", path.display());
        }
    }
}

/// Sends SIGTERM to a child and waits for it to exit; panics if it takes longer than
/// `timeout` (every service must stop within 10 s of SIGTERM).
pub fn terminate(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    signal(child.id(), libc::SIGTERM);
    let t = Instant::now();
    loop {
        if let Some(s) = child.try_wait().expect("wait for child") {
            return s;
        }
        assert!(t.elapsed() < timeout, "no exit within {timeout:?} of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}
