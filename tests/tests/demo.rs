//! The README's first command: `davit demo` runs the whole cycle and ends with production on v2
//! after the error-rate analysis rolled back v3: every process (web, two workers, the
//! scheduler) moved with each deploy and back with the rollback. Run on its own ports and folder so it cannot
//! collide with a demo a person left running.

use davit_tests::*;
use std::net::TcpListener;
use std::process::Command;

/// A base port with base..=base+20 free.
fn free_base() -> u16 {
    for base in (21000u16..40000).step_by(97) {
        if (0..=20).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
    panic!("no free block of 21 ports");
}

#[test]
fn demo_runs_end_to_end_and_rolls_back_the_bad_release() {
    if !require_all(&["docker", "nginx", "prometheus"]) {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let davit = exe.parent().unwrap().parent().unwrap().join("davit");
    assert!(
        davit.exists(),
        "build the davit binary first (cargo test --workspace does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let base = free_base().to_string();
    let run = |extra: &[&str]| {
        Command::new(&davit)
            .arg("demo")
            .arg("--dir")
            .arg(dir.path())
            .args(["--port-base", &base])
            .args(extra)
            .current_dir(repo_root())
            .output()
            .unwrap()
    };
    let out = run(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let down = run(&["--down"]);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("production serves v2"), "{stdout}");
    assert!(
        stdout.contains("bad release v3 caught by: traffic: "),
        "{stdout}"
    );
    assert!(stderr.contains("verify: rolling back"), "{stderr}");
    assert!(stdout.contains("detection: "), "{stdout}");
    // Every process moved together: on v3 before the rollback, back on v2 after it.
    assert!(
        stderr.contains("processes: web v3 · scheduler v3 · worker v3 ×2"),
        "{stderr}"
    );
    assert!(
        stdout.contains("every process of production: web v2 · scheduler v2 · worker v2 ×2"),
        "{stdout}"
    );
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
}
