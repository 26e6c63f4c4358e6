//! Catalogers: package databases in the image's filesystem -> components.
//!
//! Each cataloger reads the same files its package manager reads (dpkg's `status`, apk's
//! `installed`, the `METADATA` Python installers write, npm's lockfile and installed
//! `package.json`s, Cargo.lock), so the inventory lists what is installed, not what a manifest
//! asked for. OS packages are attributed to the first layer from which their exact version has
//! been present ever since: the status file is rewritten by every layer that installs anything,
//! so "the layer that last wrote the file" would blame the top layer for the whole base image.

use super::archive::{FileVersion, ImageFiles};
use super::{Component, Distro, Inventory, PkgType, purl};
use std::collections::{BTreeMap, BTreeSet};

const DPKG_STATUS: &str = "var/lib/dpkg/status";
const DPKG_STATUS_D: &str = "var/lib/dpkg/status.d/";
const APK_INSTALLED: &str = "lib/apk/db/installed";

/// The paths the catalogers read; passed to [`super::archive::read`].
pub fn wanted(path: &str) -> bool {
    let base = path.rsplit('/').next().unwrap_or(path);
    match base {
        "os-release" => path == "etc/os-release" || path == "usr/lib/os-release",
        "status" => path == DPKG_STATUS,
        "installed" => path == APK_INSTALLED,
        "METADATA" => parent(path).is_some_and(|p| p.ends_with(".dist-info")),
        "PKG-INFO" => parent(path).is_some_and(|p| p.ends_with(".egg-info")),
        "package-lock.json" => !path.contains("node_modules/"),
        "package.json" => node_module_package(path).is_some(),
        "Cargo.lock" => true,
        _ => path.starts_with(DPKG_STATUS_D) || base.ends_with(".egg-info"),
    }
}

fn parent(path: &str) -> Option<&str> {
    path.rsplit_once('/').map(|(d, _)| d)
}

/// `.../node_modules/<name>/package.json` or `.../node_modules/@scope/<name>/package.json`.
fn node_module_package(path: &str) -> Option<&str> {
    let (_, tail) = path.rsplit_once("node_modules/")?;
    let segs: Vec<&str> = tail.split('/').collect();
    match segs.as_slice() {
        [_, "package.json"] => Some(tail),
        [scope, _, "package.json"] if scope.starts_with('@') => Some(tail),
        _ => None,
    }
}

/// Build the inventory from the kept files.
pub fn inventory(files: &ImageFiles) -> Inventory {
    let distro = ["etc/os-release", "usr/lib/os-release"]
        .iter()
        .find_map(|p| files.current(p))
        .and_then(|f| Distro::parse(&String::from_utf8_lossy(&f.data)));
    let mut comps = Vec::new();
    let layer_of = |i: usize| files.layers.get(i).cloned();
    let ctx = Ctx {
        distro: distro.as_ref(),
    };
    for (path, versions) in &files.files {
        let Some(cur) = versions.last() else { continue };
        let text = String::from_utf8_lossy(&cur.data);
        let abs = format!("/{path}");
        if path == DPKG_STATUS || path.starts_with(DPKG_STATUS_D) {
            for (p, since) in with_history(versions, parse_dpkg) {
                comps.push(ctx.os_package(PkgType::Deb, "debian", p, since, &layer_of, &abs));
            }
        } else if path == APK_INSTALLED {
            for (p, since) in with_history(versions, parse_apk) {
                comps.push(ctx.os_package(PkgType::Apk, "alpine", p, since, &layer_of, &abs));
            }
        } else if path.ends_with("/METADATA")
            || path.ends_with("PKG-INFO")
            || path.ends_with(".egg-info")
        {
            if let Some(p) = parse_python(&text) {
                comps.push(lang(PkgType::Pypi, p, cur.layer, &layer_of, &abs));
            }
        } else if path.ends_with("package-lock.json") {
            for p in parse_package_lock(&text) {
                comps.push(lang(PkgType::Npm, p, cur.layer, &layer_of, &abs));
            }
        } else if path.ends_with("package.json") {
            if let Some(p) = parse_package_json(&text) {
                comps.push(lang(PkgType::Npm, p, cur.layer, &layer_of, &abs));
            }
        } else if path.ends_with("Cargo.lock") {
            for p in parse_cargo_lock(&text) {
                comps.push(lang(PkgType::Cargo, p, cur.layer, &layer_of, &abs));
            }
        }
    }
    // One entry per package version and architecture; the first location (by path) wins.
    let mut seen = BTreeSet::new();
    comps.retain(|c| {
        seen.insert((
            c.kind,
            c.name.clone(),
            c.version.clone(),
            c.arch.clone().unwrap_or_default(),
        ))
    });
    comps.sort_by(|a, b| {
        (a.kind, &a.name, &a.version, &a.arch).cmp(&(b.kind, &b.name, &b.version, &b.arch))
    });
    Inventory {
        image_id: files.image_id.clone(),
        distro,
        layers: files.layers.clone(),
        components: comps,
    }
}

