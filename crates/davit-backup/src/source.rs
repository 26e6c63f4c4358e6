//! Where the dump comes from, turned into argv and environment for the PostgreSQL tools.
//!
//! A database URL carries the password, and argv is world-readable through `/proc/*/cmdline`
//! (T09), so the URL is taken apart here: host, port, user and database become separate
//! arguments and the password travels only in `PGPASSWORD`. In container mode the tools run
//! inside the database container through `docker exec`; the password, when one is needed, is
//! forwarded with `-e PGPASSWORD` (no value), which makes the docker client copy it from its own
//! environment instead of argv. No password file is ever written, so none can be left behind
//! after a failure or a cancelled run (T10).

use crate::BackupError;
use davit_core::{FileBody, Secret};
use std::path::PathBuf;

/// The database to back up.
#[derive(Debug, Clone)]
pub enum Source {
    /// `postgres://user:password@host:port/dbname[?sslmode=...]`; the tools run on the executor's
    /// host and connect over the network.
    Url(Secret<String>),
    /// A PostgreSQL container on the executor's host; the tools inside it are used.
    Container {
        name: String,
        user: String,
        database: String,
        password: Option<Secret<String>>,
    },
}

/// A resolved connection: how to invoke a PostgreSQL tool against a database.
#[derive(Debug, Clone)]
pub(crate) struct Conn {
    kind: Kind,
    pub database: String,
    pub password: Option<Secret<String>>,
}

#[derive(Debug, Clone)]
enum Kind {
    Direct {
        host: String,
        port: u16,
        user: String,
        sslmode: Option<String>,
        pg_bin: Option<PathBuf>,
    },
    Container {
        name: String,
        user: String,
    },
}

impl Conn {
    pub fn resolve(source: &Source, pg_bin: Option<&PathBuf>) -> Result<Conn, BackupError> {
        match source {
            Source::Url(url) => {
                let u = parse_url(url.expose())?;
                Ok(Conn {
                    kind: Kind::Direct {
                        host: u.host,
                        port: u.port,
                        user: u.user,
                        sslmode: u.sslmode,
                        pg_bin: pg_bin.cloned(),
                    },
                    database: u.database,
                    password: u.password.map(Secret::new),
                })
            }
            Source::Container {
                name,
                user,
                database,
                password,
            } => {
                for (what, v) in [("container", name), ("user", user), ("database", database)] {
                    if v.is_empty() || v.starts_with('-') {
                        return Err(BackupError::Config {
                            message: format!("backup {what} {v:?} is empty or starts with '-'"),
                            hint: format!("set backup.{what} to the {what} name"),
                        });
                    }
                }
                Ok(Conn {
                    kind: Kind::Container {
                        name: name.clone(),
                        user: user.clone(),
                    },
                    database: database.clone(),
                    password: password.clone().filter(|p| !p.expose().is_empty()),
                })
            }
        }
    }

    /// argv prefix that runs `tool` (pg_dump, pg_restore, psql) with connection options for
    /// `db`, or without any when `db` is `None` (pg_restore to a file needs no server).
    pub fn tool(&self, tool: &str, db: Option<&str>) -> Vec<String> {
        let mut v = Vec::new();
        match &self.kind {
            Kind::Direct {
                host,
                port,
                user,
                pg_bin,
                ..
            } => {
                v.push(tool_path(pg_bin.as_ref(), tool));
                if let Some(db) = db {
                    v.extend([
                        "-h".into(),
                        host.clone(),
                        "-p".into(),
                        port.to_string(),
                        "-U".into(),
                        user.clone(),
                        "-d".into(),
                        db.to_string(),
                    ]);
                }
            }
            Kind::Container { name, user } => {
                v.extend(["docker".into(), "exec".into(), "-i".into()]);
                if self.password.is_some() && db.is_some() {
                    v.extend(["-e".into(), "PGPASSWORD".into()]);
                }
                v.push(name.clone());
                v.push(tool.into());
                if let Some(db) = db {
                    v.extend(["-U".into(), user.clone(), "-d".into(), db.to_string()]);
                }
            }
        }
        v
    }

    /// Environment for every command that connects: the password and libpq settings.
    pub fn env(&self) -> Vec<(String, FileBody)> {
        let mut env = Vec::new();
        if let Some(p) = &self.password {
            env.push(("PGPASSWORD".to_string(), FileBody::Secret(p.clone())));
        }
        if let Kind::Direct { sslmode, .. } = &self.kind {
            // A dead host must not hang a deploy forever before the migration gate.
            env.push(("PGCONNECT_TIMEOUT".into(), FileBody::Plain("30".into())));
            if let Some(m) = sslmode {
                env.push(("PGSSLMODE".into(), FileBody::Plain(m.clone())));
            }
        }
        env
    }

    /// Programs that must exist on the executor's host.
    pub fn programs(&self) -> Vec<String> {
        match &self.kind {
            Kind::Direct { pg_bin, .. } => ["pg_dump", "pg_restore", "psql"]
                .iter()
                .map(|t| tool_path(pg_bin.as_ref(), t))
                .collect(),
            Kind::Container { .. } => vec!["docker".into()],
        }
    }

