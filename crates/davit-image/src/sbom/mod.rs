//! The software bill of materials, read from the image itself.
//!
//! The SBOM is built from what will ship, not from the repository: the image is exported
//! (`docker save`), its layers are replayed in order with whiteouts applied ([`archive`]), and
//! the package databases left in the final filesystem are read ([`catalog`]): dpkg status, apk
//! installed, Python dist-info/egg-info, npm lockfiles and `node_modules`, Cargo.lock. Reading
//! the files directly (instead of running `dpkg-query` in a container) works for images without
//! a shell or package manager, needs no container runtime to execute anything, and attributes
//! each package to the layer that introduced it. The inventory feeds the scanner and is written
//! as CycloneDX 1.5 ([`cyclonedx`]) and SPDX 2.3 ([`spdx`]) JSON.

pub mod archive;
pub mod catalog;
pub mod cyclonedx;
pub mod spdx;

use serde::Serialize;

/// Package type, which decides the purl type, the OSV ecosystem and the version scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PkgType {
    Deb,
    Apk,
    Pypi,
    Npm,
    Cargo,
}

impl PkgType {
    pub fn is_os(self) -> bool {
        matches!(self, PkgType::Deb | PkgType::Apk)
    }
    /// The OSV ecosystem base name; OS packages use the image's release when known.
    pub fn osv_base(self, release: Option<&str>) -> &str {
        match self {
            PkgType::Deb => match release {
                Some(r) if r.starts_with("Ubuntu") => "Ubuntu",
                _ => "Debian",
            },
            PkgType::Apk => "Alpine",
            PkgType::Pypi => "PyPI",
            PkgType::Npm => "npm",
            PkgType::Cargo => "crates.io",
        }
    }
    pub fn purl_type(self) -> &'static str {
        match self {
            PkgType::Deb => "deb",
            PkgType::Apk => "apk",
            PkgType::Pypi => "pypi",
            PkgType::Npm => "npm",
            PkgType::Cargo => "cargo",
        }
    }
}

/// `/etc/os-release` of the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Distro {
    pub id: String,
    pub version_id: Option<String>,
    pub pretty_name: Option<String>,
}

impl Distro {
    pub fn parse(text: &str) -> Option<Distro> {
        let mut d = Distro::default();
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let v = v.trim().trim_matches('"').trim_matches('\'').to_string();
            match k.trim() {
                "ID" => d.id = v,
                "VERSION_ID" => d.version_id = Some(v),
                "PRETTY_NAME" => d.pretty_name = Some(v),
                _ => {}
            }
        }
        (!d.id.is_empty()).then_some(d)
    }

    /// The OSV ecosystem of this release: `Debian:12`, `Alpine:v3.20`, `Ubuntu:22.04`.
    pub fn osv_ecosystem(&self) -> Option<String> {
        let v = self.version_id.as_deref()?;
        match self.id.as_str() {
            "debian" => Some(format!("Debian:{}", v.split('.').next().unwrap_or(v))),
            "alpine" => {
                let mut parts = v.split('.');
                let (maj, min) = (parts.next()?, parts.next()?);
                Some(format!("Alpine:v{maj}.{min}"))
            }
            "ubuntu" => Some(format!("Ubuntu:{v}")),
            _ => None,
        }
    }

    /// The purl `distro` qualifier, e.g. `debian-12`.
    pub fn purl_qualifier(&self) -> Option<String> {
        Some(format!("{}-{}", self.id, self.version_id.as_deref()?))
    }
}

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Component {
    pub kind: PkgType,
    pub name: String,
    pub version: String,
    pub purl: String,
    /// Diff id of the layer that introduced this package version.
    pub layer: Option<String>,
    /// Position of that layer, 0 = base.
    pub layer_index: Option<usize>,
    /// The file inside the image that declares the package.
    pub path: String,
    /// Source package (dpkg `Source:`, apk origin) when it differs or is known.
    pub source_name: Option<String>,
    pub source_version: Option<String>,
    pub arch: Option<String>,
    pub licenses: Vec<String>,
}

/// Everything the catalogers found in an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Inventory {
    /// `sha256:...` of the image config, i.e. the image ID.
    pub image_id: String,
    pub distro: Option<Distro>,
    /// Layer diff ids, base first.
    pub layers: Vec<String>,
    pub components: Vec<Component>,
}

impl Inventory {
    pub fn count(&self, kind: PkgType) -> usize {
        self.components.iter().filter(|c| c.kind == kind).count()
    }
}

/// Percent-encode a purl name/version segment (RFC 3986 unreserved kept).
fn purl_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Build a package URL (purl spec): `pkg:type/namespace/name@version?qualifiers`.
pub fn purl(
    kind: PkgType,
    namespace: Option<&str>,
    name: &str,
    version: &str,
    qualifiers: &[(&str, String)],
) -> String {
    let mut s = format!("pkg:{}/", kind.purl_type());
    // npm scopes are the namespace: `@types/node` -> `pkg:npm/%40types/node`.
    let (ns, name) = match (kind, name.split_once('/')) {
        (PkgType::Npm, Some((scope, n))) if scope.starts_with('@') => (Some(scope), n),
        _ => (namespace, name),
    };
    if let Some(ns) = ns {
        s.push_str(&purl_escape(ns));
        s.push('/');
    }
    let name = if kind == PkgType::Pypi {
        crate::osv::normalize_name("PyPI", name)
    } else {
        name.to_string()
    };
    s.push_str(&purl_escape(&name));
    s.push('@');
    s.push_str(&purl_escape(version));
    let mut q: Vec<_> = qualifiers.iter().filter(|(_, v)| !v.is_empty()).collect();
    q.sort_by_key(|(k, _)| *k);
    for (i, (k, v)) in q.iter().enumerate() {
        s.push(if i == 0 { '?' } else { '&' });
        s.push_str(k);
        s.push('=');
        s.push_str(&purl_escape(v));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purls_follow_the_spec() {
        assert_eq!(
            purl(
                PkgType::Deb,
                Some("debian"),
                "libc6",
                "2.36-9+deb12u4",
                &[("arch", "amd64".into()), ("distro", "debian-12".into())]
            ),
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12"
        );
        assert_eq!(
            purl(PkgType::Npm, None, "@hapi/hoek", "8.5.0", &[]),
            "pkg:npm/%40hapi/hoek@8.5.0"
        );
        assert_eq!(
            purl(PkgType::Pypi, None, "Flask_Caching", "1.0", &[]),
            "pkg:pypi/flask-caching@1.0"
        );
    }

    #[test]
    fn os_release_to_osv_ecosystem() {
        let d = Distro::parse(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n",
        )
        .unwrap();
        assert_eq!(d.osv_ecosystem().as_deref(), Some("Debian:12"));
        let a = Distro::parse("ID=alpine\nVERSION_ID=3.20.3\n").unwrap();
        assert_eq!(a.osv_ecosystem().as_deref(), Some("Alpine:v3.20"));
    }
}
