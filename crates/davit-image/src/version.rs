//! Version ordering per ecosystem.
//!
//! An advisory says "affected from 1.2 until 1.4.7-1~deb9u6"; whether the installed version lies
//! in that range depends on the ecosystem's own rules. A generic "split on dots" comparison gets
//! the cases that matter wrong: `1.0~rc1` is *before* `1.0` in dpkg, `1.2.4_git2023-r5` is after
//! `1.2.4-r3` in apk, `1.8c1` is a release candidate in PEP 440 and `0.3.0-rc.1` is before
//! `0.3.0` in semver. Each comparator here follows its ecosystem's reference implementation
//! (dpkg's `verrevcmp`, apk-tools' token rules, PEP 440 through `pep440_rs` with `packaging`'s
//! legacy ordering for the PyPI versions PEP 440 rejects, SemVer 2.0 precedence with numbers of
//! any width, Maven's `ComparableVersion`, RubyGems' `Gem::Version`, Composer's normalisation
//! plus PHP's `version_compare`, NuGet's `NuGetVersion`; Go uses SemVer). A version that cannot
//! be parsed compares as `None`, and the matcher treats that as "cannot decide" (reported as
//! affected, with a warning) instead of guessing "not affected".

mod maven;
mod nuget;
mod packagist;
mod pypi_legacy;
mod rubygems;
mod semver;

use std::cmp::Ordering;
use std::str::FromStr;

/// The version scheme of a package ecosystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Debian and Ubuntu packages (`dpkg --compare-versions`).
    Dpkg,
    /// Alpine packages (`apk version -t`).
    Apk,
    /// Python packages (PEP 440).
    Pep440,
    /// crates.io, npm and Go (SemVer 2.0, with a lenient `v` prefix and missing parts).
    Semver,
    /// Maven Central (`ComparableVersion`).
    Maven,
    /// RubyGems (`Gem::Version`).
    RubyGems,
    /// Packagist (Composer).
    Packagist,
    /// NuGet (`NuGetVersion`).
    NuGet,
}

/// Compare two versions under `scheme`; `None` when either does not parse.
pub fn compare(scheme: Scheme, a: &str, b: &str) -> Option<Ordering> {
    match scheme {
        Scheme::Dpkg => dpkg::compare(a, b),
        Scheme::Apk => apk::compare(a, b),
        Scheme::Pep440 => compare_pypi(a, b),
        Scheme::Semver => semver::compare(a, b),
        Scheme::Maven => maven::compare(a, b),
        Scheme::RubyGems => rubygems::compare(a, b),
        Scheme::Packagist => packagist::compare(a, b),
        Scheme::NuGet => nuget::compare(a, b),
    }
}

/// PEP 440 when both parse; a version PEP 440 rejects is a legacy version, which `packaging`
/// sorted before every PEP 440 version.
fn compare_pypi(a: &str, b: &str) -> Option<Ordering> {
    let pa = pep440_rs::Version::from_str(a.trim()).ok();
    let pb = pep440_rs::Version::from_str(b.trim()).ok();
    match (pa, pb) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        (Some(_), None) => pypi_legacy::accepts(b).then_some(Ordering::Greater),
        (None, Some(_)) => pypi_legacy::accepts(a).then_some(Ordering::Less),
        (None, None) => {
            (pypi_legacy::accepts(a) && pypi_legacy::accepts(b)).then(|| pypi_legacy::compare(a, b))
        }
    }
}

pub mod dpkg {
    //! dpkg version comparison: `[epoch:]upstream[-revision]`, compared with `verrevcmp`.
    use std::cmp::Ordering;