    /// Where the data lives, for manifests and messages (never the password).
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Direct {
                host, port, user, ..
            } => format!("{user}@{host}:{port}/{}", self.database),
            Kind::Container { name, user } => format!("{user}@container:{name}/{}", self.database),
        }
    }

    pub fn secrets(&self) -> Vec<&str> {
        self.password.iter().map(|p| p.expose().as_str()).collect()
    }
}

fn tool_path(pg_bin: Option<&PathBuf>, tool: &str) -> String {
    match pg_bin {
        Some(dir) => dir.join(tool).display().to_string(),
        None => tool.to_string(),
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct PgUrl {
    pub user: String,
    pub password: Option<String>,
    pub host: String,
    pub port: u16,
    pub database: String,
    pub sslmode: Option<String>,
}

/// Parse a libpq URL. Errors describe the shape that is wrong, never echo the input (it holds
/// the password).
pub(crate) fn parse_url(url: &str) -> Result<PgUrl, BackupError> {
    let bad = |reason: &str| BackupError::InvalidUrl {
        reason: reason.to_string(),
    };
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .ok_or_else(|| bad("it must start with postgres:// or postgresql://"))?;
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = rest
        .split_once('/')
        .ok_or_else(|| bad("it names no database (…/dbname)"))?;
    // The password may contain '@' only percent-encoded; the last '@' separates userinfo.
    let (userinfo, hostport) = authority
        .rsplit_once('@')
        .ok_or_else(|| bad("it names no user (user:password@host)"))?;
    let (user, password) = match userinfo.split_once(':') {
        Some((u, p)) => (u, Some(p)),
        None => (userinfo, None),
    };
    let user = percent_decode(user).ok_or_else(|| bad("the user is not valid percent-encoding"))?;
    let password = match password {
        Some(p) => Some(
            percent_decode(p).ok_or_else(|| bad("the password is not valid percent-encoding"))?,
        ),
        None => None,
    };
    let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
        let (h, after) = h
            .split_once(']')
            .ok_or_else(|| bad("an IPv6 host is missing its closing ']'"))?;
        (h.to_string(), after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (hostport.to_string(), None),
        }
    };
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad("the port is not a number from 1 to 65535"))?,
        None => 5432,
    };
    let database = percent_decode(path)
        .ok_or_else(|| bad("the database name is not valid percent-encoding"))?;
    if user.is_empty() || host.is_empty() || database.is_empty() {
        return Err(bad("user, host and database must all be present"));
    }
    if [&user, &host, &database].iter().any(|s| s.starts_with('-')) {
        return Err(bad("user, host and database must not start with '-'"));
    }
    let mut sslmode = None;
    for kv in query.unwrap_or("").split('&').filter(|s| !s.is_empty()) {
        match kv.split_once('=') {
            Some(("sslmode", v)) => sslmode = Some(v.to_string()),
            Some((k, _)) => {
                return Err(bad(&format!(
                    "the query parameter {k:?} is not supported (only sslmode)"
                )));
            }
            None => return Err(bad("a query parameter has no value")),
        }
    }
    Ok(PgUrl {
        user,
        password,
        host,
        port,
        database,
        sslmode,
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encode everything but unreserved characters (used to scrub encoded secrets too).
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_is_split_and_decoded() {
        let u = parse_url("postgres://app:p%40ss%2Fw%3Ard@db.internal:6543/shop?sslmode=require")
            .unwrap();
        assert_eq!(
            u,
            PgUrl {
                user: "app".into(),
                password: Some("p@ss/w:rd".into()),
                host: "db.internal".into(),
                port: 6543,
                database: "shop".into(),
                sslmode: Some("require".into()),
            }
        );
        let u = parse_url("postgresql://app@[::1]/shop").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.password), ("::1", 5432, None));
    }

    #[test]
    fn url_errors_never_echo_the_password() {
        for url in [
            "mysql://app:canary-pw@h/db",
            "postgres://app:canary-pw@h:99999/db",
            "postgres://app:canary-pw@h",
            "postgres://app:canary-pw@h/db?password=x",
            "postgres://app:canary%zz@h/db",
        ] {
            let e = parse_url(url).unwrap_err();
            let shown = format!("{e} {e:?} {}", e.hint());
            assert!(!shown.contains("canary"), "{shown}");
        }
    }

    #[test]
    fn url_mode_keeps_the_password_out_of_argv() {
        let c = Conn::resolve(
            &Source::Url(Secret::new(
                "postgres://app:canary@127.0.0.1:5999/shop".into(),
            )),
            None,
        )
        .unwrap();
        let argv = c.tool("pg_dump", Some("shop")).join(" ");
        assert_eq!(argv, "pg_dump -h 127.0.0.1 -p 5999 -U app -d shop");
        assert_eq!(c.env()[0].0, "PGPASSWORD");
        assert_eq!(c.describe(), "app@127.0.0.1:5999/shop");
    }

    #[test]
    fn container_mode_forwards_the_password_by_name() {
        let c = Conn::resolve(
            &Source::Container {
                name: "shop-db".into(),
                user: "app".into(),
                database: "shop".into(),
                password: Some(Secret::new("canary".into())),
            },
            None,
        )
        .unwrap();
        assert_eq!(
            c.tool("psql", Some("shop")).join(" "),
            "docker exec -i -e PGPASSWORD shop-db psql -U app -d shop"
        );
        assert_eq!(
            c.tool("pg_restore", None).join(" "),
            "docker exec -i shop-db pg_restore"
        );
    }
}
