//! Real Docker: a FROM-scratch build, the debootstrap Debian image, and a push/pull round trip
//! through a local registry. These fail in CI (CI=true) when Docker, docker-registry,
//! debootstrap or gcc are missing, and skip with a message elsewhere.

mod common;

use common::*;
use davit_image::docker::Docker;
use davit_image::sbom::{PkgType, archive, catalog};
use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

fn outputs(path: &std::path::Path) -> Vec<(String, String)> {
    davit_gha::parse_output_file(&std::fs::read_to_string(path).unwrap_or_default())
}

fn output(outs: &[(String, String)], name: &str) -> String {
    outs.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

#[test]
fn scratch_build_gets_labels_and_an_sbom_and_secrets_never_become_build_args() {
    if !require("docker", docker_available()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    if !scratch_context(&ctx, "4.17.21") {
        return;
    }
    let out = dir.path().join("out");
    let gh_out = dir.path().join("gh-output");
    let o = davit_image()
        .args([
            "run",
            "--target",
            "runtime",
            "--build-arg",
            "GREETING=hello",
            "--images",
            "davit-test/scratch",
            "--osv-db",
        ])
        .arg(fixtures().join("osv"))
        .arg("--context")
        .arg(&ctx)
        .arg("--out-dir")
        .arg(&out)
        .env("GITHUB_OUTPUT", &gh_out)
        .env("DAVIT_TITLE", "scratch test")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    let outs = outputs(&gh_out);
    let id = output(&outs, "image-id");
    assert!(id.starts_with("sha256:"), "{outs:?}");
    assert!(output(&outs, "tags").contains("davit-test/scratch:main"));
    // The image carries the computed OCI labels and runs the static binary.
    let labels = sh(Command::new("docker").args([
        "image",
        "inspect",
        "--format",
        "{{json .Config.Labels}}",
        &id,
    ]));
    assert!(
        labels.contains("\"org.opencontainers.image.title\":\"scratch test\""),
        "{labels}"
    );
    assert!(
        labels.contains("860c1904a1ce19322e91ac35af1ab07466440c37"),
        "{labels}"
    );
    let run = sh(Command::new("docker").args(["run", "--rm", &id]));
    assert_eq!(run.trim(), "hello from davit");
    // SBOM: the lockfiles copied into the image, with their layer.
    let cdx: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("sbom.cdx.json")).unwrap()).unwrap();
    assert_eq!(cdx["bomFormat"], "CycloneDX");
    assert_eq!(cdx["specVersion"], "1.5");
    let purls: BTreeSet<String> = cdx["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["purl"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        purls,
        BTreeSet::from([
            "pkg:cargo/smallvec@1.13.2".to_string(),
            "pkg:npm/lodash@4.17.21".to_string()
        ])
    );
    for c in cdx["components"].as_array().unwrap() {
        let props = c["properties"].as_array().unwrap();
        assert!(
            props
                .iter()
                .any(|p| p["name"] == "davit:layer:index" && p["value"] == "1"),
            "{c}"
        );
    }
    let spdx: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("sbom.spdx.json")).unwrap())
            .unwrap();
    assert_eq!(spdx["spdxVersion"], "SPDX-2.3");
    assert_eq!(spdx["packages"].as_array().unwrap().len(), 3);
    let sarif: serde_sarif::sarif::Sarif =
        serde_json::from_str(&std::fs::read_to_string(out.join("scan.sarif")).unwrap())
            .expect("SARIF 2.1.0 shape");
    assert_eq!(sarif.runs.len(), 1);

    // A build secret without BuildKit is refused (exit 2), never turned into a build arg.
    let docker = Docker::locate().unwrap();
    if docker.builder() == davit_image::docker::Builder::Classic {
        let o = davit_image()
            .args(["run", "--osv-db"])
            .arg(fixtures().join("osv"))
            .arg("--context")
            .arg(&ctx)
            .arg("--out-dir")
            .arg(&out)
            .env("DAVIT_BUILD_SECRETS", "npmrc=canary-secret-value-42")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("need BuildKit") && stderr.contains("hint:"),
            "{stderr}"
        );
        assert!(!stderr.contains("canary-secret-value-42"), "{stderr}");
    }
}

#[test]
fn debian_minbase_sbom_lists_every_package_dpkg_query_lists() {
    if !debian_image() {
        return;
    }
    let docker = Docker::locate().unwrap();
    let id = docker.image_id(DEBIAN_IMAGE).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("image.tar");
    docker.save(&id, &tar).unwrap();
    let files = archive::read(&tar, &catalog::wanted).unwrap();
    let inv = catalog::inventory(&files);
    assert_eq!(inv.image_id, id, "the archive is the image that was named");
    assert_eq!(
        inv.distro
            .as_ref()
            .and_then(|d| d.osv_ecosystem())
            .as_deref(),
        Some("Debian:12")
    );
    let listed = sh(Command::new("docker").args([
        "run",
        "--rm",
        "--network",
        "none",
        &id,
        "dpkg-query",
        "-W",
        "-f",
        "${Package} ${Version} ${Architecture}\\n",
    ]));
    let want: BTreeSet<String> = listed
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    let got: BTreeSet<String> = inv
        .components
        .iter()
        .filter(|c| c.kind == PkgType::Deb)
        .map(|c| {
            format!(
                "{} {} {}",
                c.name,
                c.version,
                c.arch.clone().unwrap_or_default()
            )
        })
        .collect();
    assert!(want.len() > 50, "dpkg-query listed only {}", want.len());
    assert_eq!(got, want);
    for c in &inv.components {
        assert!(
            c.purl.starts_with("pkg:deb/debian/") && c.purl.contains("distro=debian-12"),
            "{}",
            c.purl
        );
        assert_eq!(c.layer.as_deref(), Some(inv.layers[0].as_str()));
    }
}

