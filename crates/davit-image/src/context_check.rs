//! Nothing of davit's own state goes into an image.
//!
//! A Django Dockerfile's `COPY . .` copies the whole build context. When that context holds a
//! davit state folder (every release's 0600 env file with the app's secrets, the ledger) or an
//! earlier run's SBOMs and reports, the next image carries them to the registry and to everyone
//! who can pull it. davit keeps its state outside the repository by default; this check is the
//! second line: before the build it walks the context (names only, never contents, skipping what
//! `.dockerignore` excludes) and refuses, naming the fix, when it finds davit's files there.

use davit_core::Failure;
use glob::{MatchOptions, Pattern};
use std::path::{Path, PathBuf};

/// The `.dockerignore` rules of a context, in Docker's order: the last matching rule wins, `!`
/// re-includes, and a rule that matches a folder covers everything under it.
pub struct Ignore {
    rules: Vec<(Pattern, bool)>,
}

impl Ignore {
    pub fn load(context: &Path) -> Ignore {
        let text = std::fs::read_to_string(context.join(".dockerignore")).unwrap_or_default();
        Ignore::parse(&text)
    }

    pub fn parse(text: &str) -> Ignore {
        let rules = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| {
                let (negate, pat) = match l.strip_prefix('!') {
                    Some(rest) => (true, rest.trim()),
                    None => (false, l),
                };
                let pat = pat.trim_start_matches("./").trim_start_matches('/');
                let pat = pat.trim_end_matches('/');
                Pattern::new(pat).ok().map(|p| (p, negate))
            })
            .collect();
        Ignore { rules }
    }

    /// Whether `rel` (relative to the context) is left out of the build.
    pub fn excluded(&self, rel: &Path) -> bool {
        let opts = MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: false,
        };
        let mut excluded = false;
        for (pattern, negate) in &self.rules {
            // A rule matches the path or one of the folders it is in.
            let hit = rel
                .ancestors()
                .filter(|a| !a.as_os_str().is_empty())
                .any(|a| pattern.matches_path_with(a, opts));
            if hit {
                excluded = !negate;
            }
        }
        excluded
    }
}

/// What davit's own files in a context look like, found by name.
fn finding(rel: &Path, is_dir: bool, dir: &Path) -> Option<String> {
    let name = rel.file_name()?.to_string_lossy();
    if is_dir && dir.join("releases.jsonl").is_file() {
        return Some(format!(
            "{} is a davit state folder (the release ledger, and release env files that may hold secrets)",
            rel.display()
        ));
    }
    let parent_is_releases = rel
        .parent()
        .and_then(Path::parent)
        .and_then(Path::file_name)
        .is_some_and(|n| n == "releases");
    if !is_dir && name == "app.env" && parent_is_releases {
        return Some(format!(
            "{} is a davit release env file (it may hold secrets)",
            rel.display()
        ));
    }
    None
}

/// Refuse a build whose context would carry davit state or an earlier run's outputs into the
/// image. `out_dir` is where this run writes its reports (checked before it is created).
pub fn check(context: &Path, out_dir: &Path) -> Result<(), Failure> {
    let Ok(root) = std::fs::canonicalize(context) else {
        // The build reports a missing context in its own words.
        return Ok(());
    };
    let ignore = Ignore::load(&root);
    let mut found = Vec::new();
    let mut fixes = Vec::new();
    if let Ok(out) = std::path::absolute(out_dir)
        && let Some(rel) = inside(&root, &out)
        && !ignore.excluded(&rel)
        && std::fs::read_dir(&out).is_ok_and(|mut d| d.next().is_some())
    {
        found.push(format!(
            "{} holds davit-image's reports and SBOMs from an earlier run",
            rel.display()
        ));
        fixes.push(rel.clone());
    }
    walk(&root, &root, &ignore, &mut found, &mut fixes);
    if found.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = found.iter().take(5).map(|f| format!("  - {f}")).collect();
    let more = found.len().saturating_sub(5);
    let ignore_lines: Vec<String> = fixes
        .iter()
        .take(5)
        .map(|p| format!("/{}", p.display()))
        .collect();
    Err(Failure::bad_input(
        format!(
            "the build context {} holds davit's own files, which a COPY would put into the image:\n{}{}",
            root.display(),
            lines.join("\n"),
            if more > 0 {
                format!("\n  ... and {more} more")
            } else {
                String::new()
            }
        ),
        format!(
            "keep davit state out of the repository (remove state_dir from davit.toml: the default is ~/.local/state/davit, /var/lib/davit on remote hosts) and write reports elsewhere (out-dir: ${{{{ runner.temp }}}}/davit-image), or add these lines to .dockerignore: {}",
            ignore_lines.join(" ")
        ),
    ))
}

