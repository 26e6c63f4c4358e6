//! Waiting for the services tests need (a database, a cache) before starting them.
//!
//! Service containers on Actions start in parallel with the job, and PostgreSQL accepts TCP
//! connections a moment before it accepts queries ("the database system is starting up"). A
//! test suite started in that window fails with connection errors that look like bugs. So test
//! and migration checks first wait, with one deadline for all services, until each answers at the
//! protocol level: a TCP connect for `tcp://`, a startup message that is not refused with SQLSTATE
//! 57P03 for `postgres://` (what `pg_isready` checks, without needing it installed), and `PING` ->
//! `PONG` for `redis://`. When the deadline passes, the error names every service that never came
//! up and the last thing it said.

use std::fmt;
use std::time::{Duration, Instant};

use davit_core::{Failure, Secret};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// How readiness is probed.
#[derive(Debug, Clone)]
pub enum Probe {
    Tcp,
    Postgres { user: String, database: String },
    Redis { password: Option<Secret<String>> },
}

/// A service to wait for.
#[derive(Debug, Clone)]
pub struct Service {
    pub host: String,
    pub port: u16,
    pub probe: Probe,
}

impl fmt::Display for Service {
    /// Never shows a password: this string goes to logs and the summary.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.probe {
            Probe::Tcp => "tcp",
            Probe::Postgres { .. } => "postgres",
            Probe::Redis { .. } => "redis",
        };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

fn bad(s: &str, why: &str) -> Failure {
    // The raw value may hold a password: show only the scheme and host part we could read.
    let shown = s.split('@').next_back().unwrap_or("");
    Failure::bad_input(
        format!("service ...{shown} is not valid: {why}"),
        "write services as tcp://host:port, postgres://user@host:5432/db or redis://host:6379",
    )
}

impl Service {
    /// Parse `scheme://[user[:password]@]host[:port][/path]`.
    pub fn parse(s: &str) -> Result<Service, Failure> {
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| bad(s, "missing scheme (tcp://, postgres://, redis://)"))?;
        let (auth, hostpart) = match rest.rsplit_once('@') {
            Some((a, h)) => (Some(a), h),
            None => (None, rest),
        };
        let (hostport, path) = match hostpart.split_once('/') {
            Some((h, p)) => (h, p),
            None => (hostpart, ""),
        };
        let hostport = hostport.split('?').next().unwrap_or("");
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, rest) = v6
                .split_once(']')
                .ok_or_else(|| bad(s, "unclosed [ in host"))?;
            (h.to_string(), rest.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            }
        };
        davit_core::validate::hostname("service host", &host).map_err(|e| bad(s, e.rule))?;
        let default_port = match scheme {
            "tcp" => None,
            "postgres" | "postgresql" => Some(5432),
            "redis" => Some(6379),
            _ => return Err(bad(s, "unknown scheme; use tcp, postgres or redis")),
        };
        let port = match port {
            Some(p) => p
                .parse::<u32>()
                .ok()
                .and_then(|p| davit_core::validate::port("port", p).ok())
                .ok_or_else(|| bad(s, "the port must be 1-65535"))?,
            None => default_port.ok_or_else(|| bad(s, "tcp:// needs a port"))?,
        };
        let (user, password) = match auth {
            Some(a) => match a.split_once(':') {
                Some((u, p)) => (u.to_string(), Some(Secret::new(p.to_string()))),
                None => (a.to_string(), None),
            },
            None => (String::new(), None),
        };
        let probe = match scheme {
            "tcp" => Probe::Tcp,
            "redis" => Probe::Redis { password },
            _ => {
                let user = if user.is_empty() {
                    "postgres".to_string()
                } else {
                    user
                };
                let database = if path.is_empty() {
                    user.clone()
                } else {
                    path.to_string()
                };
                Probe::Postgres { user, database }
            }
        };
        Ok(Service { host, port, probe })
    }

    /// One readiness probe; `Err` says why the service is not ready yet.
    pub async fn probe(&self, io_timeout: Duration) -> Result<(), String> {
        let connect = TcpStream::connect((self.host.as_str(), self.port));
        let mut stream = match tokio::time::timeout(io_timeout, connect).await {
            Err(_) => return Err("connect timed out".into()),
            Ok(Err(e)) => return Err(format!("connect: {e}")),
            Ok(Ok(s)) => s,
        };
        let exchange = async {
            match &self.probe {
                Probe::Tcp => Ok(()),
                Probe::Postgres { user, database } => postgres(&mut stream, user, database).await,
                Probe::Redis { password } => redis(&mut stream, password.as_ref()).await,
            }
        };
        match tokio::time::timeout(io_timeout, exchange).await {
            Err(_) => Err("no answer (timed out)".into()),
            Ok(r) => r,
        }
    }
}