    struct Parsed<'a> {
        epoch: u64,
        upstream: &'a str,
        revision: &'a str,
    }

    fn parse(v: &str) -> Option<Parsed<'_>> {
        let v = v.trim();
        if v.is_empty() || v.contains(char::is_whitespace) {
            return None;
        }
        let (epoch, rest) = match v.split_once(':') {
            Some((e, r)) => (e.parse().ok()?, r),
            None => (0, v),
        };
        let (upstream, revision) = match rest.rfind('-') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        if upstream.is_empty() || !upstream.starts_with(|c: char| c.is_ascii_digit()) {
            // dpkg warns but still compares; advisories do carry such versions rarely. Accept
            // anything non-empty so that a letter-first upstream still orders deterministically.
            if upstream.is_empty() {
                return None;
            }
        }
        Some(Parsed {
            epoch,
            upstream,
            revision,
        })
    }

    /// Weight of a non-digit character: `~` sorts before everything, even the end of the
    /// string; letters sort before other characters.
    fn order(c: Option<u8>) -> i32 {
        match c {
            None => 0,
            Some(b'~') => -1,
            Some(c) if c.is_ascii_digit() => 0,
            Some(c) if c.is_ascii_alphabetic() => c as i32,
            Some(c) => c as i32 + 256,
        }
    }

    fn verrevcmp(a: &str, b: &str) -> Ordering {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            let mut first_diff = 0i32;
            while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit())
            {
                let ac = order(a.get(i).copied());
                let bc = order(b.get(j).copied());
                if ac != bc {
                    return ac.cmp(&bc);
                }
                i += 1;
                j += 1;
            }
            while i < a.len() && a[i] == b'0' {
                i += 1;
            }
            while j < b.len() && b[j] == b'0' {
                j += 1;
            }
            while i < a.len() && a[i].is_ascii_digit() && j < b.len() && b[j].is_ascii_digit() {
                if first_diff == 0 {
                    first_diff = a[i] as i32 - b[j] as i32;
                }
                i += 1;
                j += 1;
            }
            if i < a.len() && a[i].is_ascii_digit() {
                return Ordering::Greater;
            }
            if j < b.len() && b[j].is_ascii_digit() {
                return Ordering::Less;
            }
            if first_diff != 0 {
                return first_diff.cmp(&0);
            }
        }
        Ordering::Equal
    }

    pub fn compare(a: &str, b: &str) -> Option<Ordering> {
        let (a, b) = (parse(a)?, parse(b)?);
        Some(
            a.epoch
                .cmp(&b.epoch)
                .then_with(|| verrevcmp(a.upstream, b.upstream))
                .then_with(|| verrevcmp(a.revision, b.revision)),
        )
    }
}

pub mod apk {
    //! apk-tools version comparison: `digits{.digits}[letter]{_suffix[digits]}[~hash][-rN]`.
    //!
    //! Pre-release suffixes (`_alpha`, `_beta`, `_pre`, `_rc`) sort before the bare version,
    //! post-release ones (`_cvs`, `_svn`, `_git`, `_hg`, `_p`) after it; `-rN` is the package
    //! revision and is compared last.
    use std::cmp::Ordering;

    #[derive(Debug, PartialEq, Eq)]
    struct Parsed {
        numbers: Vec<String>,
        /// A letter after the numbers, with the digits some packagers append (`1.8.28p1`).
        letter: Option<(u8, String)>,
        suffixes: Vec<(i32, u64)>,
        revision: u64,
    }

    fn suffix_rank(s: &str) -> Option<i32> {
        Some(match s {
            "alpha" => -4,
            "beta" => -3,
            "pre" => -2,
            "rc" => -1,
            "cvs" => 1,
            "svn" => 2,
            "git" => 3,
            "hg" => 4,
            "p" => 5,
            _ => return None,
        })
    }

    fn parse(v: &str) -> Option<Parsed> {
        let v = v.trim();
        let (body, revision) = match v.rsplit_once("-r") {
            Some((b, r)) if !r.is_empty() && r.chars().all(|c| c.is_ascii_digit()) => {
                (b, r.parse().ok()?)
            }
            _ => (v, 0),
        };
        // `~hash` (a commit id) does not take part in ordering.
        let body = body.split_once('~').map_or(body, |(b, _)| b);
        let (main, suffix_part) = match body.split_once('_') {
            Some((m, s)) => (m, Some(s)),
            None => (body, None),
        };
        let head = main
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(main.len());
        let (nums, tail) = main.split_at(head);
        let letter = match tail.as_bytes() {
            [] => None,
            [c, rest @ ..] if c.is_ascii_lowercase() && rest.iter().all(u8::is_ascii_digit) => {
                Some((*c, tail[1..].to_string()))
            }
            _ => return None,
        };
        let numbers: Vec<String> = nums.split('.').map(str::to_string).collect();
        if numbers
            .iter()
            .any(|n| n.is_empty() || !n.chars().all(|c| c.is_ascii_digit()))
        {
            return None;
        }
        let mut suffixes = Vec::new();
        if let Some(sp) = suffix_part {
            for s in sp.split('_') {
                let cut = s.find(|c: char| c.is_ascii_digit()).unwrap_or(s.len());
                let rank = suffix_rank(&s[..cut])?;
                let n = if cut == s.len() {
                    0
                } else {
                    s[cut..].parse().ok()?
                };
                suffixes.push((rank, n));
            }
        }
        Some(Parsed {
            numbers,
            letter,
            suffixes,
            revision,
        })
    }