/// `path` relative to `root` when it is inside it.
fn inside(root: &Path, path: &Path) -> Option<PathBuf> {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    path.strip_prefix(root)
        .ok()
        .filter(|r| !r.as_os_str().is_empty())
        .map(Path::to_path_buf)
}

/// Walk names under `dir`, never into what `.dockerignore` excludes (a 10 GB `target/` that
/// is ignored costs nothing), never through symlinks, never into `.git`.
fn walk(
    root: &Path,
    dir: &Path,
    ignore: &Ignore,
    found: &mut Vec<String>,
    fixes: &mut Vec<PathBuf>,
) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_symlink() {
            continue;
        }
        let path = entry.path();
        let Ok(rel) = path.strip_prefix(root).map(Path::to_path_buf) else {
            continue;
        };
        if rel == Path::new(".git") || ignore.excluded(&rel) {
            continue;
        }
        if let Some(f) = finding(&rel, kind.is_dir(), &path) {
            found.push(f);
            fixes.push(rel);
            // A whole state folder is one finding; its env files are in it.
            continue;
        }
        if kind.is_dir() {
            walk(root, &path, ignore, found, fixes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerignore_rules_in_order_with_folders_and_negation() {
        let i = Ignore::parse("# comment\n/.davit\ntarget/\n*.env\n!keep.env\n**/secrets\n");
        assert!(i.excluded(Path::new(".davit/state/shop-production/releases.jsonl")));
        assert!(i.excluded(Path::new("target/debug/x")));
        assert!(i.excluded(Path::new("prod.env")));
        assert!(!i.excluded(Path::new("keep.env")));
        assert!(!i.excluded(Path::new("sub/prod.env")), "* does not cross /");
        assert!(i.excluded(Path::new("a/b/secrets/key")));
        assert!(!i.excluded(Path::new("src/main.py")));
    }

    fn state_in(dir: &Path) {
        let s = dir.join(".davit/state/shop-production");
        std::fs::create_dir_all(s.join("releases/r1")).unwrap();
        std::fs::write(s.join("releases.jsonl"), "{}\n").unwrap();
        std::fs::write(s.join("releases/r1/app.env"), "SECRET=x\n").unwrap();
    }

    #[test]
    fn a_context_with_a_state_folder_is_refused_until_it_is_ignored() {
        let ctx = tempfile::tempdir().unwrap();
        std::fs::write(ctx.path().join("Dockerfile"), "FROM scratch\nCOPY . .\n").unwrap();
        let out = ctx.path().join("davit-image-out");
        check(ctx.path(), &out).unwrap();
        state_in(ctx.path());
        let e = check(ctx.path(), &out).unwrap_err();
        assert!(
            e.message
                .contains(".davit/state/shop-production is a davit state folder"),
            "{}",
            e.message
        );
        let hint = e.hint.clone().unwrap();
        assert!(hint.contains("/.davit/state/shop-production"), "{hint}");
        std::fs::write(ctx.path().join(".dockerignore"), ".davit\n").unwrap();
        check(ctx.path(), &out).unwrap();
    }

    #[test]
    fn a_stray_env_file_and_an_earlier_runs_reports_are_refused() {
        let ctx = tempfile::tempdir().unwrap();
        let out = ctx.path().join("davit-image-out");
        std::fs::create_dir_all(&out).unwrap();
        check(ctx.path(), &out).unwrap();
        std::fs::write(out.join("report.json"), "{}").unwrap();
        let e = check(ctx.path(), &out).unwrap_err();
        assert!(e.message.contains("davit-image-out holds"), "{}", e.message);
        std::fs::remove_file(out.join("report.json")).unwrap();
        std::fs::create_dir_all(ctx.path().join("copy/releases/r9")).unwrap();
        std::fs::write(ctx.path().join("copy/releases/r9/app.env"), "A=b\n").unwrap();
        let e = check(ctx.path(), &out).unwrap_err();
        assert!(
            e.message.contains("copy/releases/r9/app.env"),
            "{}",
            e.message
        );
    }
}
