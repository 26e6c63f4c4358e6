//! Benchmark: download, check and index a real-size OSV ecosystem archive served locally, then
//! scan with it warm; beside the alternative of a database already on disk (`osv-db`).
//!
//! `cargo run --release -p davit-image --example osv_fetch_bench -- [records] [iterations]`
//!
//! osv.dev's PyPI `all.zip` is tens of MB; this machine cannot reach osv.dev, so the archive is
//! generated: `records` (default 40000) OSV records in osv.dev's format, each built from one of
//! the shared PyPI fixture records with its own id, package name, version ranges and a details
//! text of random words (so it compresses like real prose, not like repeated bytes). It is
//! served by a plain HTTP/1.1 server thread on 127.0.0.1 with `Content-Length` and
//! `Last-Modified`, as Google Cloud Storage serves it. Phases, median of `iterations`:
//! - cold: empty cache -> download + length check + zip CRC + parse + index (`osv_fetch::fetch`);
//! - cached: the same call the same day (archive from the cache, checked and indexed again);
//! - alternative: `OsvDb::load` of the same zip as a local `osv-db` (no network, no cache);
//! - warm scan: matching a 300-package PyPI inventory against the loaded database.

use chrono::Utc;
use davit_image::osv::OsvDb;
use davit_image::osv_fetch::{FetchSettings, fetch};
use davit_image::sbom::{Component, Inventory, PkgType};
use rand::Rng;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

const WORDS: &[&str] = &[
    "attacker",
    "request",
    "header",
    "crafted",
    "denial",
    "service",
    "memory",
    "parser",
    "remote",
    "execute",
    "arbitrary",
    "code",
    "when",
    "the",
    "a",
    "via",
    "input",
    "buffer",
    "overflow",
    "cookie",
    "session",
    "token",
    "validation",
    "improper",
    "path",
    "traversal",
    "allows",
    "users",
    "to",
    "cause",
    "infinite",
    "loop",
    "regular",
    "expression",
    "redos",
    "deserialization",
    "untrusted",
    "data",
    "version",
    "before",
    "fixed",
    "in",
    "upgrade",
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(40_000);
    let iterations: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    let fixtures = std::env::var_os("DAVIT_FIXTURES")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
        })
        .join("osv/PyPI");
    let templates: Vec<serde_json::Value> = glob::glob(&format!("{}/*.json", fixtures.display()))
        .unwrap()
        .map(|p| serde_json::from_slice(&std::fs::read(p.unwrap()).unwrap()).unwrap())
        .collect();
    assert!(
        !templates.is_empty(),
        "no PyPI fixtures in {}",
        fixtures.display()
    );

    // ---- generate the archive
    let mut rng = rand::rng();
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let mut raw = 0usize;
    for i in 0..n {
        let mut v = templates[i % templates.len()].clone();
        let id = format!("PYSEC-BENCH-{i}");
        v["id"] = id.clone().into();
        v["modified"] = "2026-12-06T00:00:00Z".into();
        let details: Vec<&str> = (0..rng.random_range(40..160))
            .map(|_| WORDS[rng.random_range(0..WORDS.len())])
            .collect();
        v["details"] = details.join(" ").into();
        let pkg = format!("package-{}", i % 12_000);
        if let Some(aff) = v["affected"].as_array_mut() {
            for a in aff {
                a["package"]["name"] = pkg.clone().into();
                a["ranges"] = serde_json::json!([{"type": "ECOSYSTEM", "events": [
                    {"introduced": "0"},
                    {"fixed": format!("{}.{}.{}", i % 7 + 1, i % 13, i % 5)}
                ]}]);
            }
        }
        let text = serde_json::to_vec_pretty(&v).unwrap();
        raw += text.len();
        w.start_file(format!("{id}.json"), opts).unwrap();
        w.write_all(&text).unwrap();
    }
    let zip = w.finish().unwrap().into_inner();
    println!(
        "archive: {n} records, {:.1} MB zipped ({:.1} MB of JSON)",
        zip.len() as f64 / 1e6,
        raw as f64 / 1e6
    );

    // ---- serve it
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let body = std::sync::Arc::new(zip);
    let served = body.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let body = served.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(conn.try_clone().unwrap());
                loop {
                    let mut l = String::new();
                    if r.read_line(&mut l).unwrap_or(0) == 0 || l == "\r\n" {
                        break;
                    }
                }
                let lm = Utc::now().format("%a, %d %b %Y %H:%M:%S GMT");
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: {lm}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(&body);
            });
        }
    });

    // ---- measure
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("local-all.zip");
    std::fs::write(&local, &*body).unwrap();
    let ecos = vec!["PyPI".to_string()];
    let (mut cold, mut cached, mut alt, mut scan) = (vec![], vec![], vec![], vec![]);
    let inv = Inventory {
        components: (0..300)
            .map(|i| Component {
                kind: PkgType::Pypi,
                name: format!("package-{}", i * 40),
                version: format!("{}.{}.0", i % 5 + 1, i % 9),
                purl: String::new(),
                layer: None,
                layer_index: None,
                path: "/app".into(),
                source_name: None,
                source_version: None,
                arch: None,
                licenses: vec![],
            })
            .collect(),
        ..Inventory::default()
    };
    let mut findings = 0;
    for it in 0..iterations {
        let cache = dir.path().join(format!("cache-{it}"));
        let settings = FetchSettings {
            base_url: base.clone(),
            cache_dir: cache,
            max_age: Duration::from_secs(72 * 3600),
            timeout: Duration::from_secs(600),
        };
        let t = Instant::now();
        let f = fetch(&settings, &ecos, Utc::now()).unwrap();
        cold.push(t.elapsed());
        assert_eq!(f.db.len(), n);
        drop(f);
        let t = Instant::now();
        let f = fetch(&settings, &ecos, Utc::now()).unwrap();
        cached.push(t.elapsed());
        assert_eq!(f.cached, ecos);
        let t = Instant::now();
        let db = OsvDb::load(&local).unwrap();
        alt.push(t.elapsed());
        assert_eq!(db.len(), n);
        let t = Instant::now();
        let out = f.db.scan(&inv);
        scan.push(t.elapsed());
        findings = out.findings().len();
    }
    println!("| phase (median of {iterations}) | time |\n|---|---:|");
    println!(
        "| cold: download + check + index ({n} records) | {} |",
        ms(median(cold))
    );
    println!(
        "| same day: from the cache, check + index | {} |",
        ms(median(cached))
    );
    println!(
        "| alternative: local `osv-db` zip, load + index | {} |",
        ms(median(alt))
    );
    println!(
        "| warm scan: 300 PyPI packages ({findings} findings) | {} |",
        ms(median(scan))
    );
}
