//! An image build whose context holds a davit state folder is refused before anything is built,
//! with the fix; the same context with the folder in `.dockerignore` gets past the check.

mod common;

use common::*;

#[test]
fn a_build_context_holding_davit_state_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("repo");
    let state = ctx.join(".davit/state/shop-production");
    std::fs::create_dir_all(state.join("releases/r-1")).unwrap();
    std::fs::write(state.join("releases.jsonl"), "{}\n").unwrap();
    std::fs::write(
        state.join("releases/r-1/app.env"),
        "DATABASE_URL=postgres://u:canary@db/x\n",
    )
    .unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY . /app/\n").unwrap();
    let run = |out: &std::path::Path| {
        davit_image()
            .args(["run", "--images", "davit-test/context-state"])
            .arg("--context")
            .arg(&ctx)
            .arg("--out-dir")
            .arg(out)
            .output()
            .unwrap()
    };
    let out = dir.path().join("out");
    let o = run(&out);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(".davit/state/shop-production is a davit state folder"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint:") && stderr.contains(".dockerignore"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("canary"),
        "contents are never read out: {stderr}"
    );
    assert!(!out.exists(), "refused before any output was written");

    std::fs::write(ctx.join(".dockerignore"), ".davit\n").unwrap();
    let o = run(&out);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!stderr.contains("davit state folder"), "{stderr}");
    // Remove whatever tags the second run built (only this test's repository).
    let ids = std::process::Command::new("docker")
        .args([
            "image",
            "ls",
            "--format",
            "{{.Repository}}:{{.Tag}}",
            "--filter",
            "reference=davit-test/context-state",
        ])
        .output()
        .unwrap();
    for tag in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
        let _ = std::process::Command::new("docker")
            .args(["image", "rm", "-f", tag])
            .output();
    }
}
