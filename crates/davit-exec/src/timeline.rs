//! The readable timeline: plan events as timestamped lines on stderr.
//!
//! On a laptop or under act this is what a person watches; on a runner the same lines land in
//! the job log. Times are relative to the start of the command so a reader sees where the seconds
//! went (health gate, switch, verification).

use crate::runner::{Event, Observer};
use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

pub struct Timeline {
    started: Instant,
    sink: Mutex<Box<dyn Write + Send>>,
}

impl Default for Timeline {
    fn default() -> Self {
        Timeline::new(Box::new(std::io::stderr()))
    }
}

impl Timeline {
    pub fn new(sink: Box<dyn Write + Send>) -> Self {
        Timeline {
            started: Instant::now(),
            sink: Mutex::new(sink),
        }
    }

    /// A line of the timeline from outside a plan ("approval granted", "rolled back"). Secret
    /// values are masked and control characters escaped: step summaries and errors carry text
    /// from hooks, actors and versions (T46, T47).
    pub fn note(&self, text: &str) {
        let t = self.started.elapsed().as_secs_f32();
        let text = davit_core::redact::redact(text);
        let text = davit_core::text::lines(&text);
        let mut s = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(s, "[{t:>7.2}s] {text}");
    }

    pub fn elapsed(&self) -> std::time::Duration {
        self.started.elapsed()
    }
}

impl Observer for Timeline {
    fn event(&self, e: &Event<'_>) {
        match e {
            Event::StepStarted { .. } => {}
            Event::StepDone {
                index,
                summary,
                elapsed,
            } => {
                if !summary.is_empty() {
                    self.note(&format!(
                        "  ✓ {index:>2}. {summary} ({:.2}s)",
                        elapsed.as_secs_f32()
                    ))
                }
            }
            Event::StepFailed {
                index,
                summary,
                error,
            } => self.note(&format!("  ✗ {index:>2}. {summary}: {error}")),
            Event::Undoing { summary } => self.note(&format!("  ↶ undo: {summary}")),
            Event::UndoFailed { summary, error } => {
                self.note(&format!("  ! undo of {summary} failed: {error}"))
            }
            Event::Note { text } => self.note(&format!("       {text}")),
        }
    }
}
