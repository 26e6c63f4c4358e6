//! OSV matching against the shared fixtures, Trivy normalization, and T35 at the binary level.

mod common;

use common::{davit_image, fixtures};
use davit_image::finding::{ScanOutcome, Severity};
use davit_image::osv::OsvDb;
use davit_image::policy::{Policy, Verdict};
use davit_image::sbom::{Component, Distro, Inventory, PkgType};

fn comp(kind: PkgType, name: &str, version: &str) -> Component {
    Component {
        kind,
        name: name.into(),
        version: version.into(),
        purl: format!("pkg:{}/{name}@{version}", kind.purl_type()),
        layer: Some("sha256:l0".into()),
        layer_index: Some(0),
        path: "/x".into(),
        source_name: None,
        source_version: None,
        arch: None,
        licenses: vec![],
    }
}

/// (package, version, expected (advisory id, fixed version) pairs).
type Case<'a> = (&'a str, &'a str, &'a [(&'a str, Option<&'a str>)]);

/// Expected pairs were read off the fixture records by hand.
fn check(db: &OsvDb, distro: Option<&str>, kind: PkgType, cases: &[Case<'_>]) {
    for (name, version, want) in cases {
        let c = comp(kind, name, version);
        let m = db.match_component(&c, distro);
        let mut got: Vec<(String, Option<String>)> = m
            .findings
            .iter()
            .map(|f| (f.id.clone(), f.fixed_version.clone()))
            .collect();
        got.sort();
        let mut want: Vec<(String, Option<String>)> = want
            .iter()
            .map(|(i, f)| (i.to_string(), f.map(str::to_string)))
            .collect();
        want.sort();
        assert_eq!(got, want, "{kind:?} {name} {version}");
        assert!(m.warnings.is_empty(), "{name} {version}: {:?}", m.warnings);
    }
}

fn db() -> OsvDb {
    OsvDb::load(&fixtures().join("osv")).expect("fixture OSV database loads")
}

#[test]
fn osv_fixture_database_loads_every_record() {
    assert_eq!(db().len(), 30);
}

#[test]
fn pypi_pep440_ranges_last_affected_and_withdrawn() {
    check(
        &db(),
        None,
        PkgType::Pypi,
        &[
            ("Django", "1.8b1", &[("PYSEC-2015-18", Some("1.8c1"))]),
            ("django", "1.8", &[]),
            ("django", "1.7.6", &[("PYSEC-2015-18", Some("1.7.7"))]),
            ("django", "4.1.9", &[("PYSEC-2023-100", Some("4.1.10"))]),
            ("django", "4.2.2", &[("PYSEC-2023-100", Some("4.2.3"))]),
            ("django", "3.2.20", &[]),
            ("py", "1.11.0", &[("PYSEC-2022-42969", None)]),
            ("py", "1.11.1", &[]),
            // 1.6.5 is before 1.6.5.post1 in PEP 440.
            ("Beaker", "1.6.5", &[("PYSEC-2012-1", Some("1.6.5.post1"))]),
            ("beaker", "1.6.5.post1", &[]),
            (
                "marshmallow",
                "3.0.0b8",
                &[("PYSEC-2018-67", Some("3.0.0b9"))],
            ),
            (
                "marshmallow",
                "2.15.0",
                &[("PYSEC-2018-67", Some("2.15.1"))],
            ),
            ("marshmallow", "3.0.0", &[]),
            (
                "ceilometer",
                "11.0.1",
                &[("PYSEC-2019-78", Some("12.0.0.0rc1"))],
            ),
            ("ceilometer", "12.0.0.0rc1", &[]),
            (
                "duckdb",
                "0.9.3.dev5",
                &[("PYSEC-2024-25", Some("0.9.3.dev6"))],
            ),
            ("duckdb", "0.9.3.dev6", &[]),
            // Withdrawn advisories never match.
            ("flask_caching", "1.10.1", &[]),
            ("loguru", "0.5.3", &[]),
        ],
    );
}

#[test]
fn crates_semver_prereleases_and_multiple_ranges() {
    check(
        &db(),
        None,
        PkgType::Cargo,
        &[
            ("smallvec", "1.6.0", &[("RUSTSEC-2021-0003", Some("1.6.1"))]),
            ("smallvec", "0.6.2", &[]),
            ("smallvec", "1.6.1", &[]),
            (
                "lettre",
                "0.10.0-rc.2",
                &[("RUSTSEC-2021-0069", Some("0.10.0-rc.3"))],
            ),
            ("lettre", "0.10.0", &[]),
            ("lettre", "0.9.5", &[("RUSTSEC-2021-0069", Some("0.9.6"))]),
            (
                "axum-core",
                "0.3.0-rc.1",
                &[("RUSTSEC-2022-0055", Some("0.3.0-rc.2"))],
            ),
            ("axum-core", "0.2.8", &[]),
            ("time", "0.1.44", &[("RUSTSEC-2020-0071", Some("0.2.0"))]),
            ("time", "0.2.22", &[("RUSTSEC-2020-0071", Some("0.2.23"))]),
            ("time", "0.2.23", &[]),
            (
                "serde_yaml",
                "0.7.0",
                &[("RUSTSEC-2018-0005", Some("0.8.4"))],
            ),
            ("plutonium", "0.5.0", &[("RUSTSEC-2020-0011", None)]),
            ("libusb", "0.3.0", &[("RUSTSEC-2016-0004", Some("0.3.1-0"))]),
            ("spin", "0.0.0", &[]),
        ],
    );
}

#[test]
fn npm_scoped_names_and_one_advisory_over_several_ecosystems() {
    check(
        &db(),
        None,
        PkgType::Npm,
        &[
            (
                "@hapi/hoek",
                "8.5.0",
                &[("GHSA-22h7-7wwg-qmgg", Some("8.5.1"))],
            ),
            (
                "@hapi/hoek",
                "9.0.2",
                &[("GHSA-22h7-7wwg-qmgg", Some("9.0.3"))],
            ),
            ("@hapi/hoek", "9.0.3", &[]),
            ("@hapi/hoek", "8.3.1", &[]),
            (
                "lodash",
                "4.17.20",
                &[("GHSA-35jh-r3h4-6jhm", Some("4.17.21"))],
            ),
            ("lodash", "4.17.21", &[]),
            ("lodash.template", "4.5.0", &[("GHSA-35jh-r3h4-6jhm", None)]),
            ("jquery", "1.8.3", &[("GHSA-2pqj-h3vj-pqgw", Some("1.9.0"))]),
            ("cal_rd", "1.0.0", &[("GHSA-226w-6hhj-69hp", None)]),
            (
                "ansi-html",
                "0.0.7",
                &[("GHSA-whgm-jr23-g3j9", Some("0.0.8"))],
            ),
            (
                "nginxbeautifier",
                "1.0.14",
                &[("GHSA-28xx-8j99-m32j", Some("1.0.15"))],
            ),
            (
                "emojione",
                "1.3.0",
                &[("GHSA-46m8-42hm-wvvw", Some("1.3.1"))],
            ),
            (
                "fury-adapter-swagger",
                "0.9.6",
                &[("GHSA-2r7f-4h2c-5x73", Some("0.9.7"))],
            ),
            ("fury-adapter-swagger", "0.1.0", &[]),
            (
                "@hapi/boom",
                "0.3.7",
                &[("GHSA-2ggq-vfcp-gwhj", Some("0.3.8"))],
            ),
        ],
    );
}

#[test]
fn distro_packages_match_by_source_and_release() {
    let db = db();
    let mut ssl = comp(PkgType::Deb, "libssl1.1", "1.1.0l-1~deb9u5");
    ssl.source_name = Some("openssl".into());
    ssl.source_version = Some("1.1.0l-1~deb9u5".into());
    let f = db.match_component(&ssl, Some("Debian:9")).findings;
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].id, "DLA-3008-1");
    assert_eq!(f[0].package, "libssl1.1");
    assert_eq!(f[0].fixed_version.as_deref(), Some("1.1.0l-1~deb9u6"));
    assert_eq!(f[0].severity, Severity::Unknown);
    assert!(f[0].aliases.contains(&"CVE-2022-1292".to_string()));
    // Another release's advisory does not apply.
    assert!(
        db.match_component(&ssl, Some("Debian:12"))
            .findings
            .is_empty()
    );
    ssl.source_version = Some("1.1.0l-1~deb9u6".into());
    assert!(
        db.match_component(&ssl, Some("Debian:9"))
            .findings
            .is_empty()
    );

    check(
        &db,
        Some("Debian:9"),
        PkgType::Deb,
        &[
            (
                "libxml2",
                "2.9.4+dfsg1-2.2+deb9u6",
                &[("DLA-3012-1", Some("2.9.4+dfsg1-2.2+deb9u7"))],
            ),
            ("libxml2", "2.9.4+dfsg1-2.2+deb9u7", &[]),
        ],
    );
    check(
        &db,
        Some("Debian:7"),
        PkgType::Deb,
        &[
            (
                "nginx",
                "1.2.1-2.2+wheezy2",
                &[("DSA-3029-1", Some("1.2.1-2.2+wheezy3"))],
            ),
            ("nginx", "1.2.1-2.2+wheezy3", &[]),
        ],
    );
    check(
        &db,
        Some("Alpine:v3.18"),
        PkgType::Apk,
        &[
            (
                "musl",
                "1.2.4-r2",
                &[("ALPINE-CVE-2025-26519", Some("1.2.4-r3"))],
            ),
            ("musl", "1.2.4-r3", &[]),
        ],
    );
    check(
        &db,
        Some("Alpine:v3.19"),
        PkgType::Apk,
        &[
            (
                "musl",
                "1.2.4_git20230717-r4",
                &[("ALPINE-CVE-2025-26519", Some("1.2.4_git20230717-r5"))],
            ),
            ("musl", "1.2.4_git20230717-r5", &[]),
        ],
    );
}

