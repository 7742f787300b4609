//! Configuration: one schema for the whole suite, read from an optional TOML file and
//! `CASHTAG_*` environment variables, validated at start.
//!
//! Every service reads the same [`Settings`] and uses its own sections, so one file (or
//! one set of environment variables in docker-compose) configures the suite, and a typo is
//! an error everywhere instead of a silently ignored setting.
//!
//! Precedence: built-in defaults < the TOML file (`--config` or `CASHTAG_CONFIG`) <
//! environment. A setting's environment name is its path in upper case joined by `_`:
//! `clock.speed` is `CASHTAG_CLOCK_SPEED`. Every error names the key (and the variable).
//!
//! Any setting can also be read from a file: `CASHTAG_<NAME>_FILE=/run/secrets/x` sets
//! `CASHTAG_<NAME>` to the file's content (without its final line break). That is how
//! Compose file secrets reach the services without a password in their environment.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Environment variables with the `CASHTAG_` prefix that are not settings.
const RESERVED_ENV: &[&str] = &["CASHTAG_CONFIG", "CASHTAG_LOG"];
/// Prefixes of environment variables used by scripts and tests, not settings.
const RESERVED_ENV_PREFIXES: &[&str] = &["CASHTAG_STACK_", "CASHTAG_TEST_"];

/// A configuration error that names the offending key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration key `{key}`{}: {message}", env_hint(.key, .env))]
pub struct ConfigError {
    /// Dotted path of the setting (`clock.speed`), or the file for file-level errors.
    pub key: String,
    /// The environment variable the bad value came from, if any.
    pub env: Option<String>,
    pub message: String,
}

fn env_hint(_key: &str, env: &Option<String>) -> String {
    match env {
        Some(var) => format!(" (from {var})"),
        None => String::new(),
    }
}

impl ConfigError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError { key: key.into(), env: None, message: message.into() }
    }
}

/// Implemented by a configuration schema: semantic checks after parsing.
pub trait Schema: Serialize + DeserializeOwned + Default {
    /// Dotted paths of tables whose keys are open (a map), not fixed fields.
    const OPEN_TABLES: &'static [&'static str] = &[];
    fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }
    /// Derives what other settings imply, once they are valid (a password into its URL).
    fn complete(&mut self) {}
}

/// A section of the settings that can check its own values (the sections in
/// `settings.rs` and the provider sections in `providers.rs` alike).
pub trait Section {
    fn validate(&self) -> Result<(), ConfigError>;
}

/// `Ok` when `ok`, else the error for `key`: the one shape of a section's checks.
pub(crate) fn check(ok: bool, key: &str, message: impl Into<String>) -> Result<(), ConfigError> {
    if ok { Ok(()) } else { Err(ConfigError::new(key, message)) }
}

/// The environment variable name of a dotted setting path.
pub fn env_name(path: &str) -> String {
    format!("CASHTAG_{}", path.replace('.', "_").to_ascii_uppercase())
}

/// Loads a schema from defaults, an optional TOML file and the given environment.
pub fn load<T: Schema>(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<T, ConfigError> {
    let defaults = match toml::Value::try_from(T::default()) {
        Ok(toml::Value::Table(t)) => t,
        other => panic!("configuration defaults must serialize to a table: {other:?}"),
    };
    let mut merged = defaults.clone();
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(path.display().to_string(), format!("cannot read: {e}")))?;
        let table: toml::Table =
            toml::from_str(&text).map_err(|e| ConfigError::new(path.display().to_string(), toml_error(&text, &e)))?;
        merge_file::<T>(&mut merged, &defaults, table, "")?;
    }
    let index = flatten(&defaults);
    let env: Vec<(String, String)> = env.into_iter().collect();
    for (var, raw) in &env {
        if !var.starts_with("CASHTAG_")
            || RESERVED_ENV.contains(&var.as_str())
            || RESERVED_ENV_PREFIXES.iter().any(|p| var.starts_with(p))
        {
            continue;
        }
        let setting = |name: &str| index.iter().find(|(p, _)| env_name(p) == name);
        let (path, default, raw) = match (setting(var), var.strip_suffix("_FILE").and_then(setting)) {
            (Some((path, default)), _) => (path, default, raw.clone()),
            (None, Some((path, default))) => {
                let direct = env_name(path);
                if env.iter().any(|(v, _)| *v == direct) {
                    return Err(ConfigError {
                        key: path.clone(),
                        env: Some(var.clone()),
                        message: format!("set {direct} or {var}, not both"),
                    });
                }
                (path, default, read_setting_file(path, var, raw)?)
            }
            (None, None) => {
                return Err(ConfigError {
                    key: var.clone(),
                    env: Some(var.clone()),
                    message: "unknown setting (see the configuration reference, docs/configuration.md)".into(),
                });
            }
        };
        let value = parse_env_value(default, &raw).map_err(|message| ConfigError {
            key: path.clone(),
            env: Some(var.clone()),
            message,
        })?;
        set_path(&mut merged, path, value);
    }
    let value = toml::Value::Table(merged);
    let mut parsed: T = serde_path_to_error::deserialize(value).map_err(|e| {
        let key = e.path().to_string();
        let var = env_name(&key);
        let from_env = std::env::var_os(&var).is_some();
        ConfigError { key, env: from_env.then_some(var), message: e.into_inner().to_string() }
    })?;
    parsed.validate()?;
    parsed.complete();
    Ok(parsed)
}