async fn postgres(stream: &mut TcpStream, user: &str, database: &str) -> Result<(), String> {
    // StartupMessage, protocol 3.0. Any answer but "cannot connect now" means the server
    // accepts sessions; authentication is the tests' business, as with pg_isready.
    let mut body = Vec::new();
    body.extend_from_slice(&196608i32.to_be_bytes());
    for (k, v) in [("user", user), ("database", database)] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut msg = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    msg.extend_from_slice(&body);
    stream
        .write_all(&msg)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut tag = [0u8; 1];
    stream
        .read_exact(&mut tag)
        .await
        .map_err(|e| format!("no answer to the startup message: {e}"))?;
    match tag[0] {
        b'R' => Ok(()),
        b'E' => {
            let mut len = [0u8; 4];
            stream
                .read_exact(&mut len)
                .await
                .map_err(|e| e.to_string())?;
            let n = (i32::from_be_bytes(len).max(4) as usize - 4).min(8192);
            let mut payload = vec![0u8; n];
            stream
                .read_exact(&mut payload)
                .await
                .map_err(|e| e.to_string())?;
            let mut code = String::new();
            let mut message = String::new();
            for field in payload.split(|b| *b == 0) {
                if let Some((&t, v)) = field.split_first() {
                    match t {
                        b'C' => code = String::from_utf8_lossy(v).into_owned(),
                        b'M' => message = String::from_utf8_lossy(v).into_owned(),
                        _ => {}
                    }
                }
            }
            if code == "57P03" {
                Err(format!("not accepting connections yet: {message}"))
            } else {
                Ok(())
            }
        }
        other => Err(format!(
            "unexpected answer {:?}: not PostgreSQL?",
            other as char
        )),
    }
}

async fn redis(stream: &mut TcpStream, password: Option<&Secret<String>>) -> Result<(), String> {
    let (r, mut w) = stream.split();
    let mut r = BufReader::new(r);
    let mut line = String::new();
    if let Some(p) = password {
        let p = p.expose();
        let cmd = format!("*2\r\n$4\r\nAUTH\r\n${}\r\n{p}\r\n", p.len());
        w.write_all(cmd.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        r.read_line(&mut line).await.map_err(|e| e.to_string())?;
        if !line.starts_with("+OK") {
            return Err(format!("AUTH refused: {}", line.trim()));
        }
        line.clear();
    }
    w.write_all(b"*1\r\n$4\r\nPING\r\n")
        .await
        .map_err(|e| e.to_string())?;
    r.read_line(&mut line).await.map_err(|e| e.to_string())?;
    let line = line.trim();
    if line == "+PONG" || line.starts_with("-NOAUTH") {
        // NOAUTH: the server is up and wants a password the tests will bring.
        Ok(())
    } else if line.is_empty() {
        Err("connection closed without an answer".into())
    } else {
        Err(format!("PING answered {line:?}"))
    }
}

/// A service that was up, and how long it took.
#[derive(Debug, Clone)]
pub struct Ready {
    pub service: String,
    pub after: Duration,
}

/// Services that never came up before the deadline.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", self.describe())]
pub struct NeverReady {
    pub deadline: Duration,
    /// (service, last error)
    pub down: Vec<(String, String)>,
}

impl NeverReady {
    fn describe(&self) -> String {
        let list: Vec<String> = self
            .down
            .iter()
            .map(|(s, e)| format!("{s} (last error: {e})"))
            .collect();
        format!(
            "service{} never came up within {:?}: {}",
            if self.down.len() == 1 { "" } else { "s" },
            self.deadline,
            list.join("; ")
        )
    }
}

/// Wait until every service answers, or the deadline passes.
pub async fn wait_all(services: &[Service], deadline: Duration) -> Result<Vec<Ready>, NeverReady> {
    let start = Instant::now();
    let end = start + deadline;
    let tasks = services.iter().map(|s| async move {
        let mut last = String::from("not tried");
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err((s.to_string(), last));
            }
            match s.probe(left.min(Duration::from_secs(3))).await {
                Ok(()) => {
                    return Ok(Ready {
                        service: s.to_string(),
                        after: start.elapsed(),
                    });
                }
                Err(e) => last = e,
            }
            let left = end.saturating_duration_since(Instant::now());
            tokio::time::sleep(left.min(Duration::from_millis(250))).await;
        }
    });
    let results = join_all(tasks).await;
    let mut ready = Vec::new();
    let mut down = Vec::new();
    for r in results {
        match r {
            Ok(x) => ready.push(x),
            Err(x) => down.push(x),
        }
    }
    if down.is_empty() {
        Ok(ready)
    } else {
        Err(NeverReady { deadline, down })
    }
}

