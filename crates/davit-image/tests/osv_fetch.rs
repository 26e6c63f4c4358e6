//! The OSV download against a local HTTP server: real-format `all.zip` archives built from the
//! shared OSV records, and the ways a download goes wrong (truncated, 404, slow, stale,
//! corrupt), each of which is "scan did not run", never "clean" (T35).

mod common;

use chrono::{Duration as CDuration, Utc};
use common::{davit_image, fixtures};
use davit_image::osv_fetch::{FetchError, FetchSettings, fetch};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone)]
enum Serve {
    /// The archive, with this Last-Modified header.
    Ok(Vec<u8>, String),
    /// Announce the whole length, send half, close.
    Truncated(Vec<u8>),
    /// Headers, then one byte a second.
    Slow(Vec<u8>),
}

struct Server {
    base: String,
    routes: Arc<Mutex<HashMap<String, Serve>>>,
    requests: Arc<AtomicUsize>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}/osv", listener.local_addr().unwrap());
        let routes: Arc<Mutex<HashMap<String, Serve>>> = Arc::default();
        let requests = Arc::new(AtomicUsize::new(0));
        let (r, n) = (routes.clone(), requests.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let (r, n) = (r.clone(), n.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(conn.try_clone().unwrap());
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap_or(0);
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                            break;
                        }
                    }
                    n.fetch_add(1, Ordering::SeqCst);
                    let serve = r.lock().unwrap().get(&path).cloned();
                    let _ = match serve {
                        Some(Serve::Ok(body, lm)) => write!(
                            conn,
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: {lm}\r\nConnection: close\r\n\r\n",
                            body.len()
                        )
                        .and_then(|_| conn.write_all(&body)),
                        Some(Serve::Truncated(body)) => write!(
                            conn,
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        )
                        .and_then(|_| conn.write_all(&body[..body.len() / 2])),
                        Some(Serve::Slow(body)) => {
                            let r = write!(
                                conn,
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                body.len()
                            );
                            for b in body.iter().take(30) {
                                if conn.write_all(&[*b]).is_err() {
                                    break;
                                }
                                std::thread::sleep(Duration::from_secs(1));
                            }
                            r
                        }
                        None => conn.write_all(
                            b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nNot Found",
                        ),
                    };
                });
            }
        });
        Server {
            base,
            routes,
            requests,
        }
    }

    fn serve(&self, eco: &str, s: Serve) {
        self.routes
            .lock()
            .unwrap()
            .insert(format!("/osv/{eco}/all.zip"), s);
    }
}

/// osv.dev's format: one `<ID>.json` per record at the top of the zip, deflated.
fn osv_zip(eco: &str) -> (Vec<u8>, usize) {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let mut n = 0;
    for e in glob::glob(&format!("{}/osv/{eco}/*.json", fixtures().display())).unwrap() {
        let p = e.unwrap();
        w.start_file(p.file_name().unwrap().to_string_lossy(), opts)
            .unwrap();
        w.write_all(&std::fs::read(&p).unwrap()).unwrap();
        n += 1;
    }
    assert!(n > 0, "no OSV fixtures for {eco}");
    (w.finish().unwrap().into_inner(), n)
}

