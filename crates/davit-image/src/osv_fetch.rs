//! Getting the OSV database without anyone setting it up: download, check and cache the
//! per-ecosystem archives osv.dev publishes (`<base>/<Ecosystem>/all.zip`).
//!
//! The image action should scan out of the box, so when no `osv-db` is given the ecosystems the
//! SBOM contains are fetched from a base URL (a setting, for mirrors and tests). An archive is
//! only used after it was checked: the HTTP status is 200, every byte the server announced
//! arrived, the zip's central directory opens, every entry's CRC matches and every record parses
//! as OSV JSON (that is also the indexing step, so the check costs nothing extra). Archives are
//! kept in a cache directory (the action keeps it in the runner's cache for a day) and written
//! there under a temporary name first, so a half-written file never looks whole. Data older than
//! `max_age` (by the server's `Last-Modified`, else the newest record's `modified`) is refused.
//! Any failure is an error the caller turns into "scan did not run" (T35), never an empty scan.

use crate::finding::{DataAge, ScanOutcome};
use crate::osv::{OsvDb, Vuln};
use crate::sbom::Inventory;
use chrono::{DateTime, Utc};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where osv.dev publishes its archives.
pub const DEFAULT_BASE_URL: &str = "https://osv-vulnerabilities.storage.googleapis.com";
/// A cached archive younger than this is used without asking the server again.
pub const REFRESH_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The `davit-image run` flags for the download (each with its `DAVIT_*` variable).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FetchArgs {
    /// Base URL of the OSV archives (`<base>/<Ecosystem>/all.zip`), used when `osv-db` is not
    /// set (default: osv.dev's bucket).
    #[arg(long = "osv-url", env = "DAVIT_OSV_URL")]
    pub url: Option<String>,
    /// Where downloaded archives are kept (default: ~/.cache/davit/osv).
    #[arg(long = "osv-cache", env = "DAVIT_OSV_CACHE")]
    pub cache: Option<PathBuf>,
    /// Refuse vulnerability data published longer ago than this (e.g. 72h, 3d).
    #[arg(long = "osv-max-age", env = "DAVIT_OSV_MAX_AGE", default_value = "72h")]
    pub max_age: String,
    /// Give up on one archive's download after this long (e.g. 300s, 10m).
    #[arg(
        long = "osv-timeout",
        env = "DAVIT_OSV_TIMEOUT",
        default_value = "300s"
    )]
    pub timeout: String,
}

impl FetchArgs {
    /// Whether a base URL was given (then `scanner: auto` uses OSV).
    pub fn url_set(&self) -> bool {
        self.url.as_deref().is_some_and(|u| !u.trim().is_empty())
    }

    /// The settings, or a bad-input failure naming the flag.
    pub fn settings(&self) -> Result<FetchSettings, davit_core::Failure> {
        let dur = |name: &str, v: &str, default: &str| {
            let v = if v.trim().is_empty() { default } else { v };
            parse_duration(v).filter(|d| !d.is_zero()).ok_or_else(|| {
                davit_core::Failure::bad_input(
                    format!("{name} = {v:?} is not a duration"),
                    format!("write {name} like 45s, 90m, 36h or 3d"),
                )
            })
        };
        let url = self
            .url
            .clone()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(davit_core::Failure::bad_input(
                format!("osv-url = {url:?} is not an http(s) URL"),
                format!("set osv-url to a base URL such as {DEFAULT_BASE_URL}"),
            ));
        }
        Ok(FetchSettings {
            base_url: url,
            cache_dir: self
                .cache
                .clone()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or_else(FetchSettings::default_cache_dir),
            max_age: dur("osv-max-age", &self.max_age, "72h")?,
            timeout: dur("osv-timeout", &self.timeout, "300s")?,
        })
    }
}

