//! Where a failure happened: the report's `file`/`line`, or a path and line from the stack
//! trace in its text ([`frames`]: Python, JavaScript/TypeScript, Java, Rust and Go formats),
//! mapped onto the files git tracks ([`RepoFiles`]), because an annotation is only useful on a
//! path GitHub knows.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::OnceLock;

use regex::Regex;

use crate::junit::TestCase;

fn location_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r#"(?:^|[\s("'\[])((?:[A-Za-z]:)?[\w.\-/\\]*[\w\-]\.[A-Za-z][A-Za-z0-9]{0,5}):(\d+)"#,
        )
        .expect("valid regex")
    })
}

/// Python's `File "path", line N, in f` (tracebacks, also inside pytest's long format).
fn python_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r#"File "([^"\n]+)", line (\d+)"#).expect("valid regex"))
}

/// A JVM frame: `at com.example.FooTest.testBar(FooTest.java:42)`.
fn java_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"\bat\s+([\w$]+(?:\.[\w$]+)*)\.[\w$<>\-]+\(([\w$\-]+\.(?:java|kt|scala|groovy)):(\d+)\)")
            .expect("valid regex")
    })
}

/// `path:line` mentions in failure text, in order.
pub fn mentions(text: &str) -> Vec<(String, u32)> {
    location_re()
        .captures_iter(text)
        .filter_map(|c| Some((c[1].to_string(), c[2].parse().ok()?)))
        .collect()
}

/// One location in a stack trace or failure message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub path: String,
    pub line: u32,
    /// Node and JVM traces (`at ...` lines) list the innermost call first; Python lists it last.
    pub innermost_first: bool,
}

/// Every location in `text`, in text order: Python `File "...", line N`, JVM frames (turned into
/// a package path: `com/example/FooTest.java`), and `path:line[:col]` as pytest, node, Rust
/// panics, Go tests and compilers write them.
pub fn frames(text: &str) -> Vec<Frame> {
    // ESM stacks write `file:///abs/path.mjs:3:9`.
    let text = text.replace("file://", " ");
    let mut found: Vec<(usize, Frame)> = Vec::new();
    let at_line = |pos: usize| {
        let start = text[..pos].rfind('\n').map_or(0, |i| i + 1);
        text[start..].trim_start().starts_with("at ")
    };
    for c in python_re().captures_iter(&text) {
        if let Ok(line) = c[2].parse() {
            found.push((
                c.get(0).map_or(0, |m| m.start()),
                Frame {
                    path: c[1].to_string(),
                    line,
                    innermost_first: false,
                },
            ));
        }
    }
    let mut java_spans = Vec::new();
    for c in java_re().captures_iter(&text) {
        let Ok(line) = c[3].parse() else { continue };
        let class = &c[1];
        // Drop the class (and any nested `$Inner`): what is left is the package.
        let package: Vec<&str> = class.split('.').collect();
        let dir = package[..package.len().saturating_sub(1)].join("/");
        let path = if dir.is_empty() {
            c[2].to_string()
        } else {
            format!("{dir}/{}", &c[2])
        };
        let m = c.get(0).expect("whole match");
        java_spans.push(m.range());
        found.push((
            m.start(),
            Frame {
                path,
                line,
                innermost_first: true,
            },
        ));
    }
    for c in location_re().captures_iter(&text) {
        let m = c.get(1).expect("path group");
        if java_spans.iter().any(|r| r.contains(&m.start())) {
            continue;
        }
        if let Ok(line) = c[2].parse() {
            found.push((
                m.start(),
                Frame {
                    path: m.as_str().to_string(),
                    line,
                    innermost_first: at_line(m.start()),
                },
            ));
        }
    }
    found.sort_by_key(|(pos, _)| *pos);
    found.into_iter().map(|(_, f)| f).collect()
}

/// The files of the project as git tracks them (`git ls-files`), to map trace paths onto.
#[derive(Debug, Clone, Default)]
pub struct RepoFiles {
    all: HashSet<String>,
    /// File name -> tracked paths with that name.
    by_name: HashMap<String, Vec<String>>,
}

impl RepoFiles {
    pub fn new<I: IntoIterator<Item = String>>(files: I) -> RepoFiles {
        let mut r = RepoFiles::default();
        for f in files {
            let name = f.rsplit('/').next().unwrap_or(&f).to_string();
            r.by_name.entry(name).or_default().push(f.clone());
            r.all.insert(f);
        }
        r
    }

    /// `git ls-files` in `root` (paths relative to it); `None` outside a git work tree.
    pub fn from_git(root: &Path) -> Option<RepoFiles> {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(root)
            .args(["ls-files", "-z", "--cached"])
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        Some(RepoFiles::new(
            out.stdout
                .split(|b| *b == 0)
                .filter(|p| !p.is_empty())
                .map(|p| String::from_utf8_lossy(p).into_owned()),
        ))
    }