/// `join_all` without pulling in the futures crate: spawn-free, polls all probes concurrently.
pub(crate) async fn join_all<F: std::future::Future>(
    futs: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futs {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn parsing_defaults_and_redaction() {
        let s = Service::parse("postgres://app:s3cret@db:5433/shop").unwrap();
        assert_eq!((s.host.as_str(), s.port), ("db", 5433));
        assert!(
            matches!(&s.probe, Probe::Postgres { user, database } if user == "app" && database == "shop")
        );
        assert_eq!(s.to_string(), "postgres://db:5433");
        assert!(!format!("{s:?}").contains("s3cret"));
        let r = Service::parse("redis://:pw@localhost").unwrap();
        assert_eq!(r.port, 6379);
        assert!(matches!(&r.probe, Probe::Redis { password: Some(p) } if p.expose() == "pw"));
        assert_eq!(Service::parse("tcp://[::1]:9200").unwrap().host, "::1");
        for bad in [
            "tcp://host",
            "http://x:1",
            "localhost:5432",
            "tcp://-oProxy:22",
            "tcp://h:0",
            "redis://:hunter2@x:99999",
        ] {
            let e = Service::parse(bad).unwrap_err();
            assert_eq!(e.exit, davit_core::Exit::BadInput, "{bad}");
            assert!(!e.message.contains("hunter2"), "{}", e.message);
        }
    }

    /// A stand-in Redis that says LOADING twice before PONG, to exercise the retry.
    #[tokio::test]
    async fn redis_ping_waits_through_loading() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            for n in 0.. {
                let (mut s, _) = l.accept().await.unwrap();
                let mut buf = [0u8; 64];
                let _ = s.read(&mut buf).await;
                let answer: &[u8] = if n < 2 {
                    b"-LOADING Redis is loading the dataset in memory\r\n"
                } else {
                    b"+PONG\r\n"
                };
                let _ = s.write_all(answer).await;
            }
        });
        let svc = Service::parse(&format!("redis://127.0.0.1:{port}")).unwrap();
        let ready = wait_all(&[svc], Duration::from_secs(30)).await.unwrap();
        assert_eq!(ready.len(), 1);
    }

    #[tokio::test]
    async fn deadline_names_the_service_that_never_came_up() {
        // Bind then drop to get a port nobody listens on.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let up = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let up_port = up.local_addr().unwrap().port();
        let svcs = [
            Service::parse(&format!("tcp://127.0.0.1:{up_port}")).unwrap(),
            Service::parse(&format!("postgres://127.0.0.1:{port}")).unwrap(),
        ];
        let err = wait_all(&svcs, Duration::from_millis(600))
            .await
            .unwrap_err();
        assert_eq!(err.down.len(), 1);
        assert_eq!(err.down[0].0, format!("postgres://127.0.0.1:{port}"));
        assert!(err.to_string().contains("never came up"), "{err}");
        assert!(err.to_string().contains("connect"), "{err}");
    }
}
