//! Typed plan steps: what a strategy wants done, as data.
//!
//! A strategy returns a [`Plan`]; it never spawns a process or opens a socket. The executor in
//! `davit-exec` walks the plan step by step and, when a step fails, runs the `undo` steps of the
//! steps already done in reverse order. That is how "a failed health gate removes the new color"
//! and "a switch that does not verify is reverted" are expressed once, in the plan, and shown by
//! `--dry-run` before anything happens.
//!
//! Secrets can reach a process only through environment values or stdin ([`FileBody::Secret`]);
//! `Cmd::args` are plain strings by type, because argv is readable by every user of the host
//! through `/proc/*/cmdline`.

use crate::secret::{REDACTED, Secret};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

/// A value handed to a process or written to a file: plain, or secret (rendered `[REDACTED]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum FileBody {
    Plain(String),
    Secret(Secret<String>),
}

impl FileBody {
    pub fn expose(&self) -> &str {
        match self {
            FileBody::Plain(s) => s,
            FileBody::Secret(s) => s.expose(),
        }
    }
    fn render(&self) -> &str {
        match self {
            FileBody::Plain(s) => s,
            FileBody::Secret(_) => REDACTED,
        }
    }
}

/// Arguments are plain strings on purpose; see the module docs.
pub type Arg = String;

/// One process to run: program, argv, environment, stdin, working directory, timeout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cmd {
    pub program: String,
    pub args: Vec<Arg>,
    pub env: Vec<(String, FileBody)>,
    pub stdin: Option<FileBody>,
    pub cwd: Option<PathBuf>,
    pub timeout: Option<Duration>,
}

impl Cmd {
    pub fn new(program: impl Into<String>) -> Self {
        Cmd {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
            cwd: None,
            timeout: None,
        }
    }
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }
    pub fn args<I, S>(mut self, items: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(items.into_iter().map(Into::into));
        self
    }
    pub fn env(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.env.push((k.into(), FileBody::Plain(v.into())));
        self
    }
    pub fn secret_env(mut self, k: impl Into<String>, v: Secret<String>) -> Self {
        self.env.push((k.into(), FileBody::Secret(v)));
        self
    }
    pub fn stdin(mut self, body: FileBody) -> Self {
        self.stdin = Some(body);
        self
    }
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }

    /// A shell-like one-liner for humans: env (secrets redacted), program and quoted args.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.env {
            let _ = write!(out, "{k}={} ", shell_quote(v.render()));
        }
        out.push_str(&shell_quote(&self.program));
        for a in &self.args {
            out.push(' ');
            out.push_str(&shell_quote(a));
        }
        if let Some(s) = &self.stdin {
            let _ = write!(out, " <<< {}", shell_quote(s.render()));
        }
        out
    }
}

/// Quote a word the way a POSIX shell would need it, only when needed, for display.
pub fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%^".contains(c));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// What a health probe must see to count one success.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct ProbeExpect {
    /// Expected HTTP status (default 200).
    pub status: u16,
    /// The body must contain this text.
    pub body_contains: Option<String>,
    /// A JSON field (dotted path) that must equal a value, e.g. `("version", "v2")`.
    pub json_field: Option<(String, String)>,
    /// A response header that must equal a value, e.g. `("x-app-version", "v2")`.
    pub header: Option<(String, String)>,
}

/// An HTTP probe: N consecutive successes within an overall deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Probe {
    pub url: String,
    pub expect: ProbeExpect,
    pub per_try_timeout: Duration,
    pub interval: Duration,
    pub consecutive: u32,
    pub deadline: Duration,
    /// The `Host` header to send (the name the app answers to); None: the URL's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

impl Probe {
    pub fn render(&self) -> String {
        let mut s = format!(
            "GET {}{} expecting {}",
            self.url,
            self.host
                .as_deref()
                .map(|h| format!(" (Host: {h})"))
                .unwrap_or_default(),
            if self.expect.status == 0 {
                200
            } else {
                self.expect.status
            }
        );
        if let Some(b) = &self.expect.body_contains {
            let _ = write!(s, ", body contains {b:?}");
        }
        if let Some((k, v)) = &self.expect.json_field {
            let _ = write!(s, ", json .{k} == {v:?}");
        }
        if let Some((k, v)) = &self.expect.header {
            let _ = write!(s, ", header {k}: {v}");
        }
        let _ = write!(
            s,
            "; {} in a row, every {}ms, {}ms per try, within {}s",
            self.consecutive,
            self.interval.as_millis(),
            self.per_try_timeout.as_millis(),
            self.deadline.as_secs()
        );
        s
    }
}

/// How a container that serves no HTTP (a worker, a scheduler) is known to be ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum ReadyCheck {
    /// Docker reports the container's health check healthy.
    Healthy,
    /// This command, run in the container (`docker exec`), exits 0.
    Command { run: Vec<String> },
    /// The container is still running, not restarted, this long after it started (and healthy,
    /// when its image has a health check).
    UpFor { secs: u64 },
}

