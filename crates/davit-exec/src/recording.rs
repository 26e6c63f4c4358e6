//! The recording executor: dry-run and plan tests.
//!
//! It performs nothing and records every operation as a line. Files written during the run are
//! kept in memory so later reads in the same plan see them, and tests can script command outputs
//! and HTTP answers to steer a plan down its failure paths without Docker.

use crate::{ExecError, Executor, HttpResponse, Output};
use async_trait::async_trait;
use davit_core::Cmd;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Default)]
pub struct Recording {
    name: String,
    log: Mutex<Vec<String>>,
    files: Mutex<HashMap<PathBuf, Vec<u8>>>,
    /// (rendered-command prefix, output) answered in order of registration.
    outputs: Mutex<Vec<(String, Output)>>,
    /// (url, responses): each probe consumes the next answer, the last one repeats.
    http: Mutex<HashMap<String, Vec<HttpResponse>>>,
    missing: Vec<String>,
}

impl Recording {
    pub fn new(name: impl Into<String>) -> Self {
        Recording {
            name: name.into(),
            ..Default::default()
        }
    }
    /// Pretend a file exists with these contents.
    pub fn with_file(self, path: impl Into<PathBuf>, contents: impl Into<Vec<u8>>) -> Self {
        self.files
            .lock()
            .unwrap()
            .insert(path.into(), contents.into());
        self
    }
    /// Answer commands whose rendering starts with `prefix` with this output.
    pub fn with_output(self, prefix: impl Into<String>, out: Output) -> Self {
        self.outputs.lock().unwrap().push((prefix.into(), out));
        self
    }
    /// Answer GETs of `url` with these responses in turn (the last one repeats).
    pub fn with_http(self, url: impl Into<String>, answers: Vec<HttpResponse>) -> Self {
        self.http.lock().unwrap().insert(url.into(), answers);
        self
    }
    /// Pretend a program is not installed.
    pub fn without_program(mut self, program: impl Into<String>) -> Self {
        self.missing.push(program.into());
        self
    }
    /// Everything recorded so far, one operation per line.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
    pub fn file(&self, path: &Path) -> Option<Vec<u8>> {
        self.files.lock().unwrap().get(path).cloned()
    }
    fn record(&self, line: String) {
        self.log.lock().unwrap().push(line);
    }
}

#[async_trait]
impl Executor for Recording {
    fn host(&self) -> &str {
        &self.name
    }

    async fn run(&self, cmd: &Cmd) -> Result<Output, ExecError> {
        let rendered = cmd.render();
        self.record(format!("run {rendered}"));
        if self.missing.contains(&cmd.program) {
            return Err(ExecError::Missing {
                host: self.name.clone(),
                program: cmd.program.clone(),
            });
        }
        let outputs = self.outputs.lock().unwrap();
        Ok(outputs
            .iter()
            .find(|(p, _)| rendered.starts_with(p.as_str()))
            .map(|(_, o)| o.clone())
            .unwrap_or_default())
    }

    async fn write_file(&self, path: &Path, contents: &[u8], mode: u32) -> Result<(), ExecError> {
        self.record(format!(
            "write {} ({} bytes, mode {mode:04o})",
            path.display(),
            contents.len()
        ));
        self.files
            .lock()
            .unwrap()
            .insert(path.to_path_buf(), contents.to_vec());
        Ok(())
    }

    async fn create_exclusive(&self, path: &Path, contents: &[u8]) -> Result<bool, ExecError> {
        self.record(format!("create-exclusive {}", path.display()));
        let mut files = self.files.lock().unwrap();
        if files.contains_key(path) {
            return Ok(false);
        }
        files.insert(path.to_path_buf(), contents.to_vec());
        Ok(true)
    }

    async fn append_line(&self, path: &Path, line: &str) -> Result<(), ExecError> {
        self.record(format!("append {} {line}", path.display()));
        let mut files = self.files.lock().unwrap();
        let f = files.entry(path.to_path_buf()).or_default();
        f.extend_from_slice(line.as_bytes());
        f.push(b'\n');
        Ok(())
    }

    async fn read_file(&self, path: &Path) -> Result<Option<Vec<u8>>, ExecError> {
        Ok(self.files.lock().unwrap().get(path).cloned())
    }

    async fn rename(&self, from: &Path, to: &Path) -> Result<(), ExecError> {
        self.record(format!("rename {} -> {}", from.display(), to.display()));
        let mut files = self.files.lock().unwrap();
        if let Some(b) = files.remove(from) {
            files.insert(to.to_path_buf(), b);
        }
        Ok(())
    }

    async fn copy(&self, from: &Path, to: &Path) -> Result<(), ExecError> {
        self.record(format!("copy {} -> {}", from.display(), to.display()));
        let mut files = self.files.lock().unwrap();
        if let Some(b) = files.get(from).cloned() {
            files.insert(to.to_path_buf(), b);
        }
        Ok(())
    }

    async fn remove_file(&self, path: &Path) -> Result<(), ExecError> {
        self.record(format!("remove {}", path.display()));
        self.files.lock().unwrap().remove(path);
        Ok(())
    }

    async fn mkdir(&self, path: &Path, mode: u32) -> Result<(), ExecError> {
        self.record(format!("mkdir {} ({mode:04o})", path.display()));
        Ok(())
    }

    async fn http_get(&self, url: &str, timeout: Duration) -> Result<HttpResponse, ExecError> {
        self.http_get_as(url, None, timeout).await
    }

    async fn http_get_as(
        &self,
        url: &str,
        host: Option<&str>,
        _timeout: Duration,
    ) -> Result<HttpResponse, ExecError> {
        match host {
            Some(h) => self.record(format!("GET {url} (Host: {h})")),
            None => self.record(format!("GET {url}")),
        }
        let mut http = self.http.lock().unwrap();
        match http.get_mut(url) {
            Some(answers) if answers.len() > 1 => Ok(answers.remove(0)),
            Some(answers) if answers.len() == 1 => Ok(answers[0].clone()),
            _ => Ok(HttpResponse {
                status: 200,
                ..Default::default()
            }),
        }
    }

    async fn has_program(&self, program: &str) -> bool {
        !self.missing.iter().any(|m| m == program)
    }
}
