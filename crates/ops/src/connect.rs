//! Which project and which Redis, found the way `docker compose` finds them: the
//! `--project` flag, else `COMPOSE_PROJECT_NAME` (environment, then the `.env` file),
//! else the directory's name; the Redis password from `REDIS_PASSWORD` in the
//! environment, else the suite's secret file (`secrets/redis_password`, or in
//! `CASHTAG_SECRETS_DIR`), else `REDIS_PASSWORD` in `.env` (hosts set up before the
//! passwords became Compose secrets). Redis publishes no port on the host, so it is
//! reached at the redis container's address on the project network, unless `--redis-url`
//! says otherwise.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use bollard::models::ContainerInspectResponse;
use cashtag_bus::{Bus, BusError, Identity};
use cashtag_core::Clock;
use cashtag_core::secret::encode_userinfo;

use crate::OpsError;

/// `KEY=VALUE` lines of a compose `.env` file (comments, blank lines, `export `, quotes).
pub fn parse_dotenv(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((k, v)) = line.split_once('=') else { continue };
        let v = v.trim();
        let v = if v.len() >= 2
            && ((v.starts_with('"') && v.ends_with('"')) || (v.starts_with('\'') && v.ends_with('\'')))
        {
            &v[1..v.len() - 1]
        } else {
            // An unquoted value ends at ` #`.
            v.split(" #").next().unwrap_or(v).trim_end()
        };
        out.insert(k.trim().to_string(), v.to_string());
    }
    out
}

/// The `.env` file's settings; empty when the default `.env` is absent, an error when a
/// file named on the command line cannot be read.
pub fn read_dotenv(path: Option<&Path>) -> Result<BTreeMap<String, String>, OpsError> {
    match path {
        Some(p) => std::fs::read_to_string(p)
            .map(|t| parse_dotenv(&t))
            .map_err(|e| OpsError::Usage(format!("cannot read the env file {}: {e}", p.display()))),
        None => Ok(std::fs::read_to_string(".env").map(|t| parse_dotenv(&t)).unwrap_or_default()),
    }
}

/// A setting from the environment, else from the `.env` file.
pub fn setting(name: &str, dotenv: &BTreeMap<String, String>) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty()).or_else(|| dotenv.get(name).filter(|v| !v.is_empty()).cloned())
}

/// The Redis password (see the module's doc), `None` when there is none; an error when
/// the secret's file exists but cannot be read (the operator is not root, say).
pub fn redis_password(dotenv: &BTreeMap<String, String>, dir: &Path) -> Result<Option<String>, OpsError> {
    if let Some(p) = std::env::var("REDIS_PASSWORD").ok().filter(|v| !v.is_empty()) {
        return Ok(Some(p));
    }
    let secrets = setting("CASHTAG_SECRETS_DIR", dotenv).map(|d| dir.join(d)).unwrap_or_else(|| dir.join("secrets"));
    let file = secrets.join("redis_password");
    match std::fs::read_to_string(&file) {
        Ok(text) => {
            let text = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
            return Ok(Some(text.to_string()).filter(|p| !p.is_empty()));
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(OpsError::Usage(format!(
                "cannot read the Redis password in {}: {} (run as root, or set REDIS_PASSWORD)",
                file.display(),
                e.kind()
            )));
        }
        Err(_) => {}
    }
    Ok(dotenv.get("REDIS_PASSWORD").filter(|v| !v.is_empty()).cloned())
}

/// The compose project: `flag`, else `COMPOSE_PROJECT_NAME`, else `dir`'s name, normalized
/// as compose does (lower case; letters, digits, `-` and `_`).
pub fn project_name(flag: Option<&str>, dotenv: &BTreeMap<String, String>, dir: &Path) -> String {
    let raw = flag
        .map(str::to_string)
        .or_else(|| setting("COMPOSE_PROJECT_NAME", dotenv))
        .unwrap_or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
    let name: String =
        raw.to_lowercase().chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect();
    name.trim_start_matches(['-', '_']).to_string()
}

/// The container's address on its (first) network.
pub fn container_ip(c: &ContainerInspectResponse) -> Option<IpAddr> {
    let networks = c.network_settings.as_ref()?.networks.as_ref()?;
    let mut names: Vec<&String> = networks.keys().collect();
    names.sort();
    names.into_iter().find_map(|n| networks[n].ip_address.as_deref().and_then(|a| a.parse().ok()))
}