/// A parsed package record before it becomes a component.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pkg {
    pub name: String,
    pub version: String,
    pub arch: Option<String>,
    pub source_name: Option<String>,
    pub source_version: Option<String>,
    pub licenses: Vec<String>,
}

struct Ctx<'a> {
    distro: Option<&'a Distro>,
}

impl Ctx<'_> {
    fn os_qualifiers(&self, arch: &Option<String>) -> Vec<(&'static str, String)> {
        let mut q = vec![("arch", arch.clone().unwrap_or_default())];
        if let Some(d) = self.distro.and_then(Distro::purl_qualifier) {
            q.push(("distro", d));
        }
        q
    }
    /// An OS package (dpkg or apk) as a component; the purl namespace is the image's distro,
    /// or `default_ns` when the release file was not found.
    fn os_package(
        &self,
        kind: PkgType,
        default_ns: &str,
        p: Pkg,
        since: usize,
        layer_of: &dyn Fn(usize) -> Option<String>,
        path: &str,
    ) -> Component {
        let ns = self
            .distro
            .map_or(default_ns, |d| d.id.as_str())
            .to_string();
        let q = self.os_qualifiers(&p.arch);
        Component {
            kind,
            purl: purl(kind, Some(&ns), &p.name, &p.version, &q),
            name: p.name,
            version: p.version,
            layer: layer_of(since),
            layer_index: Some(since),
            path: path.to_string(),
            source_name: p.source_name,
            source_version: p.source_version,
            arch: p.arch,
            licenses: p.licenses,
        }
    }
}

fn lang(
    kind: PkgType,
    p: Pkg,
    layer: usize,
    layer_of: &dyn Fn(usize) -> Option<String>,
    path: &str,
) -> Component {
    Component {
        kind,
        purl: purl(kind, None, &p.name, &p.version, &[]),
        name: p.name,
        version: p.version,
        layer: layer_of(layer),
        layer_index: Some(layer),
        path: path.to_string(),
        source_name: None,
        source_version: None,
        arch: None,
        licenses: p.licenses,
    }
}

/// Parse every version of a database file and attribute each current package to the first
/// layer since which it has been present with the same version.
fn with_history(versions: &[FileVersion], parse: fn(&str) -> Vec<Pkg>) -> Vec<(Pkg, usize)> {
    let mut since: BTreeMap<(String, Option<String>), (String, usize)> = BTreeMap::new();
    let mut last = Vec::new();
    for v in versions {
        let pkgs = parse(&String::from_utf8_lossy(&v.data));
        let mut next = BTreeMap::new();
        for p in &pkgs {
            let key = (p.name.clone(), p.arch.clone());
            let layer = match since.get(&key) {
                Some((ver, l)) if *ver == p.version => *l,
                _ => v.layer,
            };
            next.insert(key, (p.version.clone(), layer));
        }
        since = next;
        last = pkgs;
    }
    last.into_iter()
        .map(|p| {
            let l = since
                .get(&(p.name.clone(), p.arch.clone()))
                .map_or(0, |(_, l)| *l);
            (p, l)
        })
        .collect()
}