/// The OSV ecosystems (archive names) an inventory needs, sorted.
pub fn ecosystems_of(inv: &Inventory) -> Vec<String> {
    let release = inv.distro.as_ref().and_then(|d| d.osv_ecosystem());
    let mut v: Vec<String> = inv
        .components
        .iter()
        .map(|c| c.kind.osv_base(release.as_deref()).to_string())
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Download what the inventory needs and scan it; every failure is a scan that did not run.
pub fn scan_downloaded(args: &FetchArgs, inv: &Inventory) -> ScanOutcome {
    let settings = match args.settings() {
        Ok(s) => s,
        Err(f) => return ScanOutcome::did_not_run(f.message, f.hint.unwrap_or_default()),
    };
    let ecosystems = ecosystems_of(inv);
    if ecosystems.is_empty() {
        // Nothing to look up: an empty database matches nothing, and says so.
        let db = OsvDb::from_records(PathBuf::from(&settings.base_url), Vec::new());
        return db.scan(inv);
    }
    match fetch(&settings, &ecosystems, Utc::now()) {
        Ok(f) => {
            let mut outcome = f.db.scan(inv);
            if let ScanOutcome::Completed { scanner, .. } = &mut outcome {
                scanner.database = format!(
                    "{} OSV advisories downloaded from {}{}",
                    f.db.len(),
                    f.age.source,
                    if f.cached.is_empty() {
                        String::new()
                    } else {
                        format!("; from the cache: {}", f.cached.join(", "))
                    }
                );
                scanner.data = Some(f.age);
            }
            outcome
        }
        Err(e) => ScanOutcome::did_not_run(e.to_string(), e.hint()),
    }
}

/// Download settings.
#[derive(Debug, Clone)]
pub struct FetchSettings {
    pub base_url: String,
    pub cache_dir: PathBuf,
    /// Refuse data published longer ago than this.
    pub max_age: Duration,
    /// Whole download of one archive.
    pub timeout: Duration,
}

impl FetchSettings {
    /// `$XDG_CACHE_HOME/davit/osv`, else `~/.cache/davit/osv`, else a temp directory.
    pub fn default_cache_dir() -> PathBuf {
        std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(std::env::temp_dir)
            .join("davit")
            .join("osv")
    }
}

/// Why the database could not be had.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("OSV download of {url} failed: {message}")]
    Download { url: String, message: String },
    #[error("OSV archive {url} is not there (HTTP {status})")]
    NotFound { url: String, status: u16 },
    #[error("OSV archive {url} is truncated: {got} of {expected} bytes arrived")]
    Truncated {
        url: String,
        got: u64,
        expected: u64,
    },
    #[error("OSV download of {url} did not finish within {seconds} s")]
    Slow { url: String, seconds: u64 },
    #[error("OSV archive {url} failed its check: {message}")]
    Corrupt { url: String, message: String },
    #[error(
        "OSV data for {ecosystem} was published {published} ({hours:.0} hours ago), older than the limit of {limit_hours} hours"
    )]
    TooOld {
        ecosystem: String,
        published: String,
        hours: f64,
        limit_hours: u64,
    },
    #[error("OSV cache {path}: {message}")]
    Cache { path: PathBuf, message: String },
}

impl FetchError {
    /// What the user should do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            FetchError::NotFound { .. } => {
                "check `osv-url` (osv.dev's layout is <base>/<Ecosystem>/all.zip) or set `osv-db` to a local copy"
            }
            FetchError::TooOld { .. } => {
                "the mirror is stale: refresh it, or raise `osv-max-age` if old data is acceptable"
            }
            FetchError::Cache { .. } => "make `osv-cache` a writable directory",
            _ => {
                "retry the job (the network or the server failed); a mirror can be set with `osv-url`, or a local copy with `osv-db`"
            }
        }
    }
}

/// Cache metadata kept next to each archive.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Meta {
    url: String,
    /// When the data was published (RFC 3339).
    published: String,
    /// When davit downloaded it (RFC 3339).
    fetched: String,
    bytes: u64,
}

