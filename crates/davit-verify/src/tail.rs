//! Following a log file on the deploy host as it grows, through any [`Executor`].
//!
//! verify runs on the workflow runner and the traffic log is on the deploy host (often over
//! SSH), so the file is read with one small command per poll: the file's inode and size, then
//! the bytes after what was already read. A new inode (logrotate moved the file and nginx
//! reopened a fresh one) or a size below the offset (truncated in place, `copytruncate`) starts
//! again at the beginning of the current file, so rotation loses nothing written after it. A
//! line is only handed out once its newline is there: a line nginx is still writing waits for
//! the next poll.

use davit_core::Cmd;
use davit_exec::Executor;
use std::path::PathBuf;
use std::time::Duration;

/// How far back the first read starts: enough for everything written since the switch
/// (thousands of responses), bounded however long the color's log already is.
pub const BACKLOG_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Debug)]
pub struct Tail {
    path: PathBuf,
    /// The next byte to read, in the file with `inode`.
    offset: u64,
    inode: Option<u64>,
    /// The start of a line whose newline has not been written yet.
    partial: String,
    /// The first read starts mid-file: its first (partial) line is dropped.
    skip_first: bool,
    started: bool,
}

/// What one poll found.
#[derive(Debug, PartialEq)]
pub enum Poll {
    /// Complete new lines (maybe none).
    Lines(Vec<String>),
    /// The file is not there (yet).
    Missing,
}

impl Tail {
    pub fn new(path: PathBuf) -> Self {
        Tail {
            path,
            offset: 0,
            inode: None,
            partial: String::new(),
            skip_first: false,
            started: false,
        }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Read what was appended since the last poll.
    pub async fn poll(&mut self, exec: &dyn Executor) -> Result<Poll, String> {
        // `tail -c +N` counts from 1. The stat and the read are two commands of one shell: a
        // rotation between them is seen by the next poll's inode check.
        // A start of 0 only asks for the inode and size (the first poll, which learns them).
        let script = r#"stat -L -c '%i %s' -- "$1" 2>/dev/null || { echo missing; exit 0; }; [ "$2" = 0 ] || tail -c +"$2" -- "$1""#;
        let start = if self.started { self.offset + 1 } else { 0 };
        let cmd = Cmd::new("sh")
            .args(["-c", script, "davit-tail"])
            .arg(self.path.display().to_string())
            .arg(start.to_string())
            .timeout(Duration::from_secs(10));
        let out = exec.run(&cmd).await.map_err(|e| e.to_string())?;
        if !out.success() {
            return Err(format!(
                "reading {} failed: {}",
                self.path.display(),
                out.stderr.trim()
            ));
        }
        let (head, body) = out.stdout.split_once('\n').unwrap_or((&out.stdout, ""));
        if head.trim() == "missing" {
            return Ok(Poll::Missing);
        }
        let mut it = head.split_whitespace().map(str::parse::<u64>);
        let (Some(Ok(inode)), Some(Ok(size))) = (it.next(), it.next()) else {
            return Err(format!(
                "unexpected stat output for {}: {head}",
                self.path.display()
            ));
        };
        if !self.started {
            self.started = true;
            self.inode = Some(inode);
            self.offset = size.saturating_sub(BACKLOG_BYTES);
            self.skip_first = self.offset > 0;
            return Ok(Poll::Lines(Vec::new()));
        }
        if self.inode != Some(inode) || size < self.offset {
            // Rotated or truncated: read the current file from its start, next poll.
            self.inode = Some(inode);
            self.offset = 0;
            self.partial.clear();
            self.skip_first = false;
            return Ok(Poll::Lines(Vec::new()));
        }
        self.offset += body.len() as u64;
        Ok(Poll::Lines(self.split(body)))
    }

    fn split(&mut self, body: &str) -> Vec<String> {
        self.partial.push_str(body);
        let Some(end) = self.partial.rfind('\n') else {
            return Vec::new();
        };
        let rest = self.partial.split_off(end + 1);
        let complete = std::mem::replace(&mut self.partial, rest);
        let mut lines: Vec<String> = complete.lines().map(str::to_string).collect();
        if std::mem::take(&mut self.skip_first) && !lines.is_empty() {
            lines.remove(0);
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use davit_exec::Local;
    use std::io::Write;

    async fn lines(t: &mut Tail) -> Vec<String> {
        match t.poll(&Local::new()).await.unwrap() {
            Poll::Lines(l) => l,
            Poll::Missing => panic!("missing"),
        }
    }

    #[tokio::test]
    async fn follows_appends_partial_lines_rotation_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("traffic-green.log");
        let mut t = Tail::new(path.clone());
        assert_eq!(t.poll(&Local::new()).await.unwrap(), Poll::Missing);
        std::fs::write(&path, "old 1\nold 2\n").unwrap();
        // The first poll learns where the file ends; a short file is read from its start.
        assert!(lines(&mut t).await.is_empty());
        assert_eq!(lines(&mut t).await, ["old 1", "old 2"]);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"a\nb").unwrap();
        assert_eq!(lines(&mut t).await, ["a"]);
        f.write_all(b"c\n").unwrap();
        assert_eq!(lines(&mut t).await, ["bc"]);
        assert!(lines(&mut t).await.is_empty());
        // Rotation: the file is moved away and a new one written (nginx -s reopen).
        drop(f);
        std::fs::rename(&path, dir.path().join("traffic-green.log.1")).unwrap();
        std::fs::write(&path, "new 1\n").unwrap();
        assert!(lines(&mut t).await.is_empty());
        assert_eq!(lines(&mut t).await, ["new 1"]);
        // Truncation in place (copytruncate), then more lines.
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"x\n")
            .unwrap();
        assert!(lines(&mut t).await.is_empty());
        assert_eq!(lines(&mut t).await, ["x"]);
    }

    #[tokio::test]
    async fn a_long_log_is_read_from_its_last_megabytes_whole_lines_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("traffic-blue.log");
        let line = "y".repeat(99);
        let n = (BACKLOG_BYTES / 100 + 500) as usize;
        std::fs::write(&path, format!("{line}\n").repeat(n)).unwrap();
        let mut t = Tail::new(path);
        assert!(lines(&mut t).await.is_empty());
        let got = lines(&mut t).await;
        assert!(got.iter().all(|l| l == &line), "a torn line was handed out");
        assert!(got.len() < n && got.len() as u64 >= BACKLOG_BYTES / 100 - 1);
    }
}