/// Deb822 paragraphs: `Field: value` with indented continuation lines.
fn paragraphs(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut out = Vec::new();
    let mut cur: BTreeMap<String, String> = BTreeMap::new();
    let mut last_key: Option<String> = None;
    for line in text.lines() {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            last_key = None;
        } else if line.starts_with([' ', '\t']) {
            if let Some(k) = &last_key
                && let Some(v) = cur.get_mut(k)
            {
                v.push('\n');
                v.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            cur.insert(k.trim().to_string(), v.trim().to_string());
            last_key = Some(k.trim().to_string());
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// dpkg status: installed packages (not `not-installed` or `config-files`), as
/// `dpkg-query -W` lists them.
pub fn parse_dpkg(text: &str) -> Vec<Pkg> {
    let mut out = Vec::new();
    for p in paragraphs(text) {
        let (Some(name), Some(version)) = (p.get("Package"), p.get("Version")) else {
            continue;
        };
        let state = p
            .get("Status")
            .and_then(|s| s.split_whitespace().nth(2))
            .unwrap_or("installed");
        if state == "not-installed" || state == "config-files" {
            continue;
        }
        let (source_name, source_version) = match p.get("Source") {
            Some(s) => match s.split_once(' ') {
                Some((n, v)) => (
                    n.to_string(),
                    v.trim()
                        .trim_start_matches('(')
                        .trim_end_matches(')')
                        .to_string(),
                ),
                None => (s.to_string(), version.clone()),
            },
            None => (name.clone(), version.clone()),
        };
        out.push(Pkg {
            name: name.clone(),
            version: version.clone(),
            arch: p.get("Architecture").cloned(),
            source_name: Some(source_name),
            source_version: Some(source_version),
            licenses: Vec::new(),
        });
    }
    out
}

/// apk's installed database: `P:` name, `V:` version, `A:` arch, `o:` origin, `L:` license.
pub fn parse_apk(text: &str) -> Vec<Pkg> {
    let mut out = Vec::new();
    let mut cur = Pkg::default();
    let flush = |cur: &mut Pkg, out: &mut Vec<Pkg>| {
        let p = std::mem::take(cur);
        if !p.name.is_empty() && !p.version.is_empty() {
            out.push(p);
        }
    };
    for line in text.lines() {
        if line.trim().is_empty() {
            flush(&mut cur, &mut out);
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        match k {
            "P" => cur.name = v.to_string(),
            "V" => {
                cur.version = v.to_string();
                cur.source_version = Some(v.to_string());
            }
            "A" => cur.arch = Some(v.to_string()),
            "o" => cur.source_name = Some(v.to_string()),
            "L" => cur.licenses = vec![v.to_string()],
            _ => {}
        }
    }
    flush(&mut cur, &mut out);
    for p in &mut out {
        if p.source_name.is_none() {
            p.source_name = Some(p.name.clone());
        }
    }
    out
}

/// Core metadata (`METADATA`, `PKG-INFO`): RFC 822 headers up to the first blank line.
pub fn parse_python(text: &str) -> Option<Pkg> {
    let mut p = Pkg::default();
    for line in text.lines() {
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            let v = v.trim();
            match k {
                "Name" => p.name = v.to_string(),
                "Version" => p.version = v.to_string(),
                "License-Expression" => p.licenses = vec![v.to_string()],
                "License"
                    if p.licenses.is_empty() && !v.is_empty() && v.len() < 80 && v != "UNKNOWN" =>
                {
                    p.licenses = vec![v.to_string()]
                }
                _ => {}
            }
        }
    }
    (!p.name.is_empty() && !p.version.is_empty()).then_some(p)
}

/// npm lockfile v1 (`dependencies`, nested) and v2/v3 (`packages` keyed by install path).
pub fn parse_package_lock(text: &str) -> Vec<Pkg> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(pkgs) = v.get("packages").and_then(|p| p.as_object()) {
        for (key, p) in pkgs {
            let Some((_, name)) = key.rsplit_once("node_modules/") else {
                continue; // "" is the project itself; workspace folders are not dependencies
            };
            if p.get("link").and_then(|l| l.as_bool()) == Some(true) {
                continue;
            }
            let name = p.get("name").and_then(|n| n.as_str()).unwrap_or(name);
            if let Some(ver) = p.get("version").and_then(|x| x.as_str()) {
                out.push(npm_pkg(name, ver, p));
            }
        }
    } else if let Some(deps) = v.get("dependencies").and_then(|d| d.as_object()) {
        fn walk(deps: &serde_json::Map<String, serde_json::Value>, out: &mut Vec<Pkg>) {
            for (name, d) in deps {
                if let Some(ver) = d.get("version").and_then(|x| x.as_str())
                    && !ver.starts_with("file:")
                {
                    out.push(npm_pkg(name, ver, d));
                }
                if let Some(sub) = d.get("dependencies").and_then(|x| x.as_object()) {
                    walk(sub, out);
                }
            }
        }
        walk(deps, &mut out);
    }
    out
}

fn npm_pkg(name: &str, version: &str, v: &serde_json::Value) -> Pkg {
    Pkg {
        name: name.to_string(),
        version: version.to_string(),
        licenses: v
            .get("license")
            .and_then(|l| l.as_str())
            .map(|l| vec![l.to_string()])
            .unwrap_or_default(),
        ..Pkg::default()
    }
}

/// An installed package's own `package.json`.
pub fn parse_package_json(text: &str) -> Option<Pkg> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let name = v.get("name")?.as_str()?;
    let ver = v.get("version")?.as_str()?;
    Some(npm_pkg(name, ver, &v))
}

/// Cargo.lock `[[package]]` entries.
pub fn parse_cargo_lock(text: &str) -> Vec<Pkg> {
    #[derive(serde::Deserialize)]
    struct Lock {
        #[serde(default)]
        package: Vec<LockPkg>,
    }
    #[derive(serde::Deserialize)]
    struct LockPkg {
        name: String,
        version: String,
    }
    toml::from_str::<Lock>(text)
        .map(|l| {
            l.package
                .into_iter()
                .map(|p| Pkg {
                    name: p.name,
                    version: p.version,
                    ..Pkg::default()
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sbom::archive;

    const STATUS_1: &str = "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc\nVersion: 2.36-9+deb12u4\nDescription: GNU C Library\n continued line\n\nPackage: old\nStatus: purge ok not-installed\nVersion: 1\n\nPackage: cfg\nStatus: deinstall ok config-files\nVersion: 2\n\nPackage: libssl3\nStatus: install ok installed\nArchitecture: amd64\nSource: openssl (3.0.11-1~deb12u2)\nVersion: 3.0.11-1~deb12u2+b1\n";

    #[test]
    fn dpkg_status_lists_installed_packages_with_source() {
        let p = parse_dpkg(STATUS_1);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].source_name.as_deref(), Some("glibc"));
        assert_eq!(p[0].source_version.as_deref(), Some("2.36-9+deb12u4"));
        assert_eq!(p[1].source_name.as_deref(), Some("openssl"));
        assert_eq!(p[1].source_version.as_deref(), Some("3.0.11-1~deb12u2"));
    }

    #[test]
    fn every_ecosystem_is_read_and_attributed_to_its_layer() {
        let dir = tempfile::tempdir().unwrap();
        let status2 = format!(
            "{STATUS_1}\nPackage: curl\nStatus: install ok installed\nArchitecture: amd64\nVersion: 7.88.1-10\n"
        );
        let lock = r#"{"lockfileVersion":3,"packages":{"":{"name":"app"},"node_modules/lodash":{"version":"4.17.20"},"node_modules/@hapi/hoek":{"version":"8.5.0"},"node_modules/a/node_modules/lodash":{"version":"4.17.21"},"lib/x":{"link":true}}}"#;
        let img = archive::tests::fake_image(
            dir.path(),
            &[
                vec![
                    ("etc/os-release", Some("ID=debian\nVERSION_ID=\"12\"\n")),
                    ("var/lib/dpkg/status", Some(STATUS_1)),
                ],
                vec![
                    ("var/lib/dpkg/status", Some(status2.as_str())),
                    (
                        "usr/lib/python3/dist-packages/py-1.11.0.dist-info/METADATA",
                        Some(
                            "Metadata-Version: 2.1\nName: py\nVersion: 1.11.0\nLicense: MIT\n\nbody: x\n",
                        ),
                    ),
                    ("app/package-lock.json", Some(lock)),
                    (
                        "app/node_modules/ansi-html/package.json",
                        Some(r#"{"name":"ansi-html","version":"0.0.7"}"#),
                    ),
                    (
                        "app/node_modules/ansi-html/lib/package.json",
                        Some(r#"{"type":"module"}"#),
                    ),
                    (
                        "srv/Cargo.lock",
                        Some(
                            "version = 3\n[[package]]\nname = \"smallvec\"\nversion = \"1.6.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n",
                        ),
                    ),
                    (
                        "lib/apk/db/installed",
                        Some("C:Q1\nP:musl\nV:1.2.4-r2\nA:x86_64\no:musl\nL:MIT\n\n"),
                    ),
                ],
            ],
        );
        let files = archive::read(&img, &wanted).unwrap();
        let inv = inventory(&files);
        let got: Vec<String> = inv
            .components
            .iter()
            .map(|c| format!("{} {} layer{}", c.purl, c.path, c.layer_index.unwrap()))
            .collect();
        insta::assert_yaml_snapshot!(got);
        assert_eq!(
            inv.distro.unwrap().osv_ecosystem().as_deref(),
            Some("Debian:12")
        );
    }
}
