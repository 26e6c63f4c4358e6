//! The GitHub Actions runtime, and its stand-in everywhere else.
//!
//! Every davit binary talks to the runner through this crate: inputs come from `INPUT_*`
//! variables, outputs go to `$GITHUB_OUTPUT` in heredoc form with a random delimiter (so a value
//! cannot end the heredoc early and forge another output, T03), the markdown summary is appended to
//! `$GITHUB_STEP_SUMMARY`, and groups, annotations and masks are workflow commands with their data
//! escaped. Where those files are absent (a laptop, or `act`, which sets no summary file) the same
//! events print as a readable timeline on stderr, so a local run shows what a runner would.

use std::env;
use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Mutex;

pub mod trust;

/// Severity of an annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Notice,
    Warning,
    Error,
}

impl Level {
    fn command(self) -> &'static str {
        match self {
            Level::Notice => "notice",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

/// A message attached to a file and line in the pull request / run view.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Annotation {
    pub title: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub message: String,
}

/// Where runtime events go.
pub struct Gha {
    on_runner: bool,
    output_file: Option<PathBuf>,
    summary_file: Option<PathBuf>,
    /// Workflow commands (on a runner) or the readable timeline (elsewhere).
    sink: Mutex<Box<dyn Write + Send>>,
}

impl Gha {
    /// Read the runner's environment. Workflow commands go to stdout on a runner (that is where
    /// the runner reads them); the local timeline goes to stderr so stdout stays data.
    pub fn from_env() -> Self {
        let on_runner = env::var("GITHUB_ACTIONS").as_deref() == Ok("true");
        let sink: Box<dyn Write + Send> = if on_runner {
            Box::new(io::stdout())
        } else {
            Box::new(io::stderr())
        };
        Gha {
            on_runner,
            output_file: non_empty_path("GITHUB_OUTPUT"),
            summary_file: non_empty_path("GITHUB_STEP_SUMMARY"),
            sink: Mutex::new(sink),
        }
    }

    /// A runtime with explicit files and sink, for tests.
    pub fn new(
        on_runner: bool,
        output_file: Option<PathBuf>,
        summary_file: Option<PathBuf>,
        sink: Box<dyn Write + Send>,
    ) -> Self {
        Gha {
            on_runner,
            output_file,
            summary_file,
            sink: Mutex::new(sink),
        }
    }

    pub fn on_runner(&self) -> bool {
        self.on_runner
    }