/// The value of a `CASHTAG_<NAME>_FILE` setting: the file's content without its final
/// line break. The error names the file, never its content.
fn read_setting_file(path: &str, var: &str, file: &str) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|e| ConfigError {
        key: path.to_string(),
        env: Some(var.to_string()),
        message: format!("cannot read {file}: {}", e.kind()),
    })?;
    Ok(text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text).to_string())
}

/// A TOML syntax error as its place and what is wrong, never the text around it: the
/// offending line may hold a token or a password.
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let place = e.span().map(|span| {
        let before = &text.as_bytes()[..span.start.min(text.len())];
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let column = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
        format!(" at line {line}, column {column}")
    });
    format!("not valid TOML{}: {}", place.unwrap_or_default(), e.message().trim())
}

/// Loads from the process environment and the file named by `--config` or `CASHTAG_CONFIG`.
pub fn load_from_env<T: Schema>(file: Option<&Path>) -> Result<T, ConfigError> {
    let from_env = std::env::var_os("CASHTAG_CONFIG").map(PathBuf::from);
    let file = file.map(Path::to_path_buf).or(from_env);
    load(file.as_deref(), std::env::vars())
}

fn merge_file<T: Schema>(
    into: &mut toml::Table,
    defaults: &toml::Table,
    file: toml::Table,
    prefix: &str,
) -> Result<(), ConfigError> {
    let open = T::OPEN_TABLES.contains(&prefix.trim_end_matches('.'));
    for (key, value) in file {
        let path = format!("{prefix}{key}");
        match (defaults.get(&key), value) {
            (Some(toml::Value::Table(d)), toml::Value::Table(v)) => {
                let entry = into.entry(key.clone()).or_insert_with(|| toml::Value::Table(Default::default()));
                let toml::Value::Table(sub) = entry else { unreachable!() };
                merge_file::<T>(sub, d, v, &format!("{path}."))?;
            }
            (Some(toml::Value::Table(_)), _) => {
                return Err(ConfigError::new(path, "expected a table"));
            }
            (Some(_), v) => {
                into.insert(key, v);
            }
            (None, v) if open => {
                into.insert(key, v);
            }
            (None, _) => return Err(ConfigError::new(path, "unknown setting")),
        }
    }
    Ok(())
}

/// All leaf settings as (dotted path, default value).
fn flatten(table: &toml::Table) -> Vec<(String, toml::Value)> {
    fn walk(t: &toml::Table, prefix: &str, out: &mut Vec<(String, toml::Value)>) {
        for (k, v) in t {
            let path = format!("{prefix}{k}");
            match v {
                toml::Value::Table(sub) => walk(sub, &format!("{path}."), out),
                other => out.push((path, other.clone())),
            }
        }
    }
    let mut out = Vec::new();
    walk(table, "", &mut out);
    out
}

fn set_path(table: &mut toml::Table, path: &str, value: toml::Value) {
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop().expect("non-empty path");
    let mut t = table;
    for p in parts {
        let entry = t.entry(p.to_string()).or_insert_with(|| toml::Value::Table(Default::default()));
        let toml::Value::Table(sub) = entry else { unreachable!("path goes through tables") };
        t = sub;
    }
    t.insert(last.to_string(), value);
}