#[test]
fn severities_come_from_ghsa_rating_or_cvss() {
    let db = db();
    let sev = |kind, name: &str, v: &str| {
        db.match_component(&comp(kind, name, v), None).findings[0].severity
    };
    assert_eq!(sev(PkgType::Npm, "@hapi/hoek", "8.5.0"), Severity::Low);
    assert_eq!(sev(PkgType::Npm, "jquery", "1.8.3"), Severity::Medium); // GHSA "MODERATE"
    assert_eq!(sev(PkgType::Npm, "cal_rd", "1.0.0"), Severity::Critical);
    assert_eq!(sev(PkgType::Cargo, "smallvec", "1.6.0"), Severity::Critical); // CVSS 9.8
    assert_eq!(sev(PkgType::Cargo, "time", "0.2.22"), Severity::Medium); // CVSS 6.2
    assert_eq!(sev(PkgType::Pypi, "duckdb", "0.9.2"), Severity::Critical);
    assert_eq!(sev(PkgType::Pypi, "py", "1.0.0"), Severity::Unknown);
    let musl = db
        .match_component(
            &comp(PkgType::Apk, "musl", "1.2.4-r2"),
            Some("Alpine:v3.18"),
        )
        .findings;
    assert_eq!(musl[0].severity, Severity::High); // CVSS 7.0
}

