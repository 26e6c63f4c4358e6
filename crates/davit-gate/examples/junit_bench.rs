//! Throughput and peak memory of the JUnit reader on generated reports.
//!
//! `cargo run --release -p davit-gate --example junit_bench [MiB ...]` (default 10 100). Each size
//! runs in a child process so the peak RSS (VmHWM) of one size is not inherited by the next.

use std::path::Path;
use std::time::Instant;

use davit_gate::junit;
use davit_gate::report::TestRun;
use davit_gate::synthetic;

fn measure(mib: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("report.xml");
    let counts = synthetic::write_report(std::fs::File::create(&path).expect("create"), mib << 20)
        .expect("generate");
    // Warm the page cache (streaming, so the warm-up itself does not raise the peak RSS) so the
    // figure is the parser, not the disk.
    let _ = std::io::copy(
        &mut std::fs::File::open(&path).expect("open"),
        &mut std::io::sink(),
    );
    if std::env::var_os("RAW").is_some() {
        // Baseline: quick-xml's event loop alone, no JUnit logic.
        let start = Instant::now();
        let mut r = quick_xml::Reader::from_reader(std::io::BufReader::with_capacity(
            256 * 1024,
            std::fs::File::open(&path).expect("open"),
        ));
        let mut buf = Vec::new();
        let mut n = 0u64;
        loop {
            match r.read_event_into(&mut buf) {
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(_) => n += 1,
                Err(e) => panic!("{e}"),
            }
            buf.clear();
        }
        let secs = start.elapsed().as_secs_f64();
        eprintln!(
            "raw quick-xml: {n} events, {:.0} MB/s",
            counts.bytes as f64 / 1e6 / secs
        );
    }
    let base = synthetic::rss().unwrap_or(0);
    let cpu0 = cpu_ns();
    let start = Instant::now();
    let mut run = TestRun::new(Path::new("/"));
    run.start_report("report.xml");
    junit::parse_file(&path, &mut run).expect("parse");
    let secs = start.elapsed().as_secs_f64();
    let cpu = (cpu_ns() - cpu0) as f64 / 1e9;
    let peak = synthetic::peak_rss().unwrap_or(0);
    assert_eq!(run.totals.tests, counts.tests);
    let mb = counts.bytes as f64 / 1e6;
    println!(
        "| {:>8.1} | {:>9} | {:>7.2} | {:>7.0} | {:>7.2} | {:>7.0} | {:>13.1} | {:>13.1} |",
        mb,
        counts.tests,
        secs,
        mb / secs,
        cpu,
        mb / cpu,
        peak as f64 / (1 << 20) as f64,
        base as f64 / (1 << 20) as f64,
    );
}

/// CPU time of this (main) thread in ns, from /proc/self/schedstat: on a busy machine wall time
/// measures the neighbours as much as the parser.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, mib] = args.as_slice()
        && flag == "--one"
    {
        measure(mib.parse().expect("MiB"));
        return;
    }
    let sizes: Vec<u64> = if args.is_empty() {
        vec![10, 100]
    } else {
        args.iter()
            .map(|a| a.parse().expect("sizes in MiB"))
            .collect()
    };
    println!(
        "| report MB | testcases | wall s | MB/s (wall) | CPU s | MB/s (CPU) | peak RSS MiB | RSS before MiB |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let exe = std::env::current_exe().expect("current exe");
    for mib in sizes {
        let status = std::process::Command::new(&exe)
            .args(["--one", &mib.to_string()])
            .status()
            .expect("run child");
        assert!(status.success());
    }
}