/// Where Redis is, for messages: the URL without its credentials.
pub fn shown_address(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.rsplit_once('@').map(|(_, h)| h).unwrap_or(rest);
            format!("{scheme}://{}", host.trim_end_matches('/'))
        }
        None => "the given Redis URL".into(),
    }
}

/// `redis://:PASSWORD@IP:6379`, or without a password.
pub fn redis_url(ip: IpAddr, password: Option<&str>) -> String {
    let host = match ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        v4 => v4.to_string(),
    };
    match password {
        Some(p) => format!("redis://:{}@{host}:6379", encode_userinfo(p)),
        None => format!("redis://{host}:6379"),
    }
}

/// Opens the bus and checks that Redis answers and accepts us; the error says what to do
/// (and never shows the password).
pub async fn open_bus(url: &str, prefix: &str, password_given: bool) -> Result<Bus, OpsError> {
    let shown = shown_address(url);
    let identity = Identity {
        service: "cashtagctl".into(),
        instance: format!("{}-{}", std::env::var("USER").unwrap_or_else(|_| "operator".into()), std::process::id()),
    };
    let bus = Bus::open(url, prefix, identity, Clock::System, 100_000)
        .map_err(|_| OpsError::Usage(format!("the Redis URL for {shown} is not valid")))?;
    match tokio::time::timeout(Duration::from_secs(6), bus.ping()).await {
        Ok(Ok(())) => Ok(bus),
        Ok(Err(BusError::Redis { source, .. })) => Err(describe_redis(&source, &shown, password_given)),
        Ok(Err(other)) => Err(OpsError::Redis(format!("Redis at {shown}: {other}"))),
        Err(_) => Err(OpsError::Redis(format!("Redis at {shown} did not answer within 6 s"))),
    }
}

fn describe_redis(e: &redis::RedisError, shown: &str, password_given: bool) -> OpsError {
    let wrong = || {
        OpsError::Redis(format!(
            "Redis at {shown} refused the password given (REDIS_PASSWORD or secrets/redis_password): it is \
             not the one the suite's Redis was started with"
        ))
    };
    match e.code() {
        Some("NOAUTH") if !password_given => OpsError::Redis(format!(
            "Redis at {shown} needs a password: set REDIS_PASSWORD, or run cashtagctl where the suite's .env \
             and secrets/ are (or name the .env with --env-file)"
        )),
        Some("NOAUTH" | "WRONGPASS") => wrong(),
        _ if e.kind() == redis::ErrorKind::AuthenticationFailed => wrong(),
        _ => OpsError::Redis(format!("Redis at {shown} cannot be used: {}", e.kind_description())),
    }
}

/// The error's kind in words (its text may echo a URL, so it is not shown).
trait KindDescription {
    fn kind_description(&self) -> String;
}

impl KindDescription for redis::RedisError {
    fn kind_description(&self) -> String {
        if self.is_connection_refusal() {
            "connection refused".into()
        } else if self.is_timeout() {
            "timed out".into()
        } else if self.is_io_error() {
            "the connection failed".into()
        } else {
            format!("{:?}", self.kind())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_env_file_reads_as_compose_reads_it() {
        let env = parse_dotenv(
            "# passwords\nREDIS_PASSWORD=s3cret # rotate monthly\nexport COMPOSE_PROJECT_NAME=\"Cashtag Prod\"\n\
             MONGO_ROOT_PASSWORD='a b'\nbroken line\n\nHTTP_PORT_LOG=\n",
        );
        assert_eq!(env["REDIS_PASSWORD"], "s3cret");
        assert_eq!(env["COMPOSE_PROJECT_NAME"], "Cashtag Prod");
        assert_eq!(env["MONGO_ROOT_PASSWORD"], "a b");
        assert_eq!(env["HTTP_PORT_LOG"], "");
        assert_eq!(env.len(), 4);
        assert_eq!(project_name(None, &env, Path::new("/srv/x")), "cashtagprod");
        assert_eq!(project_name(Some("ct_1"), &env, Path::new("/srv/x")), "ct_1");
        assert_eq!(project_name(None, &BTreeMap::new(), Path::new("/srv/-My.Suite")), "mysuite");
    }

    #[test]
    fn urls_carry_the_password_encoded_and_messages_never_show_it() {
        let url = redis_url("172.18.0.2".parse().unwrap(), Some("p@ss:w/rd"));
        assert_eq!(url, "redis://:p%40ss%3Aw%2Frd@172.18.0.2:6379");
        assert_eq!(shown_address(&url), "redis://172.18.0.2:6379");
        assert_eq!(redis_url("172.18.0.2".parse().unwrap(), None), "redis://172.18.0.2:6379");
    }
}