    /// apk compares the first number numerically; later ones with a leading zero compare as
    /// decimal fractions (`1.02` < `1.1`), the rest numerically.
    fn cmp_number(first: bool, a: &str, b: &str) -> Ordering {
        if !first && (a.starts_with('0') || b.starts_with('0')) {
            return a.cmp(b);
        }
        let a = a.trim_start_matches('0');
        let b = b.trim_start_matches('0');
        a.len().cmp(&b.len()).then_with(|| a.cmp(b))
    }

    pub fn compare(a: &str, b: &str) -> Option<Ordering> {
        let (a, b) = (parse(a)?, parse(b)?);
        for (i, (x, y)) in a.numbers.iter().zip(&b.numbers).enumerate() {
            let o = cmp_number(i == 0, x, y);
            if o != Ordering::Equal {
                return Some(o);
            }
        }
        let o = a.numbers.len().cmp(&b.numbers.len());
        if o != Ordering::Equal {
            return Some(o);
        }
        let o = match (&a.letter, &b.letter) {
            (Some((x, xn)), Some((y, yn))) => {
                x.cmp(y).then_with(|| super::semver::cmp_digits(xn, yn))
            }
            (x, y) => x.is_some().cmp(&y.is_some()),
        };
        if o != Ordering::Equal {
            return Some(o);
        }
        let n = a.suffixes.len().max(b.suffixes.len());
        for k in 0..n {
            // A missing suffix is the bare release: after pre-releases, before post-releases.
            let x = a.suffixes.get(k).copied().unwrap_or((0, 0));
            let y = b.suffixes.get(k).copied().unwrap_or((0, 0));
            let o = x.cmp(&y);
            if o != Ordering::Equal {
                return Some(o);
            }
        }
        Some(a.revision.cmp(&b.revision))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    fn check(scheme: Scheme, cases: &[(&str, &str, Ordering)]) {
        for (a, b, want) in cases {
            assert_eq!(compare(scheme, a, b), Some(*want), "{scheme:?}: {a} vs {b}");
            assert_eq!(
                compare(scheme, b, a),
                Some(want.reverse()),
                "{scheme:?}: {b} vs {a}"
            );
        }
    }

    #[test]
    fn dpkg_ordering() {
        check(
            Scheme::Dpkg,
            &[
                ("1.0", "1.0", Equal),
                ("1.0~rc1", "1.0", Less),
                ("1.0~~", "1.0~", Less),
                ("1.0", "1.0-0", Equal),
                ("1.0-1", "1.0+dfsg-1", Less),
                ("2.9.4+dfsg1-2.2+deb9u6", "2.9.4+dfsg1-2.2+deb9u7", Less),
                ("1.1.0l-1~deb9u5", "1.1.0l-1~deb9u6", Less),
                ("1.1.0l-1~deb9u6", "1.1.0l-1", Less),
                ("1.1.0k-1~deb9u1", "1.1.0l-1~deb9u1", Less),
                ("1:0.9", "2.0", Greater),
                ("0:2.0", "2.0", Equal),
                ("1.2.1-2.2+wheezy3", "1.2.1-2.2+wheezy2", Greater),
                ("1.10", "1.9", Greater),
                ("1.001", "1.1", Equal),
                ("1.0a", "1.0+", Less),
                ("2.36-9+deb12u4", "2.36-9+deb12u10", Less),
            ],
        );
        assert_eq!(compare(Scheme::Dpkg, "", "1"), None);
        assert_eq!(compare(Scheme::Dpkg, "x:1", "1"), None);
    }

    #[test]
    fn apk_ordering() {
        check(
            Scheme::Apk,
            &[
                ("1.2.3-r4", "1.2.3-r6", Less),
                ("1.2.3-r6", "1.2.4-r3", Less),
                ("1.2.4-r3", "1.2.4_git20230717-r5", Less),
                ("1.2.4_git20230717-r5", "1.2.5-r1", Less),
                ("1.2.5-r9", "1.2.5-r10", Less),
                ("0.9.13", "1.2.3-r4", Less),
                ("1.0_rc1", "1.0", Less),
                ("1.0_alpha", "1.0_beta", Less),
                ("1.0_p1", "1.0", Greater),
                ("1.0a", "1.0", Greater),
                ("1.0a", "1.0b", Less),
                ("1.0", "1.0.1", Less),
                ("1.02", "1.1", Less),
                ("1.1.1d-r0", "1.1.1c-r0", Greater),
                ("2.1.0~abc-r1", "2.1.0-r1", Equal),
            ],
        );
        assert_eq!(compare(Scheme::Apk, "abc", "1"), None);
    }

    #[test]
    fn pep440_ordering() {
        check(
            Scheme::Pep440,
            &[
                ("1.8a0", "1.8c1", Less),
                ("1.8c1", "1.8rc1", Equal),
                ("1.8rc1", "1.8", Less),
                ("1.6.5", "1.6.5.post1", Less),
                ("0.9.3.dev6", "0.9.3", Less),
                ("0.9.3.dev6", "0.9.2", Greater),
                ("12.0.0.0rc1", "12.0.0", Less),
                ("11.0.1", "12.0.0.0rc1", Less),
                ("3.0a0", "3.0.0b9", Less),
                ("3.0.0b9", "3.0.0", Less),
                ("0.8.0-alpha2", "0.8.0", Less),
                ("1.4.7.dev3", "1.4.7", Less),
                ("1!0.1", "2.0", Greater),
                ("4.2", "4.2.0", Equal),
            ],
        );
        assert_eq!(compare(Scheme::Pep440, "not a version", "1"), None);
    }

    #[test]
    fn semver_ordering() {
        check(
            Scheme::Semver,
            &[
                ("0.0.0-0", "0.0.0", Less),
                ("0.3.0-rc.1", "0.3.0-rc.2", Less),
                ("0.3.0-rc.2", "0.3.0", Less),
                ("0.10.0-alpha.1", "0.10.0-rc.3", Less),
                ("0.10.0-rc.3", "0.9.6", Greater),
                ("0.2.1-0", "0.2.1", Less),
                ("1.0.0-alpha.beta", "1.0.0-beta", Less),
                ("1.0.0-rc.1", "1.0.0-rc.11", Less),
                ("v4.17.21", "4.17.20", Greater),
                ("1.2", "1.2.0", Equal),
                ("1.0.0+build.1", "1.0.0", Equal),
            ],
        );
        assert_eq!(compare(Scheme::Semver, "1.2.3.x", "1"), None);
    }

    #[test]
    fn apk_letter_with_digits() {
        // Alpine secdb carries OpenBSD-style portable releases: `p1` after the version.
        check(
            Scheme::Apk,
            &[
                ("1.8.28p1-r1", "1.8.28p1-r1", Equal),
                ("1.8.28-r0", "1.8.28p1-r1", Less),
                ("1.8.28p1-r1", "1.8.28p2-r0", Less),
                ("1.8.28p1-r1", "1.8.28p1-r2", Less),
                ("1.8.28p9-r0", "1.8.28p10-r0", Less),
                ("1.8.28p1-r1", "1.8.29-r0", Less),
                ("6.0.2p1-r0", "6.0.2a-r0", Greater),
            ],
        );
        assert_eq!(compare(Scheme::Apk, "1.8.28pp1", "1"), None);
    }

    #[test]
    fn pypi_legacy_versions_sort_before_pep440_and_among_themselves() {
        // packaging's LegacyVersion rules: legacy < any PEP 440 version; zero-padded numbers;
        // `dev` first, `pre`/`preview`/`rc` = `c`; a `-` is "final-".
        check(
            Scheme::Pep440,
            &[
                ("2004d", "0.0.1", Less),
                ("1.0-foo", "1.0", Less),
                ("2004d", "2004e", Less),
                ("2004d", "2005a", Less),
                ("1.0-foo", "1.0-goo", Less),
                ("0.3.2.dev-r1234", "0.3.2.r1234", Less),
                ("1.0.x", "1.0.y", Less),
                ("1.0.preview", "1.0.pre", Equal),
                ("1.0.dev.x", "1.0.a.x", Less),
            ],
        );
        assert_eq!(compare(Scheme::Pep440, "1.0 beta", "1.0"), None);
    }

    #[test]
    fn semver_wide_numbers_and_more_parts() {
        check(
            Scheme::Semver,
            &[
                // Wider than u64 (18446744073709551615).
                (
                    "18446744073709551616.0.0",
                    "18446744073709551615.0.0",
                    Greater,
                ),
                (
                    "1.0.0-rc.99999999999999999999",
                    "1.0.0-rc.100000000000000000000",
                    Less,
                ),
                ("1.0.0-20240101000000000000", "1.0.0", Less),
                // Four parts (npm packages, Go's +incompatible builds ignored).
                ("1.2.3.4", "1.2.3", Greater),
                ("1.2.3.4", "1.2.3.10", Less),
                ("1.2.3.0", "1.2.3", Equal),
                ("v2.0.0+incompatible", "2.0.0", Equal),
            ],
        );
    }

    #[test]
    fn go_versions_use_semver_including_pseudo_versions() {
        // Go module pseudo-versions are SemVer pre-releases of the next patch.
        check(
            Scheme::Semver,
            &[
                (
                    "0.0.0-20210101000000-abcdefabcdef",
                    "0.0.0-20220101000000-abcdefabcdef",
                    Less,
                ),
                ("1.2.4-0.20191109021931-daa7c04131f5", "1.2.4", Less),
                ("1.2.3", "1.2.4-0.20191109021931-daa7c04131f5", Less),
                ("v1.17.0", "1.17.0", Equal),
            ],
        );
    }

    #[test]
    fn maven_ordering() {
        // From Maven's "Version Order Specification" (maven.apache.org/pom.html).
        check(
            Scheme::Maven,
            &[
                ("1", "1.1", Less),
                ("1-snapshot", "1", Less),
                ("1", "1-sp", Less),
                ("1-foo2", "1-foo10", Less),
                ("1-foo", "1-1", Less),
                ("1-1", "1.1", Less),
                ("1.ga", "1-ga", Equal),
                ("1-ga", "1-0", Equal),
                ("1-0", "1.0", Equal),
                ("1.0", "1", Equal),
                ("1-sp", "1-ga", Greater),
                ("1-sp.1", "1-ga.1", Greater),
                ("1-sp-1", "1-ga-1", Less),
                ("1-a1", "1-alpha-1", Equal),
                ("1-cr1", "1-rc1", Equal),
                ("1.0-alpha1", "1.0-beta1", Less),
                ("1.0-beta1", "1.0-m1", Less),
                ("1.0-m1", "1.0-rc1", Less),
                ("1.0-rc1", "1.0-SNAPSHOT", Less),
                ("1.0-SNAPSHOT", "1.0", Less),
                ("1.0", "1.0-sp1", Less),
                ("2.13.4", "2.13.4.1", Less),
                ("2.13.4.2", "2.14.0-rc1", Less),
                ("2.9.10.8", "2.10.0", Less),
                ("1.0.0.RELEASE", "1.0.0", Equal),
                ("5.3.17", "5.3.18", Less),
            ],
        );
        assert_eq!(compare(Scheme::Maven, "1 .0", "1"), None);
    }

    #[test]
    fn rubygems_ordering() {
        // Gem::Version: letters make a pre-release, `-` reads as `.pre.`, trailing zeros drop.
        check(
            Scheme::RubyGems,
            &[
                ("1.0", "1", Equal),
                ("1.0.0", "1.0", Equal),
                ("1.0.a", "1.0", Less),
                ("1.0.a10", "1.0.a9", Greater),
                ("1.0.b1", "1.0.a2", Greater),
                ("1.0.0.rc1", "1.0.0", Less),
                ("1.0.0-rc1", "1.0.0.pre.rc1", Equal),
                ("5.2.4.3", "5.2.4.4", Less),
                ("6.1.7.1", "6.1.7.10", Less),
                ("7.0.0.alpha2", "7.0.0.beta1", Less),
                ("1.10", "1.9", Greater),
            ],
        );
        assert_eq!(compare(Scheme::RubyGems, "junk", "1"), None);
    }

    #[test]
    fn packagist_ordering() {
        // Composer: v prefix dropped, 1.2 = 1.2.0.0, then PHP's version_compare special forms.
        check(
            Scheme::Packagist,
            &[
                ("v1.2.3", "1.2.3", Equal),
                ("1.2", "1.2.0", Equal),
                ("5.2", "5.10", Less),
                ("1.0.0-dev", "1.0.0-alpha", Less),
                ("1.0.0-alpha1", "1.0.0-beta1", Less),
                ("1.0.0-beta2", "1.0.0-RC1", Less),
                ("1.0.0-RC1", "1.0.0", Less),
                ("1.0.0", "1.0.0-pl1", Less),
                ("1.0.0-alpha2", "1.0.0-alpha10", Less),
                ("4.4.49", "5.0.0-beta1", Less),
            ],
        );
        assert_eq!(compare(Scheme::Packagist, "dev-master", "1"), None);
    }

    #[test]
    fn nuget_ordering() {
        check(
            Scheme::NuGet,
            &[
                ("1.0", "1.0.0.0", Equal),
                ("1.0.0.1", "1.0.0", Greater),
                ("1.0.0-alpha", "1.0.0", Less),
                ("1.0.0-Alpha", "1.0.0-alpha", Equal),
                ("1.0.0-alpha.2", "1.0.0-alpha.10", Less),
                ("1.0.0-beta", "1.0.0-alpha", Greater),
                ("1.0.0+build.5", "1.0.0", Equal),
                ("13.0.1", "13.0.3", Less),
            ],
        );
        assert_eq!(compare(Scheme::NuGet, "1.0.0.0.0", "1"), None);
    }
}
