//! Shared helpers for the integration tests: fixture paths, the "needs infrastructure" rule,
//! a scrubbed binary command, the cached Debian test image and a throwaway local registry.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub mod registry;
#[allow(unused_imports)]
pub use registry::{Registry, http_get};

/// The shared fixtures: `../shared/fixtures` beside the checkout, or `$DAVIT_FIXTURES` (for a
/// worktree that lives elsewhere).
pub fn fixtures() -> PathBuf {
    std::env::var_os("DAVIT_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"))
}

/// A test that needs Docker, the registry or debootstrap: with CI=true a missing component
/// fails the test; elsewhere the test is skipped with the reason printed.
pub fn require(component: &str, available: bool) -> bool {
    if available {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{component} is required in CI (CI=true) but is not available");
    }
    eprintln!("SKIP: {component} is not available (set CI=true to make this a failure)");
    false
}

pub fn docker_available() -> bool {
    Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn has_program(p: &str) -> bool {
    which::which(p).is_ok()
}

/// The binary with the runner environment scrubbed, so tests behave the same on a laptop and
/// inside GitHub Actions.
pub fn davit_image() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_davit-image"));
    for (k, _) in std::env::vars() {
        if k.starts_with("GITHUB_")
            || k.starts_with("RUNNER_")
            || k.starts_with("INPUT_")
            || k.starts_with("DAVIT_")
            || k == "CI"
        {
            c.env_remove(k);
        }
    }
    c.env("GITHUB_SHA", "860c1904a1ce19322e91ac35af1ab07466440c37")
        .env("GITHUB_REF", "refs/heads/main")
        .env("DAVIT_DEFAULT_BRANCH", "main");
    c
}

pub fn sh(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub const DEBIAN_IMAGE: &str = "davit-test/debian-minbase:bookworm";

/// The Debian mirror apt uses here (deb822 `URIs:` or one-line `deb` sources).
fn debian_mirror() -> String {
    let mut texts = vec![std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default()];
    if let Ok(rd) = std::fs::read_dir("/etc/apt/sources.list.d") {
        for e in rd.flatten() {
            texts.push(std::fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
    for t in &texts {
        for line in t.lines() {
            let l = line.trim();
            let url = l.strip_prefix("URIs:").map(str::trim).or_else(|| {
                l.strip_prefix("deb ")
                    .and_then(|r| r.split_whitespace().find(|w| w.starts_with("http")))
            });
            if let Some(u) = url.and_then(|u| u.split_whitespace().next())
                && u.contains("debian")
                && !u.contains("security")
            {
                return u.to_string();
            }
        }
    }
    "http://deb.debian.org/debian".to_string()
}

/// Ensure the debootstrap minbase image exists (built once, a few minutes, then reused).
/// Returns false (skipped) when it cannot be built outside CI.
pub fn debian_image() -> bool {
    if !require("docker", docker_available()) {
        return false;
    }
    let present = Command::new("docker")
        .args(["image", "inspect", DEBIAN_IMAGE])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if present {
        return true;
    }
    if !require("debootstrap", has_program("debootstrap")) {
        return false;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("rootfs");
    let mirror = debian_mirror();
    eprintln!("building {DEBIAN_IMAGE} with debootstrap from {mirror} (a few minutes, once)");
    sh(Command::new("debootstrap")
        .args(["--variant=minbase", "bookworm"])
        .arg(&root)
        .arg(&mirror));
    // Downloaded .debs and apt lists are not part of a minimal image.
    for d in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        if let Ok(rd) = std::fs::read_dir(root.join(d)) {
            for e in rd.flatten() {
                if e.path().is_file() {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
    let tar = dir.path().join("rootfs.tar");
    sh(Command::new("tar")
        .arg("-C")
        .arg(&root)
        .args(["--numeric-owner", "-cf"])
        .arg(&tar)
        .arg("."));
    sh(Command::new("docker")
        .args(["import", "--change", "CMD [\"/bin/bash\"]"])
        .arg(&tar)
        .arg(DEBIAN_IMAGE));
    true
}

/// A FROM-scratch build context with a static binary and a few language lockfiles.
pub fn scratch_context(dir: &Path, lodash: &str) -> bool {
    if !require("gcc (static)", has_program("gcc")) {
        return false;
    }
    std::fs::write(
        dir.join("hello.c"),
        "#include <stdio.h>\nint main(void){puts(\"hello from davit\");return 0;}\n",
    )
    .unwrap();
    let ok = Command::new("gcc")
        .args(["-static", "-Os", "-o"])
        .arg(dir.join("hello"))
        .arg(dir.join("hello.c"))
        .status()
        .is_ok_and(|s| s.success());
    if !require("gcc -static (libc6-dev)", ok) {
        return false;
    }
    std::fs::create_dir_all(dir.join("app")).unwrap();
    std::fs::write(
        dir.join("app/package-lock.json"),
        format!(r#"{{"name":"web","lockfileVersion":3,"packages":{{"":{{"name":"web"}},"node_modules/lodash":{{"version":"{lodash}"}}}}}}"#),
    )
    .unwrap();
    std::fs::write(
        dir.join("app/Cargo.lock"),
        "version = 3\n\n[[package]]\nname = \"smallvec\"\nversion = \"1.13.2\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM scratch AS base\nCOPY hello /hello\nFROM base AS runtime\nARG GREETING=hi\nCOPY app /app\nENTRYPOINT [\"/hello\"]\n",
    )
    .unwrap();
    true
}

/// A minimal docker-save archive of a FROM-scratch image with one npm lockfile (lodash
/// 4.17.20, which the shared OSV fixtures rate HIGH), written into `dir`.
pub fn npm_lockfile_archive(dir: &Path) -> PathBuf {
    let layer = {
        let mut b = tar::Builder::new(Vec::new());
        let data =
            br#"{"lockfileVersion":3,"packages":{"node_modules/lodash":{"version":"4.17.20"}}}"#;
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "app/package-lock.json", &data[..])
            .unwrap();
        b.into_inner().unwrap()
    };
    use sha2::Digest;
    let diff = format!("sha256:{:x}", sha2::Sha256::digest(&layer));
    let config =
        serde_json::to_vec(&serde_json::json!({"rootfs": {"type": "layers", "diff_ids": [diff]}}))
            .unwrap();
    let manifest =
        serde_json::to_vec(&serde_json::json!([{"Config": "c.json", "Layers": ["l/layer.tar"]}]))
            .unwrap();
    let mut outer = tar::Builder::new(Vec::new());
    for (n, d) in [
        ("l/layer.tar", &layer),
        ("c.json", &config),
        ("manifest.json", &manifest),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(d.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        outer.append_data(&mut h, n, &d[..]).unwrap();
    }
    let archive = dir.join("image.tar");
    std::fs::write(&archive, outer.into_inner().unwrap()).unwrap();
    archive
}