fn http_date(hours_ago: i64) -> String {
    (Utc::now() - CDuration::hours(hours_ago))
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

fn settings(server: &Server, cache: &std::path::Path) -> FetchSettings {
    FetchSettings {
        base_url: server.base.clone(),
        cache_dir: cache.to_path_buf(),
        max_age: Duration::from_secs(72 * 3600),
        timeout: Duration::from_secs(60),
    }
}

fn ecos(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn archives_are_downloaded_checked_indexed_and_dated() {
    let server = Server::start();
    let (npm, n_npm) = osv_zip("npm");
    let (pypi, n_pypi) = osv_zip("PyPI");
    server.serve("npm", Serve::Ok(npm, http_date(3)));
    server.serve("PyPI", Serve::Ok(pypi, http_date(5)));
    let cache = tempfile::tempdir().unwrap();
    let f = fetch(
        &settings(&server, cache.path()),
        &ecos(&["PyPI", "npm"]),
        Utc::now(),
    )
    .unwrap();
    assert_eq!(f.db.len(), n_npm + n_pypi);
    assert!(f.cached.is_empty());
    // The age is the oldest archive's.
    assert!((f.age.age_hours - 5.0).abs() < 0.2, "{:?}", f.age);
    assert!(f.age.source.contains("PyPI, npm"), "{:?}", f.age);
    assert_eq!(server.requests.load(Ordering::SeqCst), 2);
    assert!(cache.path().join("npm.zip").is_file());
}

#[test]
fn a_cached_archive_from_today_is_used_without_a_download() {
    let server = Server::start();
    let (npm, n) = osv_zip("npm");
    server.serve("npm", Serve::Ok(npm, http_date(1)));
    let cache = tempfile::tempdir().unwrap();
    let s = settings(&server, cache.path());
    fetch(&s, &ecos(&["npm"]), Utc::now()).unwrap();
    let f = fetch(&s, &ecos(&["npm"]), Utc::now()).unwrap();
    assert_eq!(f.db.len(), n);
    assert_eq!(f.cached, vec!["npm".to_string()]);
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
    // A day later the archive is fetched again.
    fetch(&s, &ecos(&["npm"]), Utc::now() + CDuration::hours(25)).unwrap();
    assert_eq!(server.requests.load(Ordering::SeqCst), 2);
}

/// Fetch npm's archive, which must fail.
fn npm_fails(s: &FetchSettings, accepted: &str) -> FetchError {
    fetch(s, &ecos(&["npm"]), Utc::now()).err().expect(accepted)
}

#[test]
fn a_truncated_download_is_refused_and_leaves_nothing_in_the_cache() {
    let server = Server::start();
    server.serve("npm", Serve::Truncated(osv_zip("npm").0));
    let cache = tempfile::tempdir().unwrap();
    let e = npm_fails(
        &settings(&server, cache.path()),
        "truncated archive accepted",
    );
    assert!(matches!(e, FetchError::Truncated { .. }), "{e}");
    let left: Vec<_> = std::fs::read_dir(cache.path()).unwrap().flatten().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_404_is_not_found_with_a_hint_about_the_url() {
    let server = Server::start();
    let cache = tempfile::tempdir().unwrap();
    let e = npm_fails(&settings(&server, cache.path()), "404 accepted");
    assert!(matches!(e, FetchError::NotFound { status: 404, .. }), "{e}");
    assert!(e.hint().contains("osv-url"));
}

#[test]
fn a_slow_server_times_out() {
    let server = Server::start();
    server.serve("npm", Serve::Slow(osv_zip("npm").0));
    let cache = tempfile::tempdir().unwrap();
    let mut s = settings(&server, cache.path());
    s.timeout = Duration::from_secs(2);
    let e = npm_fails(&s, "slow download accepted");
    assert!(matches!(e, FetchError::Slow { seconds: 2, .. }), "{e}");
}

#[test]
fn data_older_than_the_limit_is_refused() {
    let server = Server::start();
    server.serve("npm", Serve::Ok(osv_zip("npm").0, http_date(24 * 10)));
    let cache = tempfile::tempdir().unwrap();
    let e = npm_fails(&settings(&server, cache.path()), "stale data accepted");
    assert!(matches!(e, FetchError::TooOld { .. }), "{e}");
}

#[test]
fn a_complete_download_that_is_not_a_valid_archive_is_refused() {
    let server = Server::start();
    let (mut zip, _) = osv_zip("npm");
    // Same length, one byte of compressed data flipped: the entry's CRC no longer matches.
    let mid = zip.len() / 3;
    zip[mid] ^= 0xff;
    server.serve("npm", Serve::Ok(zip, http_date(1)));
    let cache = tempfile::tempdir().unwrap();
    let e = npm_fails(&settings(&server, cache.path()), "corrupt archive accepted");
    assert!(matches!(e, FetchError::Corrupt { .. }), "{e}");
    assert!(!cache.path().join("npm.zip").exists());
}

fn run_image(server: &Server, dir: &std::path::Path) -> (std::process::Output, String) {
    let archive = common::npm_lockfile_archive(dir);
    let o = davit_image()
        .args(["run", "--archive"])
        .arg(&archive)
        .args(["--osv-url", &server.base])
        .arg("--osv-cache")
        .arg(dir.join("cache"))
        .arg("--out-dir")
        .arg(dir.join("out"))
        .env("PATH", "/usr/bin:/bin")
        // As the action passes them when the inputs are left empty.
        .env("DAVIT_OSV_DB", "")
        .env("DAVIT_OSV_MAX_AGE", "")
        .output()
        .unwrap();
    let md = std::fs::read_to_string(dir.join("out/summary.md")).unwrap_or_default();
    (o, md)
}

#[test]
fn binary_without_osv_db_downloads_scans_and_reports_the_data_age() {
    let server = Server::start();
    server.serve("npm", Serve::Ok(osv_zip("npm").0, http_date(6)));
    let dir = tempfile::tempdir().unwrap();
    let (o, md) = run_image(&server, dir.path());
    // lodash 4.17.20 has a HIGH advisory in the fixtures: the scan ran and rejected it.
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(md.contains("Vulnerability data: published"), "{md}");
    assert!(md.contains("hours old"), "{md}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("out/report.json")).unwrap())
            .unwrap();
    assert_eq!(report["scan"]["status"], "completed");
    let age = report["scan"]["scanner"]["data"]["age_hours"]
        .as_f64()
        .unwrap();
    assert!((age - 6.0).abs() < 0.2, "{age}");
}

#[test]
fn t35_binary_with_an_unreachable_archive_did_not_scan() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let (o, md) = run_image(&server, dir.path());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("scan did not run") && stderr.contains("404"),
        "{stderr}"
    );
    assert!(md.contains("did not run") && !md.contains("passed"), "{md}");
}