    /// The action input `name` as the runner passes it (`INPUT_<NAME>`), trimmed; empty is None.
    pub fn input(name: &str) -> Option<String> {
        let key = format!("INPUT_{}", name.replace(' ', "_").to_uppercase());
        env::var(key)
            .ok()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    fn emit(&self, line: &str) {
        let line = davit_core::redact::redact(line);
        let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(sink, "{line}");
        let _ = sink.flush();
    }

    /// Set a step output. Multi-line values and values containing `=` or the delimiter are safe:
    /// the heredoc delimiter is random per write and checked against the value.
    pub fn set_output(&self, name: &str, value: &str) -> io::Result<()> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("output name {name:?} must be letters, digits, '_' or '-'"),
            ));
        }
        match &self.output_file {
            Some(path) => {
                let delimiter = loop {
                    let d = random_delimiter();
                    if !value.contains(&d) {
                        break d;
                    }
                };
                let record = format!("{name}<<{delimiter}\n{value}\n{delimiter}\n");
                let mut f = OpenOptions::new().append(true).create(true).open(path)?;
                // One write call per record so that a concurrent writer cannot interleave.
                f.write_all(record.as_bytes())?;
                f.flush()
            }
            None => {
                self.emit(&format!("output {name}={}", value.replace('\n', "\\n")));
                Ok(())
            }
        }
    }

    /// Append markdown to the step summary, or print it when there is no summary file.
    /// Secret values are masked here whatever the caller built (T46); untrusted text inside it
    /// must already be escaped with `davit_core::text::markdown` (T47).
    pub fn summary(&self, markdown: &str) -> io::Result<()> {
        let markdown = &*davit_core::redact::redact(markdown);
        match &self.summary_file {
            Some(path) => {
                let mut f = OpenOptions::new().append(true).create(true).open(path)?;
                f.write_all(markdown.as_bytes())?;
                if !markdown.ends_with('\n') {
                    f.write_all(b"\n")?;
                }
                Ok(())
            }
            None => {
                self.emit(markdown.trim_end());
                Ok(())
            }
        }
    }

    /// Start a collapsed group (`::group::`) or a titled section locally.
    pub fn group_start(&self, title: &str) {
        if self.on_runner {
            self.emit(&format!("::group::{}", escape_data(title)));
        } else {
            self.emit(&format!("── {title} ──"));
        }
    }

    pub fn group_end(&self) {
        if self.on_runner {
            self.emit("::endgroup::");
        }
    }

    /// Print raw text inside a group (check output, command logs).
    pub fn log(&self, text: &str) {
        let text = &*davit_core::redact::redact(text);
        let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        if self.on_runner {
            // A line of tool output that looks like a workflow command must not be run as one.
            for line in text.lines() {
                if line.trim_start().starts_with("::") {
                    let _ = writeln!(sink, " {line}");
                } else {
                    let _ = writeln!(sink, "{line}");
                }
            }
        } else {
            let _ = write!(sink, "{text}");
            if !text.ends_with('\n') && !text.is_empty() {
                let _ = writeln!(sink);
            }
        }
        let _ = sink.flush();
    }

    /// An annotation at file:line when known.
    pub fn annotate(&self, level: Level, a: &Annotation) {
        if self.on_runner {
            let mut props = Vec::new();
            if let Some(t) = &a.title {
                props.push(format!("title={}", escape_property(t)));
            }
            if let Some(f) = &a.file {
                props.push(format!("file={}", escape_property(f)));
            }
            if let Some(l) = a.line {
                props.push(format!("line={l}"));
            }
            let props = if props.is_empty() {
                String::new()
            } else {
                format!(" {}", props.join(","))
            };
            self.emit(&format!(
                "::{}{props}::{}",
                level.command(),
                escape_data(&a.message)
            ));
        } else {
            let mut s = format!("{}: ", level.command());
            if let Some(f) = &a.file {
                let _ = write!(s, "{f}");
                if let Some(l) = a.line {
                    let _ = write!(s, ":{l}");
                }
                s.push_str(": ");
            }
            if let Some(t) = &a.title {
                let _ = write!(s, "{t}: ");
            }
            s.push_str(&a.message);
            self.emit(&s);
        }
    }

    /// Ask the runner to mask a value in all later log lines.
    pub fn mask(&self, value: &str) {
        if self.on_runner {
            for line in value.lines().filter(|l| !l.trim().is_empty()) {
                self.emit(&format!("::add-mask::{}", escape_data(line)));
            }
        }
    }
}

