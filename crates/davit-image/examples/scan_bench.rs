//! Benchmark: SBOM + scan of a Debian-based image with a warm (loaded, indexed) OSV database.
//!
//! `cargo run --release -p davit-image --example scan_bench -- [image] [iterations]`
//!
//! The database is the shared OSV fixtures plus synthetic Debian:12 advisories (default 20000,
//! `BENCH_ADVISORIES`), several for every source package in the image, with dpkg ranges, so
//! the matcher does the real amount of version comparison. Phases are timed separately:
//! `docker save`, reading layers + cataloging (SBOM), matching (scan); the total is what a
//! pipeline pays after the build.

use davit_image::docker::Docker;
use davit_image::osv::{OsvDb, Vuln};
use davit_image::sbom::{archive, catalog};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let image = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "davit-test/debian-minbase:bookworm".into());
    let iterations: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    let synthetic: usize = std::env::var("BENCH_ADVISORIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let docker = Docker::locate().expect("docker");
    let id = docker
        .image_id(&image)
        .expect("image present (run the docker tests once to build it)");
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("image.tar");

    // Source packages of the image, to aim synthetic advisories at.
    docker.save(&id, &tar).unwrap();
    let inv = catalog::inventory(&archive::read(&tar, &catalog::wanted).unwrap());
    let mut sources: Vec<String> = inv
        .components
        .iter()
        .filter_map(|c| c.source_name.clone())
        .collect();
    sources.sort();
    sources.dedup();

    let t = Instant::now();
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/osv");
    let mut records: Vec<Vuln> = Vec::new();
    for e in glob::glob(&format!("{}/*/*.json", fixtures.display())).unwrap() {
        records.push(serde_json::from_slice(&std::fs::read(e.unwrap()).unwrap()).unwrap());
    }
    for i in 0..synthetic {
        // 3/4 of the advisories name a package of the image, the rest other packages.
        let name = if i % 4 != 3 {
            sources[i % sources.len()].clone()
        } else {
            format!("pkg{i}")
        };
        let v = serde_json::json!({
            "id": format!("DEBIAN-SYN-{i}"),
            "summary": "synthetic",
            "affected": [{
                "package": {"name": name, "ecosystem": "Debian:12"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": format!("0.{}-1~deb12u{}", i % 97, i % 5)}]}],
                "versions": [format!("0.{}-1", i % 89)],
            }],
        });
        records.push(serde_json::from_value(v).unwrap());
    }
    let db = OsvDb::from_records("synthetic".into(), records);
    let load = t.elapsed();

    let mut save = Vec::new();
    let mut sbom = Vec::new();
    let mut scan = Vec::new();
    let mut comps = 0;
    let mut findings = 0;
    for _ in 0..iterations {
        let t0 = Instant::now();
        docker.save(&id, &tar).unwrap();
        let t1 = Instant::now();
        let files = archive::read(&tar, &catalog::wanted).unwrap();
        let inv = catalog::inventory(&files);
        let t2 = Instant::now();
        let out = db.scan(&inv);
        let t3 = Instant::now();
        comps = inv.components.len();
        findings = out.findings().len();
        save.push(t1 - t0);
        sbom.push(t2 - t1);
        scan.push(t3 - t2);
    }
    let med = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (s, b, c) = (med(&mut save), med(&mut sbom), med(&mut scan));
    let size = std::fs::metadata(&tar).map(|m| m.len()).unwrap_or(0);
    println!(
        "image {image} ({id}), archive {:.1} MB, {comps} components",
        size as f64 / 1e6
    );
    println!(
        "database: {} advisories, built and indexed in {:.0} ms (not counted: warm)",
        db.len(),
        load.as_secs_f64() * 1e3
    );
    println!(
        "median of {iterations}: docker save {:.0} ms | layers + catalog (SBOM) {:.1} ms | match (scan) {:.1} ms, {findings} findings",
        s.as_secs_f64() * 1e3,
        b.as_secs_f64() * 1e3,
        c.as_secs_f64() * 1e3
    );
    println!(
        "SBOM + scan {:.1} ms; with docker save {:.0} ms",
        (b + c).as_secs_f64() * 1e3,
        (s + b + c).as_secs_f64() * 1e3
    );
}
