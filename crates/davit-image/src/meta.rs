//! Tags and OCI labels from the git context, the way docker/metadata-action computes them.
//!
//! Users already know metadata-action's tag rules (`type=ref,event=branch`, `type=semver,
//! pattern={{major}}.{{minor}}`, `type=sha`, `type=raw,value=...`), so the same spec lines work
//! here, and the defaults cover what a deploy pipeline needs: the branch or PR, `1.2.3`/`1.2`/`1`
//! from a release tag, the short and long commit SHA, and `latest` on the default branch. This
//! is a pure function of its input (the creation time is an input too) so every case is a
//! snapshot test, and no git or network access happens here.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// Where the build comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct GitContext {
    /// `push`, `pull_request`, `workflow_dispatch`, ... (informational).
    pub event: String,
    /// `refs/heads/main`, `refs/tags/v1.2.3`, `refs/pull/12/merge`.
    pub git_ref: String,
    /// Full 40-hex commit SHA.
    pub sha: String,
    /// The repository's default branch (`main`); `None` disables "default branch" rules.
    pub default_branch: Option<String>,
}

impl GitContext {
    pub fn branch(&self) -> Option<&str> {
        self.git_ref.strip_prefix("refs/heads/")
    }
    pub fn tag(&self) -> Option<&str> {
        self.git_ref.strip_prefix("refs/tags/")
    }
    pub fn pr(&self) -> Option<&str> {
        let rest = self.git_ref.strip_prefix("refs/pull/")?;
        rest.split('/')
            .next()
            .filter(|n| n.chars().all(|c| c.is_ascii_digit()))
    }
    pub fn is_default_branch(&self) -> bool {
        matches!((self.branch(), &self.default_branch), (Some(b), Some(d)) if b == d)
    }
}

/// When to add `latest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Latest {
    /// On a push to the default branch.
    #[default]
    Auto,
    Always,
    Never,
}

/// Everything the computation reads.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetaInput {
    /// Image names without tag (`ghcr.io/org/app`, `127.0.0.1:5000/demo`).
    pub images: Vec<String>,
    /// metadata-action style tag specs; empty means [`DEFAULT_TAGS`].
    pub tag_specs: Vec<String>,
    pub latest: Latest,
    pub git: GitContext,
    /// `https://github.com/org/app`.
    pub repo_url: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub licenses: Option<String>,
    pub created: DateTime<Utc>,
    /// Extra `key=value` labels; they override computed ones.
    pub extra_labels: Vec<(String, String)>,
}

/// The default tag specs.
pub const DEFAULT_TAGS: &[&str] = &[
    "type=ref,event=branch",
    "type=ref,event=pr",
    "type=semver,pattern={{version}}",
    "type=semver,pattern={{major}}.{{minor}}",
    "type=semver,pattern={{major}}",
    "type=sha",
    "type=sha,format=long",
];

/// Computed tags and labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Meta {
    /// The main version (semver version, else branch/PR/tag name, else short SHA).
    pub version: String,
    /// Bare tags, in spec order, deduplicated.
    pub tags: Vec<String>,
    /// `image:tag` for every image and tag.
    pub refs: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tag spec {spec:?}: {message}")]
pub struct SpecError {
    pub spec: String,
    pub message: String,
}

/// Docker tags allow `[A-Za-z0-9_.-]`, at most 128, not starting with `.` or `-`.
pub fn sanitize_tag(s: &str) -> String {
    let mut out = String::new();
    let mut dash = false;
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' {
            out.push(c);
            dash = false;
        } else if !dash {
            out.push('-');
            dash = true;
        }
    }
    let out = out.trim_start_matches(['.', '-']);
    out.chars().take(128).collect()
}

fn parse_spec(spec: &str) -> Result<BTreeMap<String, String>, SpecError> {
    let mut m = BTreeMap::new();
    for part in spec.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (k, v) = part.split_once('=').ok_or_else(|| SpecError {
            spec: spec.into(),
            message: format!("{part:?} is not key=value"),
        })?;
        m.insert(k.trim().to_string(), v.trim().to_string());
    }
    if !m.contains_key("type") {
        return Err(SpecError {
            spec: spec.into(),
            message: "missing type= (ref, semver, sha, raw)".into(),
        });
    }
    Ok(m)
}

/// `{{date 'YYYYMMDD'}}` with moment-style tokens, the subset metadata-action users write.
fn format_date(fmt: &str, t: &DateTime<Utc>) -> String {
    let f = fmt
        .replace("YYYY", "%Y")
        .replace("MM", "%m")
        .replace("DD", "%d")
        .replace("HH", "%H")
        .replace("mm", "%M")
        .replace("ss", "%S");
    t.format(&f).to_string()
}

