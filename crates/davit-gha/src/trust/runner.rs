//! The run as the runner presents it: its environment variables, the event payload file and
//! the git checkouts the step reads code from, gathered into a [`Trigger`] for [`decide`].
//!
//! The only part of the module that reads the machine; [`guard`] is what every privileged
//! binary calls.

use super::text::{is_sha, printable};
use super::{Checkout, CodeDir, Decision, Trigger, decide, scrutinized};
use davit_core::Failure;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Read the checkout of `dir` with git: `HEAD` and its parents from the commit object.
/// Any failure (no git, no folder, not a repository, no commit) is the reason it is unknown.
pub fn git_checkout(dir: &Path) -> Result<Checkout, String> {
    let run = |args: &[&str]| -> Result<String, String> {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .output()
            .map_err(|e| format!("cannot run git: {e}"))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let first = err.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            return Err(format!("git {} failed: {first}", args[0]));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let head = run(&["rev-parse", "--verify", "HEAD^{commit}"])?
        .trim()
        .to_ascii_lowercase();
    if !is_sha(&head) {
        return Err(format!(
            "git rev-parse printed {:?}, not a commit id",
            printable(&head, 80)
        ));
    }
    let object = run(&["cat-file", "commit", &head])?;
    let parents = object
        .lines()
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.strip_prefix("parent "))
        .map(|p| p.trim().to_ascii_lowercase())
        .collect();
    Ok(Checkout { head, parents })
}

/// Judge the run from its environment (`env` reads a variable). `code_dirs` are folders the
/// step reads code or configuration from besides `$GITHUB_WORKSPACE` (which is always
/// inspected); `read` reads a folder's checkout (normally [`git_checkout`]) and is called only
/// under `pull_request_target`.
pub fn assess(
    env: &dyn Fn(&str) -> Option<String>,
    code_dirs: &[PathBuf],
    read: &dyn Fn(&Path) -> Result<Checkout, String>,
) -> Decision {
    let var = |k: &str| {
        env(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    if var("GITHUB_ACTIONS").as_deref() != Some("true") {
        return Decision::Skipped;
    }
    let Some(event) = var("GITHUB_EVENT_NAME") else {
        return Decision::Skipped;
    };
    if !scrutinized(&event) {
        return Decision::Trusted;
    }
    let text = match var("GITHUB_EVENT_PATH") {
        None => Err("GITHUB_EVENT_PATH is not set".to_string()),
        Some(p) => std::fs::read_to_string(&p).map_err(|e| format!("cannot read it: {e}")),
    };
    let mut code = Vec::new();
    if event == "pull_request_target" {
        code.push(CodeDir {
            label: "$GITHUB_WORKSPACE".into(),
            checkout: match var("GITHUB_WORKSPACE") {
                Some(ws) => read(Path::new(&ws)),
                None => Err("GITHUB_WORKSPACE is not set".into()),
            },
        });
        for d in code_dirs {
            let d = if d.as_os_str().is_empty() {
                Path::new(".")
            } else {
                d.as_path()
            };
            code.push(CodeDir {
                label: printable(&d.display().to_string(), 200),
                checkout: read(d),
            });
        }
    }
    decide(&Trigger {
        event: &event,
        payload: text.as_deref().map_err(String::as_str),
        code: &code,
    })
}

/// The guard every privileged binary calls before it touches production or a registry:
/// `Err` (exit 2) when this run's trigger is untrusted, `Ok` otherwise and off Actions.
/// `action` names what was refused ("deploy", "push an image"); `code_dirs` as in [`assess`].
pub fn guard(action: &str, code_dirs: &[PathBuf]) -> Result<(), Failure> {
    assess(&|k| std::env::var(k).ok(), code_dirs, &git_checkout).into_result(action)
}

/// The folder holding a file the step reads code or configuration from (`davit.toml`), for
/// [`guard`]'s `code_dirs`.
pub fn folder_of(file: &Path) -> PathBuf {
    file.parent().map(Path::to_path_buf).unwrap_or_default()
}