/// Wait for a container to be ready; a container that exits or restarts fails at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerReady {
    pub container: String,
    pub check: ReadyCheck,
    pub interval: Duration,
    pub deadline: Duration,
}

impl ContainerReady {
    pub fn render(&self) -> String {
        let how = match &self.check {
            ReadyCheck::Healthy => "its Docker health check says healthy".to_string(),
            ReadyCheck::Command { run } => format!(
                "`{}` exits 0 in it",
                run.iter()
                    .map(|a| shell_quote(a))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            ReadyCheck::UpFor { secs } => {
                format!("it has stayed up {secs}s (and is healthy, if it has a health check)")
            }
        };
        format!(
            "wait until container {} is ready: {how}; within {}s",
            self.container,
            self.deadline.as_secs()
        )
    }
}

/// Wait until an nginx has no workers left from an earlier configuration.
///
/// `nginx -s reload` is graceful: new workers take new connections, and the old ones finish the
/// requests they hold, still sending them to the upstream of the configuration they were started
/// with. Stopping or removing that upstream before they finish cuts those requests. So a plan
/// waits for this before it stops or replaces a color that may have served until a recent reload
/// (its own, or one of a run killed right after its reload: T42, T49).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProxyDrain {
    /// The nginx master's pid file; no file or no process means no workers to wait for.
    pub pid_file: PathBuf,
    /// How many workers one generation has (`worker_processes` in the main file).
    pub workers: u32,
    pub interval: Duration,
    pub deadline: Duration,
}

impl ProxyDrain {
    pub fn render(&self) -> String {
        format!(
            "wait until the workers of the nginx in {} that still run an earlier configuration have finished their requests; within {}s",
            self.pid_file.display(),
            self.deadline.as_secs()
        )
    }
}

/// One typed action on a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Step {
    /// Run a process; a non-zero exit fails the step.
    Exec(Cmd),
    /// Run a process whose failure is tolerated (cleanup of something that may not exist).
    ExecIgnoringFailure(Cmd),
    /// Write a file atomically (temporary file in the same directory, fsync, rename) with a mode.
    WriteFile {
        path: PathBuf,
        body: FileBody,
        mode: u32,
    },
    /// Append one line to a file (the release ledger), creating it if needed.
    AppendLine { path: PathBuf, line: String },
    /// Atomically rename a file into place.
    Rename { from: PathBuf, to: PathBuf },
    /// Copy a file byte for byte (keeping a backup before a switch).
    Copy { from: PathBuf, to: PathBuf },
    /// Remove a file if it exists.
    RemoveFile { path: PathBuf },
    /// Create a directory and its parents.
    MkDir { path: PathBuf, mode: u32 },
    /// Wait until an HTTP probe passes `consecutive` times in a row before its deadline.
    WaitHttp(Probe),
    /// Wait until a non-HTTP container (worker, scheduler, service) is ready.
    WaitReady(ContainerReady),
    /// Wait until nginx workers of an earlier configuration have finished (see [`ProxyDrain`]).
    WaitDrained(ProxyDrain),
    /// An operation davit performs that is more than one command (see [`Action`]).
    Action(Action),
}

/// An operation davit itself performs on the host that is more than one command. It is a plan
/// step like any other (shown by the dry run, run in order, undone behind), and the runner
/// hands it to the caller, which knows how (`davit_exec::runner::Actions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Put an image on the host, retrying a bounded number of times what can pass by itself
    /// (a registry hiccup) and failing at once on what cannot (an unknown tag, denied).
    Pull { image: String },
    /// Take a database backup and verify it before migrations can run (no verified backup,
    /// no migration); `label` names what it is before.
    Backup { label: String },
    /// The probe through the proxy on every swarm node that is ready when the step runs (the
    /// probe's URL is the manager's own, on 127.0.0.1; each node's address replaces it). The
    /// node list is read at run time because the nodes a failed update left reachable are only
    /// known then.
    ProbeSwarmNodes { probe: Box<Probe> },
}

impl Action {
    pub fn render(&self) -> String {
        match self {
            Action::Pull { image } => {
                format!("pull {image} (transient registry errors retried, bounded)")
            }
            Action::Backup { label } => {
                format!("back up the database ({label}) and verify the backup")
            }
            Action::ProbeSwarmNodes { probe } => format!(
                "on every ready swarm node (the manager at 127.0.0.1, the others at their swarm address): probe {}",
                probe.render()
            ),
        }
    }
}