/// Expand `{{branch}} {{tag}} {{sha}} {{sha_long}} {{pr}} {{base_ref}} {{date 'fmt'}}`.
fn expand(tpl: &str, inp: &MetaInput) -> String {
    let g = &inp.git;
    let mut s = tpl
        .replace("{{branch}}", g.branch().unwrap_or(""))
        .replace("{{tag}}", g.tag().unwrap_or(""))
        .replace("{{sha}}", &g.sha.chars().take(7).collect::<String>())
        .replace("{{sha_long}}", &g.sha)
        .replace("{{pr}}", g.pr().unwrap_or(""))
        .replace("{{is_default_branch}}", &g.is_default_branch().to_string())
        .replace("{{date}}", &format_date("YYYYMMDD", &inp.created));
    while let Some(start) = s.find("{{date '") {
        let Some(end) = s[start..].find("'}}") else {
            break;
        };
        let fmt = s[start + 8..start + end].to_string();
        s.replace_range(start..start + end + 3, &format_date(&fmt, &inp.created));
    }
    s
}

fn semver_of(tag: &str) -> Option<semver::Version> {
    semver::Version::parse(tag.strip_prefix('v').unwrap_or(tag)).ok()
}

/// Compute tags and labels.
pub fn compute(inp: &MetaInput) -> Result<Meta, SpecError> {
    let g = &inp.git;
    let specs: Vec<String> = if inp.tag_specs.is_empty() {
        DEFAULT_TAGS.iter().map(|s| s.to_string()).collect()
    } else {
        inp.tag_specs.clone()
    };
    let semver = g.tag().and_then(semver_of);
    let mut tags: Vec<String> = Vec::new();
    let mut version: Option<String> = None;
    let mut ref_version: Option<String> = None;
    for spec in &specs {
        let m = parse_spec(spec)?;
        let get = |k: &str| m.get(k).map(String::as_str);
        let enable = get("enable").map(|e| expand(e, inp));
        if matches!(enable.as_deref(), Some("false")) {
            continue;
        }
        let prefix = get("prefix").map(|p| expand(p, inp)).unwrap_or_default();
        let suffix = get("suffix").map(|p| expand(p, inp)).unwrap_or_default();
        let value: Option<String> = match get("type").unwrap_or("") {
            "ref" => match get("event") {
                Some("branch") => g.branch().map(|b| b.to_string()),
                Some("tag") => g.tag().map(|t| t.to_string()),
                Some("pr") => g.pr().map(|n| {
                    if m.contains_key("prefix") {
                        n.to_string()
                    } else {
                        format!("pr-{n}")
                    }
                }),
                other => {
                    return Err(SpecError {
                        spec: spec.clone(),
                        message: format!(
                            "event={} is not one of branch, tag, pr",
                            other.unwrap_or("")
                        ),
                    });
                }
            },
            "semver" => {
                let pattern = get("pattern").unwrap_or("{{version}}");
                semver.as_ref().and_then(|v| {
                    let pre = !v.pre.is_empty();
                    // Like metadata-action: a pre-release only gets the full version.
                    if pre && pattern != "{{version}}" {
                        return None;
                    }
                    let mut full = format!("{}.{}.{}", v.major, v.minor, v.patch);
                    if pre {
                        full.push('-');
                        full.push_str(v.pre.as_str());
                    }
                    if !v.build.is_empty() {
                        full.push('-');
                        full.push_str(v.build.as_str());
                    }
                    let out = pattern
                        .replace("{{version}}", &full)
                        .replace("{{major}}", &v.major.to_string())
                        .replace("{{minor}}", &v.minor.to_string())
                        .replace("{{patch}}", &v.patch.to_string());
                    if pattern == "{{version}}" && version.is_none() {
                        version = Some(full.clone());
                    }
                    Some(out)
                })
            }
            "sha" => {
                if g.sha.is_empty() {
                    None
                } else {
                    let long = get("format") == Some("long");
                    let s: String = if long {
                        g.sha.clone()
                    } else {
                        g.sha.chars().take(7).collect()
                    };
                    let p = if m.contains_key("prefix") {
                        String::new()
                    } else {
                        "sha-".to_string()
                    };
                    Some(format!("{p}{s}"))
                }
            }
            "raw" => {
                let v = get("value").ok_or_else(|| SpecError {
                    spec: spec.clone(),
                    message: "type=raw needs value=".into(),
                })?;
                Some(expand(v, inp))
            }
            "template" => get("value").map(|v| expand(v, inp)),
            other => {
                return Err(SpecError {
                    spec: spec.clone(),
                    message: format!("type={other} is not supported (ref, semver, sha, raw)"),
                });
            }
        };
        let Some(v) = value.filter(|v| !v.is_empty()) else {
            continue;
        };
        let tag = sanitize_tag(&format!("{prefix}{v}{suffix}"));
        if tag.is_empty() {
            continue;
        }
        if ref_version.is_none() && get("type") != Some("sha") {
            ref_version = Some(tag.clone());
        }
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    let want_latest = match inp.latest {
        Latest::Always => true,
        Latest::Never => false,
        Latest::Auto => g.is_default_branch(),
    };
    if want_latest && !tags.iter().any(|t| t == "latest") {
        // After the moving names, before the SHA tags, like metadata-action's priorities.
        let pos = tags
            .iter()
            .position(|t| t.starts_with("sha-") || *t == g.sha)
            .unwrap_or(tags.len());
        tags.insert(pos, "latest".into());
    }
    let version = version
        .or(ref_version)
        .unwrap_or_else(|| g.sha.chars().take(7).collect());

    let mut labels = BTreeMap::new();
    let oci = |k: &str| format!("org.opencontainers.image.{k}");
    let repo_name = inp
        .repo_url
        .as_deref()
        .and_then(|u| u.trim_end_matches('/').rsplit('/').next())
        .map(str::to_string);
    if let Some(t) = inp.title.clone().or(repo_name) {
        labels.insert(oci("title"), t);
    }
    if let Some(d) = &inp.description {
        labels.insert(oci("description"), d.clone());
    }
    if let Some(u) = &inp.repo_url {
        labels.insert(oci("url"), u.clone());
        labels.insert(oci("source"), u.clone());
    }
    labels.insert(oci("version"), version.clone());
    labels.insert(
        oci("created"),
        inp.created
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    if !g.sha.is_empty() {
        labels.insert(oci("revision"), g.sha.clone());
    }
    if let Some(l) = &inp.licenses {
        labels.insert(oci("licenses"), l.clone());
    }
    for (k, v) in &inp.extra_labels {
        labels.insert(k.clone(), expand(v, inp));
    }
    let refs = inp
        .images
        .iter()
        .flat_map(|i| tags.iter().map(move |t| format!("{i}:{t}")))
        .collect();
    Ok(Meta {
        version,
        tags,
        refs,
        labels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "860c1904a1ce19322e91ac35af1ab07466440c37";

    fn input(event: &str, git_ref: &str) -> MetaInput {
        MetaInput {
            images: vec!["ghcr.io/acme/shop".into(), "127.0.0.1:5000/shop".into()],
            tag_specs: vec![],
            latest: Latest::Auto,
            git: GitContext {
                event: event.into(),
                git_ref: git_ref.into(),
                sha: SHA.into(),
                default_branch: Some("main".into()),
            },
            repo_url: Some("https://github.com/acme/shop".into()),
            title: None,
            description: Some("The shop".into()),
            licenses: Some("MIT".into()),
            created: "2024-05-06T07:08:09Z".parse().unwrap(),
            extra_labels: vec![],
        }
    }

    #[test]
    fn push_to_default_branch() {
        insta::assert_yaml_snapshot!(compute(&input("push", "refs/heads/main")).unwrap());
    }

    #[test]
    fn push_to_feature_branch_sanitizes_the_name() {
        insta::assert_yaml_snapshot!(
            compute(&input("push", "refs/heads/feature/Login#2")).unwrap()
        );
    }

    #[test]
    fn release_tag_gives_semver_tags() {
        insta::assert_yaml_snapshot!(compute(&input("push", "refs/tags/v1.2.3")).unwrap());
    }

    #[test]
    fn prerelease_tag_gives_only_the_full_version() {
        insta::assert_yaml_snapshot!(compute(&input("push", "refs/tags/v2.0.0-rc.1")).unwrap());
    }

    #[test]
    fn non_semver_tag_is_skipped_by_semver_rules() {
        let mut i = input("push", "refs/tags/release-7");
        i.tag_specs = vec![
            "type=ref,event=tag".into(),
            "type=semver,pattern={{version}}".into(),
        ];
        insta::assert_yaml_snapshot!(compute(&i).unwrap());
    }

    #[test]
    fn pull_request() {
        insta::assert_yaml_snapshot!(
            compute(&input("pull_request", "refs/pull/42/merge")).unwrap()
        );
    }

    #[test]
    fn custom_templates_and_labels() {
        let mut i = input("push", "refs/heads/main");
        i.tag_specs = vec![
            "type=raw,value={{branch}}-{{sha}}-{{date 'YYYYMMDD'}}".into(),
            "type=raw,value=stable,enable={{is_default_branch}}".into(),
            "type=raw,value=never,enable=false".into(),
            "type=sha,prefix=commit-,format=long".into(),
            "type=ref,event=branch,suffix=-amd64".into(),
        ];
        i.latest = Latest::Never;
        i.title = Some("Shop".into());
        i.extra_labels = vec![("com.example.build".into(), "{{sha}}".into())];
        insta::assert_yaml_snapshot!(compute(&i).unwrap());
    }

    #[test]
    fn bad_specs_are_errors() {
        let mut i = input("push", "refs/heads/main");
        i.tag_specs = vec!["type=schedule".into()];
        assert!(compute(&i).is_err());
        i.tag_specs = vec!["event=branch".into()];
        assert!(compute(&i).is_err());
        i.tag_specs = vec!["type=raw".into()];
        assert!(compute(&i).is_err());
    }

    #[test]
    fn every_tag_is_a_valid_docker_tag() {
        for r in [
            "refs/heads/-x/..y",
            "refs/heads/ünï",
            "refs/tags/v1.0.0+build.5",
        ] {
            let m = compute(&input("push", r)).unwrap();
            for t in &m.refs {
                davit_core::validate::image_ref("tag", t).unwrap();
            }
        }
    }
}