/// Parses an environment string into the type of the setting's default.
fn parse_env_value(default: &toml::Value, raw: &str) -> Result<toml::Value, String> {
    let raw_t = raw.trim();
    match default {
        toml::Value::Boolean(_) => match raw_t.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(toml::Value::Boolean(true)),
            "0" | "false" | "no" | "off" => Ok(toml::Value::Boolean(false)),
            _ => Err(format!("expected true or false, got {raw:?}")),
        },
        toml::Value::Integer(_) => raw_t
            .replace('_', "")
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| format!("expected a whole number, got {raw:?}")),
        toml::Value::Float(_) => {
            raw_t.parse::<f64>().map(toml::Value::Float).map_err(|_| format!("expected a number, got {raw:?}"))
        }
        toml::Value::Array(_) => {
            if raw_t.starts_with('[') {
                let wrapped: toml::Table = toml::from_str(&format!("v = {raw_t}"))
                    .map_err(|e| format!("expected a TOML array, got {raw:?}: {e}"))?;
                Ok(wrapped["v"].clone())
            } else {
                Ok(toml::Value::Array(
                    raw_t
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| toml::Value::String(s.to_string()))
                        .collect(),
                ))
            }
        }
        _ => Ok(toml::Value::String(raw.to_string())),
    }
}

mod providers;
mod settings;