/// Push and pull through a local registry; the pushed digest is the scanned image (its
/// manifest's config is the image ID). With T09 (no password in any process's argv) and T10
/// (no credential file left behind).
#[test]
fn registry_round_trip_pushes_exactly_the_scanned_image() {
    if !require("docker", docker_available()) {
        return;
    }
    let Some(reg) = Registry::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    if !scratch_context(&ctx, "4.17.21") {
        return;
    }
    let tmp = dir.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let gh_out = dir.path().join("gh-output");
    let repo = format!("{}/davit-test/roundtrip", reg.addr);
    const CANARY: &str = "canary-Pa55w0rd-7d1f";

    // T09: watch every process's argv while the push runs.
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (stop, seen) = (stop.clone(), seen.clone());
        std::thread::spawn(move || {
            let mut samples = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if let Ok(rd) = std::fs::read_dir("/proc") {
                    for e in rd.flatten() {
                        if let Ok(b) = std::fs::read(e.path().join("cmdline"))
                            && b.windows(CANARY.len()).any(|w| w == CANARY.as_bytes())
                        {
                            seen.store(true, Ordering::Relaxed);
                        }
                    }
                }
                samples += 1;
            }
            samples
        })
    };
    let o = davit_image()
        .args([
            "run",
            "--push",
            "--registry-username",
            "davit-bot",
            "--images",
            &repo,
            "--osv-db",
        ])
        .arg(fixtures().join("osv"))
        .arg("--context")
        .arg(&ctx)
        .arg("--out-dir")
        .arg(dir.path().join("out"))
        .env("DAVIT_REGISTRY_PASSWORD", CANARY)
        .env("TMPDIR", &tmp)
        .env("GITHUB_OUTPUT", &gh_out)
        .output()
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    let samples = watcher.join().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(samples > 0);
    assert!(
        !seen.load(Ordering::Relaxed),
        "the registry password appeared in a process's argv"
    );
    // T08-style: the password is in no log, output or report.
    assert!(!stderr.contains(CANARY) && !stdout.contains(CANARY));
    for f in walk(dir.path()) {
        let b = std::fs::read(&f).unwrap_or_default();
        assert!(
            !b.windows(CANARY.len()).any(|w| w == CANARY.as_bytes()),
            "password in {}",
            f.display()
        );
    }
    // T10: the temporary DOCKER_CONFIG is gone.
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        left.iter()
            .all(|n| !n.to_string_lossy().starts_with("davit-docker-config")),
        "left behind: {left:?}"
    );
    assert!(stderr.contains("--password-stdin"), "{stderr}");

    let outs = outputs(&gh_out);
    let image_id = output(&outs, "image-id");
    let digest = output(&outs, "digest");
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{outs:?}"
    );
    assert_eq!(output(&outs, "repo-digests"), format!("{repo}@{digest}"));

    // The registry serves that manifest under every tag, and its config is the scanned image.
    let (status, tags) = http_get(&reg.addr, "/v2/davit-test/roundtrip/tags/list").unwrap();
    assert_eq!(status, 200);
    for t in ["main", "latest", "sha-860c190"] {
        assert!(tags.contains(&format!("\"{t}\"")), "{tags}");
    }
    // Pull it back by digest after forgetting the local copy: same image ID.
    for r in output(&outs, "tags").lines() {
        let _ = Command::new("docker").args(["rmi", r]).output();
    }
    let by_digest = format!("{repo}@{digest}");
    sh(Command::new("docker").args(["pull", &by_digest]));
    let pulled =
        sh(Command::new("docker").args(["image", "inspect", "--format", "{{.Id}}", &by_digest]));
    assert_eq!(pulled.trim(), image_id);
    let _ = Command::new("docker").args(["rmi", &by_digest]).output();
}

#[test]
fn rejected_image_is_not_pushed() {
    if !require("docker", docker_available()) {
        return;
    }
    let Some(reg) = Registry::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    // lodash 4.17.20 has a HIGH advisory with a fix.
    if !scratch_context(&ctx, "4.17.20") {
        return;
    }
    let repo = format!("{}/davit-test/rejected", reg.addr);
    let o = davit_image()
        .args(["run", "--push", "--images", &repo, "--osv-db"])
        .arg(fixtures().join("osv"))
        .arg("--context")
        .arg(&ctx)
        .arg("--out-dir")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    let md = std::fs::read_to_string(dir.path().join("out/summary.md")).unwrap();
    assert!(
        md.contains("GHSA-35jh-r3h4-6jhm") && md.contains("4.17.21") && md.contains("Not pushed"),
        "{md}"
    );
    let (status, _) = http_get(&reg.addr, "/v2/davit-test/rejected/tags/list").unwrap();
    assert_eq!(status, 404, "nothing may be pushed after a rejection");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