fn non_empty_path(var: &str) -> Option<PathBuf> {
    env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn random_delimiter() -> String {
    let bytes: [u8; 16] = rand::random();
    let mut s = String::from("ghadelimiter_");
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Escape the message part of a workflow command.
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escape a property value of a workflow command.
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// Parse a `$GITHUB_OUTPUT` file the way the runner does (heredoc and `name=value` forms).
/// Used by tests and by the local pipeline to pass outputs between steps.
pub fn parse_output_file(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some((name, delim)) = line.split_once("<<") {
            let mut value = Vec::new();
            for l in lines.by_ref() {
                if l == delim {
                    break;
                }
                value.push(l);
            }
            out.push((name.to_string(), value.join("\n")));
        } else if let Some((name, value)) = line.split_once('=') {
            out.push((name.to_string(), value.to_string()));
        }
    }
    out
}

/// The binary edge: print an error with its hint (and annotate it on a runner), return the code.
///
/// Every davit binary ends through here so errors look the same everywhere: `error: ...` and a
/// `hint: ...` line on stderr, an error annotation in the run view, and the documented exit code.
pub fn finish(result: Result<davit_core::Exit, davit_core::Failure>) -> std::process::ExitCode {
    match result {
        Ok(exit) => exit.into(),
        Err(mut f) => {
            // The last place an error passes before it is shown: secret values masked (T46),
            // control characters escaped (T47).
            f.message = shown(&f.message);
            f.hint = f.hint.as_deref().map(shown);
            eprintln!("error: {}", f.message);
            if let Some(h) = &f.hint {
                eprintln!("hint: {h}");
            }
            let gha = Gha::from_env();
            if gha.on_runner() {
                gha.annotate(
                    Level::Error,
                    &Annotation {
                        title: Some("davit".into()),
                        message: match &f.hint {
                            Some(h) => format!("{}\nhint: {h}", f.message),
                            None => f.message.clone(),
                        },
                        ..Default::default()
                    },
                );
            }
            f.exit.into()
        }
    }
}

/// Text as it may be shown: secret values masked, control characters other than newlines and
/// tabs escaped.
pub fn shown(s: &str) -> String {
    davit_core::text::lines(&davit_core::redact::redact(s)).into_owned()
}

/// Forget `DAVIT_*` variables whose value is empty.
///
/// An action passes every input to the binary as an environment variable, set or not, and an
/// unset input arrives as an empty string. clap would read `DAVIT_WATCH_SECS=""` as a given,
/// unparsable value; removing empty ones restores "not given" so defaults apply.
///
/// Call it first thing in a synchronous `main`, before any thread (a tokio runtime) exists:
/// changing the environment is only sound while the process is single-threaded.
pub fn drop_empty_inputs() {
    let empty: Vec<std::ffi::OsString> = env::vars_os()
        .filter(|(k, v)| v.is_empty() && k.to_string_lossy().starts_with("DAVIT_"))
        .map(|(k, _)| k)
        .collect();
    for k in empty {
        // SAFETY: documented precondition: no other thread exists yet, so nothing can read the
        // environment concurrently.
        #[allow(unsafe_code)]
        unsafe {
            env::remove_var(k)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    impl Buf {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn t03_output_injection_keeps_value_whole_and_adds_no_output() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let gha = Gha::new(true, Some(out.clone()), None, Box::new(Buf::default()));
        let evil = "v1\ninjected=yes\nghadelimiter_00\nEOF\nother<<EOF\nx";
        gha.set_output("version", evil).unwrap();
        gha.set_output("digest", "sha256:abc").unwrap();
        let parsed = parse_output_file(&std::fs::read_to_string(&out).unwrap());
        assert_eq!(
            parsed,
            vec![
                ("version".to_string(), evil.to_string()),
                ("digest".to_string(), "sha256:abc".to_string())
            ]
        );
        assert!(gha.set_output("a\nb", "x").is_err());
        assert!(gha.set_output("a<<b", "x").is_err());
    }

    #[test]
    fn annotations_escape_data_and_properties() {
        let buf = Buf::default();
        let gha = Gha::new(true, None, None, Box::new(buf.clone()));
        gha.annotate(
            Level::Error,
            &Annotation {
                title: Some("test_x, failed: 1".into()),
                file: Some("tests/a.py".into()),
                line: Some(12),
                message: "assert 1 == 2\n100% wrong".into(),
            },
        );
        assert_eq!(
            buf.text(),
            "::error title=test_x%2C failed%3A 1,file=tests/a.py,line=12::assert 1 == 2%0A100%25 wrong\n"
        );
    }

    #[test]
    fn tool_output_cannot_issue_workflow_commands() {
        let buf = Buf::default();
        let gha = Gha::new(true, None, None, Box::new(buf.clone()));
        gha.log("ok\n::add-mask::x\n::set-env name=A::b");
        assert_eq!(buf.text(), "ok\n ::add-mask::x\n ::set-env name=A::b\n");
    }

    #[test]
    fn without_files_everything_prints() {
        let buf = Buf::default();
        let gha = Gha::new(false, None, None, Box::new(buf.clone()));
        gha.set_output("version", "v2").unwrap();
        gha.summary("## Deploy\nok").unwrap();
        gha.group_start("tests");
        gha.annotate(
            Level::Warning,
            &Annotation {
                file: Some("a.rs".into()),
                line: Some(3),
                message: "slow".into(),
                ..Default::default()
            },
        );
        gha.mask("secret");
        assert_eq!(
            buf.text(),
            "output version=v2\n## Deploy\nok\n── tests ──\nwarning: a.rs:3: slow\n"
        );
    }
}