/// The database built from the archives, and how old its data is.
pub struct Fetched {
    pub db: OsvDb,
    pub age: DataAge,
    /// Ecosystems served from the cache without a download.
    pub cached: Vec<String>,
}

/// Download (or take from the cache), check and index the archives of `ecosystems`.
pub fn fetch(
    settings: &FetchSettings,
    ecosystems: &[String],
    now: DateTime<Utc>,
) -> Result<Fetched, FetchError> {
    std::fs::create_dir_all(&settings.cache_dir).map_err(|e| FetchError::Cache {
        path: settings.cache_dir.clone(),
        message: e.to_string(),
    })?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| FetchError::Download {
            url: settings.base_url.clone(),
            message: format!("cannot start the async runtime: {e}"),
        })?;
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(20).min(settings.timeout))
        .user_agent(concat!("davit-image/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| FetchError::Download {
            url: settings.base_url.clone(),
            message: e.to_string(),
        })?;
    let mut records: Vec<Vuln> = Vec::new();
    let mut oldest: Option<DateTime<Utc>> = None;
    let mut cached = Vec::new();
    for eco in ecosystems {
        let url = archive_url(&settings.base_url, eco);
        let file = settings.cache_dir.join(format!("{}.zip", safe_name(eco)));
        let meta_file = settings.cache_dir.join(format!("{}.json", safe_name(eco)));
        let meta = read_meta(&meta_file).filter(|m| m.url == url);
        let fresh = meta.as_ref().is_some_and(|m| {
            DateTime::parse_from_rfc3339(&m.fetched).is_ok_and(|t| {
                (now - t.with_timezone(&Utc)).to_std().unwrap_or_default() < REFRESH_AFTER
            })
        }) && file.is_file();
        let (db, published) = match (fresh, meta) {
            (true, Some(m)) => match OsvDb::load(&file) {
                Ok(db) => {
                    cached.push(eco.clone());
                    (db, parse_time(&m.published))
                }
                // A damaged cache entry is downloaded again.
                Err(_) => rt.block_on(download(&client, settings, &url, &file, &meta_file, now))?,
            },
            _ => rt.block_on(download(&client, settings, &url, &file, &meta_file, now))?,
        };
        let published = published
            .or_else(|| db.newest_modified().and_then(parse_time))
            .unwrap_or(now);
        let hours = (now - published).num_seconds().max(0) as f64 / 3600.0;
        if hours > settings.max_age.as_secs_f64() / 3600.0 {
            return Err(FetchError::TooOld {
                ecosystem: eco.clone(),
                published: published.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                hours,
                limit_hours: settings.max_age.as_secs() / 3600,
            });
        }
        oldest = Some(oldest.map_or(published, |o| o.min(published)));
        records.extend(db.into_records());
    }
    let published = oldest.unwrap_or(now);
    let source = format!(
        "{} ({})",
        settings.base_url.trim_end_matches('/'),
        ecosystems.join(", ")
    );
    Ok(Fetched {
        db: OsvDb::from_records(PathBuf::from(&source), records),
        age: DataAge {
            updated: published.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            age_hours: ((now - published).num_seconds().max(0) as f64 / 360.0).round() / 10.0,
            source,
        },
        cached,
    })
}

/// `<base>/<Ecosystem>/all.zip`, the ecosystem name percent-encoded as a path segment.
pub fn archive_url(base: &str, ecosystem: &str) -> String {
    let mut seg = String::new();
    for b in ecosystem.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            seg.push(b as char);
        } else {
            seg.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{}/{seg}/all.zip", base.trim_end_matches('/'))
}

fn safe_name(eco: &str) -> String {
    eco.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn read_meta(path: &Path) -> Option<Meta> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_rfc2822(s))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Download `url` into `file` (through a temporary file), check it by loading it, record the
