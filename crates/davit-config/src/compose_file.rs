//! The subset of a team's own `docker-compose.prod.yml` that davit reads (`compose_file`).
//!
//! Teams already describe their stack in Compose: the database and cache as services, the web,
//! worker and scheduler as services built from the app, the volumes and networks. Asking them to
//! write it all again in davit.toml is how the two drift apart, so davit reads the file and takes
//! what it needs: each service's image, command, environment, volumes, health check, stop signal
//! and grace period, and the top-level volumes and networks. Keys davit does not use are ignored
//! (Compose has many), and the short and long forms Compose accepts both parse.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// A parsed compose file.
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
pub struct ComposeFile {
    #[serde(default)]
    pub services: BTreeMap<String, ComposeService>,
    #[serde(default)]
    pub volumes: BTreeMap<String, Option<ComposeVolume>>,
    #[serde(default)]
    pub networks: BTreeMap<String, Option<ComposeNetwork>>,
}

#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
pub struct ComposeService {
    #[serde(default)]
    pub image: Option<String>,
    /// Present when the service is built from the repository: an app process, not a service.
    #[serde(default)]
    pub build: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    pub command: Option<StringOrList>,
    #[serde(default)]
    pub entrypoint: Option<StringOrList>,
    #[serde(default)]
    pub environment: Option<Environment>,
    #[serde(default)]
    pub volumes: Vec<VolumeEntry>,
    #[serde(default)]
    pub ports: Vec<serde_yaml_ng::Value>,
    #[serde(default)]
    pub healthcheck: Option<ComposeHealthcheck>,
    #[serde(default)]
    pub stop_signal: Option<String>,
    #[serde(default)]
    pub stop_grace_period: Option<String>,
    #[serde(default)]
    pub deploy: Option<ComposeDeploy>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum StringOrList {
    String(String),
    List(Vec<String>),
}

impl StringOrList {
    /// argv: a list as is, a string split the way Compose splits it (shell words, no shell).
    pub fn argv(&self) -> Result<Vec<String>, String> {
        match self {
            StringOrList::List(l) => Ok(l.clone()),
            StringOrList::String(s) => shlex::split(s)
                .ok_or_else(|| format!("cannot split {s:?} into words (unbalanced quotes?)")),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Environment {
    List(Vec<String>),
    Map(BTreeMap<String, Option<serde_yaml_ng::Value>>),
}

impl Environment {
    /// `KEY=value` pairs in the order written; a bare `KEY` (take it from the caller's
    /// environment) becomes `KEY=${KEY}`.
    pub fn pairs(&self) -> Vec<(String, String)> {
        match self {
            Environment::List(l) => l
                .iter()
                .map(|e| match e.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (e.clone(), format!("${{{e}}}")),
                })
                .collect(),
            Environment::Map(m) => m
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        None => format!("${{{k}}}"),
                        Some(serde_yaml_ng::Value::String(s)) => s.clone(),
                        Some(serde_yaml_ng::Value::Bool(b)) => b.to_string(),
                        Some(serde_yaml_ng::Value::Number(n)) => n.to_string(),
                        Some(other) => format!("{other:?}"),
                    };
                    (k.clone(), v)
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum VolumeEntry {
    /// `name:/target[:ro]` or `./path:/target[:ro]`.
    Short(String),
    Long(VolumeLong),
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct VolumeLong {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    pub target: String,
    #[serde(default)]
    pub read_only: bool,
}

#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
pub struct ComposeVolume {
    #[serde(default)]
    pub external: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
pub struct ComposeNetwork {
    #[serde(default)]
    pub external: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
pub struct ComposeHealthcheck {
    #[serde(default)]
    pub test: Option<StringOrList>,
    #[serde(default)]
    pub interval: Option<String>,
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub retries: Option<u32>,
    #[serde(default)]
    pub start_period: Option<String>,
    #[serde(default)]
    pub disable: bool,
}

#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
pub struct ComposeDeploy {
    #[serde(default)]
    pub replicas: Option<u32>,
}

impl ComposeFile {
    pub fn parse(text: &str) -> Result<ComposeFile, String> {
        serde_yaml_ng::from_str(text).map_err(|e| e.to_string())
    }
}

/// Compose's `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?message}`, `$VAR` and `$$`.
/// `lookup` answers for the variables; an unset `${VAR:?message}` is an error with its message.
pub fn interpolate(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = after.strip_prefix('{') {
            let end = r
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {s:?}"))?;
            let expr = &r[..end];
            out.push_str(&expand(expr, lookup)?);
            rest = &r[end + 1..];
        } else {
            let n = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if n == 0 {
                out.push('$');
            } else {
                out.push_str(&lookup(&after[..n]).unwrap_or_default());
            }
            rest = &after[n..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn expand(expr: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    for (op, empty_counts) in [(":-", true), ("-", false), (":?", true), ("?", false)] {
        if let Some((name, arg)) = expr.split_once(op) {
            if name.contains([':', '-', '?']) {
                continue;
            }
            let v = lookup(name).filter(|v| !(empty_counts && v.is_empty()));
            return match (v, op.ends_with('?')) {
                (Some(v), _) => Ok(v),
                (None, false) => Ok(arg.to_string()),
                (None, true) => Err(format!("{name} is not set: {arg}")),
            };
        }
    }
    Ok(lookup(expr).unwrap_or_default())
}

/// Whether a value refers to a variable (and so may carry a secret once expanded).
pub fn has_variables(s: &str) -> bool {
    s.replace("$$", "").contains('$')
}

/// Compose durations: `60s`, `1m30s`, `500ms`, `1h`, or plain seconds.
pub fn duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("{s:?} has a number without a unit (s, m, h, ms)"))?;
        let value: f64 = rest[..n]
            .parse()
            .map_err(|_| format!("{s:?} is not a duration like 60s or 1m30s"))?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..u] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "us" => 0.000_001,
            other => return Err(format!("{s:?}: unknown unit {other:?} (use ms, s, m or h)")),
        };
        total += Duration::from_secs_f64(value * unit);
        rest = &rest[u..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "PW" => Some("s3cret".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn interpolation_follows_compose() {
        let i = |s| interpolate(s, &env);
        assert_eq!(i("a${PW}b").unwrap(), "as3cretb");
        assert_eq!(i("$PW/x").unwrap(), "s3cret/x");
        assert_eq!(i("${NOPE:-dflt}").unwrap(), "dflt");
        assert_eq!(i("${EMPTY:-dflt}").unwrap(), "dflt");
        assert_eq!(i("${EMPTY-dflt}").unwrap(), "");
        assert_eq!(i("$$HOSTNAME").unwrap(), "$HOSTNAME");
        assert_eq!(i("${NOPE}").unwrap(), "");
        assert_eq!(
            i("${NOPE:?set NOPE}").unwrap_err(),
            "NOPE is not set: set NOPE"
        );
        assert!(i("${PW").is_err());
        assert!(has_variables("x=${PW}"));
        assert!(!has_variables("celery@$$HOSTNAME"));
    }

    #[test]
    fn durations_follow_compose() {
        assert_eq!(duration("60s").unwrap(), Duration::from_secs(60));
        assert_eq!(duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(duration("10").unwrap(), Duration::from_secs(10));
        assert!(duration("10x").is_err());
        assert!(duration("").is_err());
    }

    #[test]
    fn short_and_long_forms_parse() {
        let f = ComposeFile::parse(
            r#"
services:
  web:
    build: .
    command: gunicorn app.wsgi -b "0.0.0.0:8000"
    environment: [A=1, B]
    volumes: ["media:/app/media", {type: bind, source: ./data, target: /data, read_only: true}]
    ports: ["8000:8000"]
    x-unknown: ignored
  db:
    image: postgres:15
    environment: {POSTGRES_DB: app, N: 5, FROM_ENV: null}
    healthcheck: {test: "pg_isready", interval: 2s}
volumes:
  media:
  data: {external: true, name: team_data}
networks:
  default: {}
"#,
        )
        .unwrap();
        let web = &f.services["web"];
        assert_eq!(
            web.command.as_ref().unwrap().argv().unwrap(),
            ["gunicorn", "app.wsgi", "-b", "0.0.0.0:8000"]
        );
        assert_eq!(
            web.environment.as_ref().unwrap().pairs(),
            [("A".into(), "1".into()), ("B".into(), "${B}".into())]
        );
        assert_eq!(web.volumes.len(), 2);
        let db = &f.services["db"];
        assert_eq!(
            db.environment.as_ref().unwrap().pairs(),
            [
                ("FROM_ENV".into(), "${FROM_ENV}".into()),
                ("N".into(), "5".into()),
                ("POSTGRES_DB".into(), "app".into())
            ]
        );
        assert!(f.volumes["media"].is_none());
        assert_eq!(
            f.volumes["data"].as_ref().unwrap().name.as_deref(),
            Some("team_data")
        );
    }

    #[test]
    fn the_example_compose_file_parses() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/django-celery/docker-compose.prod.yml"
        );
        let f = ComposeFile::parse(&std::fs::read_to_string(path).unwrap()).unwrap();
        let names: Vec<_> = f.services.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "backend",
                "celery-beat",
                "celery-worker",
                "postgres",
                "redis"
            ]
        );
    }
}