    /// The tracked file `path` names: itself, or the only tracked file whose trailing path
    /// components match (an absolute path from another machine, a Java package path, a bare
    /// file name from `go test`). Ambiguous suffixes resolve to nothing rather than a guess.
    pub fn resolve(&self, path: &str, root: &Path) -> Option<String> {
        let rel = relativize(path, root);
        if self.all.contains(&rel) {
            return Some(rel);
        }
        let parts: Vec<&str> = rel
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        let name = parts.last()?;
        let candidates = self.by_name.get(*name)?;
        for k in (1..=parts.len()).rev() {
            if parts[parts.len() - k..].contains(&"..") {
                continue;
            }
            let suffix = parts[parts.len() - k..].join("/");
            let hits: Vec<&String> = candidates
                .iter()
                .filter(|c| **c == suffix || c.ends_with(&format!("/{suffix}")))
                .collect();
            match hits.len() {
                0 => continue,
                1 => return Some(hits[0].clone()),
                _ => return None,
            }
        }
        None
    }
}

/// A path as the repository sees it: relative to `root` when under it, `/` separators.
pub fn relativize(path: &str, root: &Path) -> String {
    let p = path.replace('\\', "/");
    let root_s = root.to_string_lossy().replace('\\', "/");
    let root_s = root_s.trim_end_matches('/');
    match p.strip_prefix(root_s) {
        Some(rest) if rest.starts_with('/') => rest.trim_start_matches('/').to_string(),
        _ => p.trim_start_matches("./").to_string(),
    }
}

/// File and line to annotate for a failing test, checking paths against the file system only.
pub fn locate(c: &TestCase, root: &Path) -> (Option<String>, Option<u32>) {
    locate_in(c, root, None)
}

/// File and line to annotate for a failing test. With `files` (what git tracks), trace paths are
/// mapped onto tracked files; without, a path counts when it exists under `root`.
pub fn locate_in(
    c: &TestCase,
    root: &Path,
    files: Option<&RepoFiles>,
) -> (Option<String>, Option<u32>) {
    let mut found = frames(&c.detail.text);
    if let Some(m) = &c.message {
        found.extend(frames(m));
    }
    let resolve = |p: &str| -> Option<String> {
        match files {
            Some(f) => f.resolve(p, root),
            None => {
                let p = relativize(p, root);
                (!Path::new(&p).is_absolute() && !p.contains("..") && root.join(&p).is_file())
                    .then_some(p)
            }
        }
    };
    // Innermost frame among those matching: first for `at` traces, last for Python's.
    let innermost = |hits: Vec<(String, &Frame)>| -> Option<(String, u32)> {
        let pick = if hits.iter().any(|(_, f)| f.innermost_first) {
            hits.first()
        } else {
            hits.last()
        };
        pick.map(|(p, f)| (p.clone(), f.line))
    };
    if let Some(file) = &c.file {
        let file = files
            .and_then(|f| f.resolve(file, root))
            .unwrap_or_else(|| relativize(file, root));
        // pytest's `line` attribute is the (0-based) line of the `def`; the failing line is in
        // the traceback, so prefer a frame in the same file.
        let same: Vec<(String, &Frame)> = found
            .iter()
            .filter_map(|f| {
                let p = resolve(&f.path).unwrap_or_else(|| relativize(&f.path, root));
                (p == file).then_some((p, f))
            })
            .collect();
        if let Some((_, l)) = innermost(same) {
            return (Some(file), Some(l));
        }
        return (Some(file), c.line);
    }
    // No file attribute: a frame in the file the class name points at (tests.test_x ->
    // tests/test_x.py, com.example.FooTest -> src/test/java/com/example/FooTest.java).
    let guess = c.classname.replace('.', "/");
    let resolved: Vec<(String, &Frame)> = found
        .iter()
        .map(|f| (resolve(&f.path), f))
        .map(|(p, f)| (p.unwrap_or_else(|| relativize(&f.path, root)), f))
        .collect();
    if !guess.is_empty() {
        let hits: Vec<(String, &Frame)> = resolved
            .iter()
            .filter(|(p, _)| {
                p.rsplit_once('.')
                    .is_some_and(|(stem, _)| stem == guess || stem.ends_with(&format!("/{guess}")))
            })
            .cloned()
            .collect();
        if let Some(hit) = innermost(hits) {
            return (Some(hit.0), Some(hit.1));
        }
    }
    // Otherwise the first frame in a project file.
    if let Some(f) = found
        .iter()
        .find_map(|f| resolve(&f.path).map(|p| (p, f.line)))
    {
        return (Some(f.0), Some(f.1));
    }
    (None, None)
}