pub use providers::*;
pub use settings::*;

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_are_valid() {
        let s: Settings = load(None, env(&[])).unwrap();
        assert_eq!(s, Settings::default());
    }

    #[test]
    fn env_overrides_file_overrides_defaults() {
        let dir = tempdir();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "[redis]\nprefix = \"fromfile\"\n[mongo]\ndatabase = \"filedb\"\n[flags]\nextra = false\n",
        )
        .unwrap();
        let s: Settings = load(
            Some(&file),
            env(&[("CASHTAG_MONGO_DATABASE", "envdb"), ("CASHTAG_FLAGS_MONGO_WRITE", "off"), ("PATH", "/bin")]),
        )
        .unwrap();
        assert_eq!(s.redis.prefix, "fromfile");
        assert_eq!(s.mongo.database, "envdb");
        assert!(!s.flags["mongo_write"]);
        assert!(!s.flags["extra"]);
    }

    #[test]
    fn errors_name_the_key() {
        let e = load::<Settings>(None, env(&[("CASHTAG_CLOCK_SPEED", "fast")])).unwrap_err();
        assert_eq!(e.key, "clock.speed");
        assert!(e.to_string().contains("CASHTAG_CLOCK_SPEED"), "{e}");
        assert!(e.to_string().contains("expected a number"), "{e}");

        let e = load::<Settings>(None, env(&[("CASHTAG_REDIS_URLL", "x")])).unwrap_err();
        assert!(e.to_string().contains("CASHTAG_REDIS_URLL") && e.to_string().contains("unknown"), "{e}");

        let e = load::<Settings>(None, env(&[("CASHTAG_REDIS_URL", "http://x")])).unwrap_err();
        assert_eq!(e.key, "redis.url");

        let e =
            load::<Settings>(None, env(&[("CASHTAG_CLOCK_MODE", "simulated"), ("CASHTAG_CLOCK_START", "yesterday")]))
                .unwrap_err();
        assert_eq!(e.key, "clock.start");

        let dir = tempdir();
        let file = dir.join("c.toml");
        std::fs::write(&file, "[mongo]\ndatabse = \"x\"\n").unwrap();
        let e = load::<Settings>(Some(&file), env(&[])).unwrap_err();
        assert_eq!(e.key, "mongo.databse");

        std::fs::write(&file, "[heartbeat]\nttl_secs = \"ten\"\n").unwrap();
        let e = load::<Settings>(Some(&file), env(&[])).unwrap_err();
        assert_eq!(e.key, "heartbeat.ttl_secs", "{e}");
    }

    #[test]
    fn secrets_do_not_leak_in_errors_or_debug() {
        let s: Settings = load(None, env(&[("CASHTAG_MONGO_URI", "mongodb://u:pa55word@h/")])).unwrap();
        assert!(!format!("{s:?}").contains("pa55word"));
        let e = load::<Settings>(None, env(&[("CASHTAG_REDIS_URL", "http://u:pa55word@h")])).unwrap_err();
        assert!(!e.to_string().contains("pa55word"));
    }

    #[test]
    fn a_setting_is_read_from_the_file_its_file_variable_names() {
        let dir = tempdir();
        let (redis_pw, mongo_pw) = (dir.join("redis_password"), dir.join("mongo_password"));
        std::fs::write(&redis_pw, "r3d!s pw\n").unwrap();
        std::fs::write(&mongo_pw, "m0ngo\r\n").unwrap();
        let (redis_pw, mongo_pw) = (redis_pw.display().to_string(), mongo_pw.display().to_string());
        let s: Settings = load(
            None,
            env(&[
                ("CASHTAG_REDIS_URL", "redis://redis:6379"),
                ("CASHTAG_REDIS_PASSWORD_FILE", &redis_pw),
                ("CASHTAG_MONGO_URI", "mongodb://cashtag@mongo:27017/?authSource=admin"),
                ("CASHTAG_MONGO_PASSWORD_FILE", &mongo_pw),
                ("CASHTAG_TWITTER_X_BEARER_TOKEN_FILE", &redis_pw),
            ]),
        )
        .unwrap();
        assert_eq!(s.redis.url.expose(), "redis://:r3d%21s%20pw@redis:6379");
        assert_eq!(s.mongo.uri.expose(), "mongodb://cashtag:m0ngo@mongo:27017/?authSource=admin");
        assert_eq!(s.twitter.x.bearer_token.expose(), "r3d!s pw");
        // `watchlist.file` is a setting of its own, not the file of `watchlist`.
        let watchlist = dir.join("watchlist.toml");
        std::fs::write(&watchlist, "[[company]]\nticker = \"AAPL\"\nname = \"Apple\"\n").unwrap();
        let watchlist = watchlist.display().to_string();
        let s: Settings = load(None, env(&[("CASHTAG_WATCHLIST_FILE", &watchlist)])).unwrap();
        assert_eq!(s.watchlist.file, watchlist);

        let e = load::<Settings>(None, env(&[("CASHTAG_REDIS_PASSWORD_FILE", "/nonexistent/pw")])).unwrap_err();
        assert_eq!(e.key, "redis.password");
        assert!(
            e.to_string().contains("cannot read /nonexistent/pw")
                && e.to_string().contains("CASHTAG_REDIS_PASSWORD_FILE"),
            "{e}"
        );
        let e =
            load::<Settings>(None, env(&[("CASHTAG_REDIS_PASSWORD", "x"), ("CASHTAG_REDIS_PASSWORD_FILE", &redis_pw)]))
                .unwrap_err();
        assert!(e.to_string().contains("not both"), "{e}");
        let e = load::<Settings>(None, env(&[("CASHTAG_MONGO_PASSWORD_FILE", &mongo_pw)])).unwrap_err();
        assert_eq!(e.key, "mongo.password");
        assert!(!e.to_string().contains("m0ngo"), "{e}");
        let e = load::<Settings>(None, env(&[("CASHTAG_NOTHING_FILE", &mongo_pw)])).unwrap_err();
        assert!(e.to_string().contains("unknown setting"), "{e}");
    }

    #[test]
    fn a_toml_syntax_error_names_its_place_without_echoing_the_line() {
        let dir = tempdir();
        let file = dir.join("broken.toml");
        for text in [
            "[twitter.x]\nbearer_token = \"AAAA-sekret-token\n",
            "[stocks.alpaca]\nsecret_key = AAAA-sekret-token\n",
            "[stocks.alpaca]\nsecret_key = \"AAAA-sekret-token\" \"again\"\n",
        ] {
            std::fs::write(&file, text).unwrap();
            let e = load::<Settings>(Some(&file), env(&[])).unwrap_err().to_string();
            assert!(e.contains("not valid TOML at line 2"), "{e}");
            assert!(!e.contains("sekret"), "the token is echoed: {e}");
        }
    }

    #[test]
    fn env_names_are_unique() {
        let defaults = match toml::Value::try_from(Settings::default()).unwrap() {
            toml::Value::Table(t) => t,
            _ => unreachable!(),
        };
        let names: Vec<String> = flatten(&defaults).iter().map(|(p, _)| env_name(p)).collect();
        let mut dedup = names.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(names.len(), dedup.len(), "{names:?}");
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "cashtag-config-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}

#[cfg(test)]
mod reference {
    /// The configuration reference (docs/configuration.md) lists every setting.
    #[test]
    fn the_reference_documents_every_setting() {
        let readme = include_str!("../../../../docs/configuration.md");
        let defaults = match toml::Value::try_from(super::Settings::default()).unwrap() {
            toml::Value::Table(t) => t,
            _ => unreachable!(),
        };
        let missing: Vec<String> = super::flatten(&defaults)
            .into_iter()
            .map(|(p, _)| super::env_name(&p))
            .filter(|var| !readme.contains(&format!("`{var}`")))
            .collect();
        assert!(missing.is_empty(), "docs/configuration.md does not document: {missing:?}");
    }
}