#[test]
fn a_whole_inventory_scan_and_a_zip_database_agree() {
    let inv = Inventory {
        image_id: "sha256:x".into(),
        distro: Distro::parse("ID=debian\nVERSION_ID=9\n"),
        layers: vec!["sha256:l0".into()],
        components: vec![
            {
                let mut c = comp(PkgType::Deb, "libxml2", "2.9.4+dfsg1-2.2+deb9u6");
                c.source_name = Some("libxml2".into());
                c
            },
            comp(PkgType::Npm, "lodash", "4.17.20"),
            comp(PkgType::Pypi, "django", "4.1.9"),
            comp(PkgType::Cargo, "smallvec", "1.13.2"),
        ],
    };
    let dir = tempfile::tempdir().unwrap();
    let zip_path = dir.path().join("all.zip");
    {
        let mut w = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for e in glob::glob(&format!("{}/osv/*/*.json", fixtures().display())).unwrap() {
            let p = e.unwrap();
            w.start_file(p.file_name().unwrap().to_string_lossy(), opts)
                .unwrap();
            std::io::copy(&mut std::fs::File::open(&p).unwrap(), &mut w).unwrap();
        }
        w.finish().unwrap();
    }
    let from_zip = OsvDb::load(&zip_path).unwrap();
    assert_eq!(from_zip.len(), 30);
    let a = db().scan(&inv);
    let b = from_zip.scan(&inv);
    let ids = |o: &ScanOutcome| {
        o.findings()
            .iter()
            .map(|f| f.id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(&a),
        ["GHSA-35jh-r3h4-6jhm", "DLA-3012-1", "PYSEC-2023-100"]
    );
    assert_eq!(ids(&a), ids(&b));
}

fn trivy(name: &str) -> ScanOutcome {
    let text = std::fs::read_to_string(fixtures().join("trivy").join(name)).unwrap();
    davit_image::trivy::normalize(&text).unwrap()
}

fn counts(o: &ScanOutcome) -> Vec<(Severity, usize)> {
    let mut m = std::collections::BTreeMap::new();
    for f in o.findings() {
        *m.entry(f.severity).or_insert(0) += 1;
    }
    m.into_iter().collect()
}

#[test]
fn trivy_reports_normalize_to_the_right_counts() {
    let alpine = trivy("alpine-310.json.golden");
    assert_eq!(counts(&alpine), [(Severity::Medium, 4)]);
    assert!(
        alpine
            .findings()
            .iter()
            .all(|f| f.fixed() && f.ecosystem == "Alpine")
    );
    let f = alpine
        .findings()
        .iter()
        .find(|f| f.id == "CVE-2019-1551" && f.package == "libssl1.1")
        .unwrap();
    assert_eq!(f.fixed_version.as_deref(), Some("1.1.1d-r2"));

    let debian = trivy("debian-buster.json.golden");
    assert_eq!(
        counts(&debian),
        [(Severity::Low, 1), (Severity::Critical, 1)]
    );
    let bash = debian
        .findings()
        .iter()
        .find(|f| f.package == "bash")
        .unwrap();
    assert!(!bash.fixed());
    assert_eq!(
        bash.layer.as_deref(),
        Some("sha256:78c1b9419976227e05be9d243b7fa583bea44a5258e52018b2af4cdfe23d148d")
    );

    let pip = trivy("pip.json.golden");
    assert_eq!(counts(&pip), [(Severity::Medium, 1), (Severity::High, 1)]);
    assert!(
        pip.findings()
            .iter()
            .all(|f| f.package == "Werkzeug" && f.ecosystem == "PyPI")
    );

    // The same policy applies to normalized Trivy findings.
    let p = Policy {
        fail_on: Severity::High,
        ignore_unfixed: true,
        ignores: vec![],
        today: "2024-01-01".parse().unwrap(),
    };
    let d = p.decide(&debian);
    assert_eq!(d.verdict, Verdict::Fail);
    assert_eq!(d.blocking.len(), 1);
    assert_eq!(d.blocking[0].id, "CVE-2019-18224");
    assert!(davit_image::trivy::normalize("{not json").is_err());
}

/// T35: without a database the scan did not run: exit 3, said plainly, never "passed".
#[test]
fn t35_no_database_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let archive = common::npm_lockfile_archive(dir.path());
    let out_file = dir.path().join("gh-output");
    for db in [
        None,
        Some(dir.path().join("no-such-db")),
        Some(dir.path().to_path_buf()),
    ] {
        let mut c = davit_image();
        c.args(["run", "--scanner", "osv", "--archive"])
            .arg(&archive)
            .arg("--out-dir")
            .arg(dir.path().join("out"))
            .env("GITHUB_OUTPUT", &out_file);
        match &db {
            Some(d) => {
                c.arg("--osv-db").arg(d);
            }
            // No database and an OSV server that cannot be reached: still not a scan.
            None => {
                c.args(["--osv-url", "http://127.0.0.1:9"])
                    .arg("--osv-cache")
                    .arg(dir.path().join("cache"));
            }
        }
        let o = c.output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(3), "db {db:?}: {stderr}");
        assert!(stderr.contains("scan did not run"), "{stderr}");
        let md = std::fs::read_to_string(dir.path().join("out/summary.md")).unwrap();
        assert!(
            md.contains("scan did not run") && !md.contains("passed"),
            "{md}"
        );
        let report: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("out/report.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(report["scan"]["status"], "did_not_run");
        assert_eq!(report["decision"]["verdict"], "not_scanned");
        let sarif: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("out/scan.sarif")).unwrap(),
        )
        .unwrap();
        assert_eq!(
            sarif["runs"][0]["invocations"][0]["executionSuccessful"],
            false
        );
        let outputs = davit_gha::parse_output_file(&std::fs::read_to_string(&out_file).unwrap());
        assert!(outputs.contains(&("verdict".to_string(), "not-scanned".to_string())));
        std::fs::remove_file(&out_file).unwrap();
    }
    // With the database the same archive is scanned and rejected (lodash 4.17.20 is HIGH).
    let o = davit_image()
        .args(["run", "--osv-db"])
        .arg(fixtures().join("osv"))
        .arg("--archive")
        .arg(&archive)
        .arg("--out-dir")
        .arg(dir.path().join("out2"))
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // An ignore entry with reason and expiry lets it pass; the same entry expired does not.
    let ignore = dir.path().join("ignore.toml");
    std::fs::write(&ignore, "[[ignore]]\nid = \"CVE-2021-23337\"\nreason = \"template() is never called with user input\"\nexpires = \"2030-06-30\"\n").unwrap();
    for (today, code) in [("2030-06-30", 0), ("2030-07-01", 1)] {
        let o = davit_image()
            .args(["run", "--osv-db"])
            .arg(fixtures().join("osv"))
            .arg("--archive")
            .arg(&archive)
            .arg("--ignore-file")
            .arg(&ignore)
            .arg("--out-dir")
            .arg(dir.path().join("out3"))
            .env("DAVIT_TODAY", today)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(code), "{today}: {stderr}");
        if code == 1 {
            assert!(stderr.contains("expired on 2030-06-30"), "{stderr}");
        }
    }
}