/// metadata. Returns the loaded database and the server's publication time.
async fn download(
    client: &reqwest::Client,
    settings: &FetchSettings,
    url: &str,
    file: &Path,
    meta_file: &Path,
    now: DateTime<Utc>,
) -> Result<(OsvDb, Option<DateTime<Utc>>), FetchError> {
    let err = |message: String| FetchError::Download {
        url: url.to_string(),
        message,
    };
    let slow = || FetchError::Slow {
        url: url.to_string(),
        seconds: settings.timeout.as_secs(),
    };
    let cache_err = |e: std::io::Error| FetchError::Cache {
        path: settings.cache_dir.clone(),
        message: e.to_string(),
    };
    let work = async {
        let mut resp = client
            .get(url)
            .send()
            .await
            .map_err(|e| err(error_chain(&e)))?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::GONE {
            return Err(FetchError::NotFound {
                url: url.to_string(),
                status: status.as_u16(),
            });
        }
        if !status.is_success() {
            return Err(err(format!("HTTP {status}")));
        }
        let expected = resp.content_length();
        let published = resp
            .headers()
            .get(reqwest::header::LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_time);
        let mut tmp = tempfile::Builder::new()
            .prefix(".download-")
            .tempfile_in(&settings.cache_dir)
            .map_err(cache_err)?;
        let mut got = 0u64;
        loop {
            match resp.chunk().await {
                Ok(Some(bytes)) => {
                    got += bytes.len() as u64;
                    tmp.write_all(&bytes).map_err(cache_err)?;
                }
                Ok(None) => break,
                // The connection closed early: with a length announced that is a truncation.
                Err(e) => {
                    return Err(match expected {
                        Some(expected) if got < expected => FetchError::Truncated {
                            url: url.to_string(),
                            got,
                            expected,
                        },
                        _ => err(error_chain(&e)),
                    });
                }
            }
        }
        if let Some(expected) = expected
            && got != expected
        {
            return Err(FetchError::Truncated {
                url: url.to_string(),
                got,
                expected,
            });
        }
        tmp.as_file().sync_all().map_err(cache_err)?;
        Ok((tmp, got, published))
    };
    let (tmp, bytes, published) = tokio::time::timeout(settings.timeout, work)
        .await
        .map_err(|_| slow())??;
    // The check: the zip opens, every entry's CRC matches, every record is OSV JSON.
    let db = OsvDb::load(tmp.path()).map_err(|e| FetchError::Corrupt {
        url: url.to_string(),
        message: e.to_string(),
    })?;
    tmp.persist(file).map_err(|e| cache_err(e.error))?;
    let meta = Meta {
        url: url.to_string(),
        published: published
            .or_else(|| db.newest_modified().and_then(parse_time))
            .unwrap_or(now)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        fetched: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        bytes,
    };
    let text = serde_json::to_vec_pretty(&meta).unwrap_or_default();
    let mut mtmp = tempfile::NamedTempFile::new_in(&settings.cache_dir).map_err(cache_err)?;
    mtmp.write_all(&text).map_err(cache_err)?;
    mtmp.persist(meta_file).map_err(|e| cache_err(e.error))?;
    Ok((db, published))
}

/// An error with its causes ("error sending request: connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// Parse "36h", "3d", "90m", "45s" or plain seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: u64 = s[..split].parse().ok()?;
    let mult = match s[split..].trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return None,
    };
    Some(Duration::from_secs(n * mult))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_urls_follow_the_osv_dev_layout() {
        assert_eq!(
            archive_url("http://h/base/", "PyPI"),
            "http://h/base/PyPI/all.zip"
        );
        assert_eq!(
            archive_url("http://h", "crates.io"),
            "http://h/crates.io/all.zip"
        );
        assert_eq!(
            archive_url("http://h", "Debian:12"),
            "http://h/Debian%3A12/all.zip"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("36h"), Some(Duration::from_secs(36 * 3600)));
        assert_eq!(parse_duration("3d"), Some(Duration::from_secs(3 * 86400)));
        assert_eq!(parse_duration("45"), Some(Duration::from_secs(45)));
        assert_eq!(parse_duration("soon"), None);
    }
}