impl Step {
    pub fn render(&self) -> String {
        match self {
            Step::Exec(c) => format!("$ {}", c.render()),
            Step::ExecIgnoringFailure(c) => format!("$ {}  (failure ignored)", c.render()),
            Step::WriteFile { path, body, mode } => {
                let size = body.expose().len();
                let what = match body {
                    FileBody::Plain(_) => format!("{size} bytes"),
                    FileBody::Secret(_) => "secret contents".to_string(),
                };
                format!("write {} ({what}, mode {mode:04o})", path.display())
            }
            Step::AppendLine { path, line } => format!("append to {}: {line}", path.display()),
            Step::Rename { from, to } => format!("rename {} -> {}", from.display(), to.display()),
            Step::Copy { from, to } => format!("copy {} -> {}", from.display(), to.display()),
            Step::RemoveFile { path } => format!("remove {}", path.display()),
            Step::MkDir { path, mode } => format!("mkdir -p {} (mode {mode:04o})", path.display()),
            Step::WaitHttp(p) => format!("probe {}", p.render()),
            Step::WaitReady(r) => r.render(),
            Step::WaitDrained(d) => d.render(),
            Step::Action(a) => a.render(),
        }
    }
}

/// A step with the human reason for it and the steps that revert it if a later step fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedStep {
    pub summary: String,
    pub step: Step,
    pub undo: Vec<Step>,
    /// A check of the release (health probes are checks by nature): when it fails, the release
    /// is rejected (exit 1), rather than the host being at fault (exit 3).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub check: bool,
    /// A record of what happened (the ledger line): when it fails, the runner carries on and
    /// reports it, because a release that went live must not be undone for want of a record.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub best_effort: bool,
}

/// An ordered list of steps for one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Plan {
    pub title: String,
    pub steps: Vec<PlannedStep>,
}

impl Plan {
    pub fn new(title: impl Into<String>) -> Self {
        Plan {
            title: title.into(),
            steps: Vec::new(),
        }
    }
    /// Add a step with no undo.
    pub fn push(&mut self, summary: impl Into<String>, step: Step) -> &mut Self {
        self.steps.push(PlannedStep {
            summary: summary.into(),
            step,
            undo: Vec::new(),
            check: false,
            best_effort: false,
        });
        self
    }
    /// Add a step whose failure is reported, not fatal (see [`PlannedStep::best_effort`]).
    pub fn push_best_effort(&mut self, summary: impl Into<String>, step: Step) -> &mut Self {
        self.push(summary, step);
        if let Some(last) = self.steps.last_mut() {
            last.best_effort = true;
        }
        self
    }
    /// The steps of `other` after this plan's.
    pub fn extend(&mut self, other: Plan) -> &mut Self {
        self.steps.extend(other.steps);
        self
    }
    /// Add a step that checks the release (see [`PlannedStep::check`]).
    pub fn push_check(&mut self, summary: impl Into<String>, step: Step) -> &mut Self {
        self.push(summary, step);
        if let Some(last) = self.steps.last_mut() {
            last.check = true;
        }
        self
    }
    /// Add a step whose effect is reverted by `undo` if any later step fails.
    pub fn push_with_undo(
        &mut self,
        summary: impl Into<String>,
        step: Step,
        undo: Vec<Step>,
    ) -> &mut Self {
        self.steps.push(PlannedStep {
            summary: summary.into(),
            step,
            undo,
            check: false,
            best_effort: false,
        });
        self
    }

    /// Every program the plan will run, for a single up-front "missing tools" check.
    pub fn programs(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut add = |s: &Step| {
            if let Step::Exec(c) | Step::ExecIgnoringFailure(c) = s
                && !out.contains(&c.program)
            {
                out.push(c.program.clone());
            }
        };
        for ps in &self.steps {
            add(&ps.step);
            ps.undo.iter().for_each(&mut add);
        }
        out
    }

    /// The plan as numbered lines, secrets redacted: what `--dry-run` prints.
    pub fn render(&self) -> String {
        let mut out = format!("plan: {}\n", self.title);
        for (i, ps) in self.steps.iter().enumerate() {
            let _ = writeln!(out, "{:>2}. {}", i + 1, ps.summary);
            let _ = writeln!(out, "      {}", ps.step.render());
            for u in &ps.undo {
                let _ = writeln!(out, "      undo: {}", u.render());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_redacts_secret_env_and_stdin() {
        let c = Cmd::new("docker")
            .args(["login", "--password-stdin", "-u", "bot", "reg.example"])
            .secret_env("TOKEN", Secret::new("s3cr3t".into()))
            .stdin(FileBody::Secret(Secret::new("s3cr3t".into())));
        let r = c.render();
        assert!(!r.contains("s3cr3t"), "{r}");
        assert_eq!(
            r,
            "TOKEN='[REDACTED]' docker login --password-stdin -u bot reg.example <<< '[REDACTED]'"
        );
    }

    #[test]
    fn quoting_keeps_metacharacters_inert_for_display() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("$(id)"), "'$(id)'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn programs_are_listed_once() {
        let mut p = Plan::new("t");
        p.push("a", Step::Exec(Cmd::new("docker")));
        p.push_with_undo(
            "b",
            Step::Exec(Cmd::new("nginx")),
            vec![Step::ExecIgnoringFailure(Cmd::new("docker"))],
        );
        assert_eq!(p.programs(), vec!["docker", "nginx"]);
    }
}
