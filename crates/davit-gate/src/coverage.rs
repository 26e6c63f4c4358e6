//! Line coverage from Cobertura XML and LCOV, and the threshold check on it.
//!
//! The two formats cover nearly every tool a web app uses: coverage.py (`--cov-report=xml`),
//! cargo-llvm-cov, JaCoCo converters and gcovr write Cobertura; c8/nyc/istanbul, cargo-llvm-cov
//! and genhtml users write LCOV. Both are reduced to the same thing, covered and coverable lines
//! per file, so the threshold (total, and optionally per file) means the same whichever tool
//! produced the numbers. Rates are recomputed from the line records rather than trusted from the
//! `line-rate` attributes, because a file listed under several classes (Java inner classes, Python
//! packages split by source root) must count each line once.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use quick_xml::Reader;
use quick_xml::events::Event;
use serde::Serialize;

/// Covered and coverable lines of one file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FileCoverage {
    pub covered: u64,
    pub lines: u64,
}

impl FileCoverage {
    /// Percentage; a file with no coverable lines is fully covered.
    pub fn percent(&self) -> f64 {
        if self.lines == 0 {
            100.0
        } else {
            self.covered as f64 * 100.0 / self.lines as f64
        }
    }
}

/// Coverage of all files from one or more reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Coverage {
    pub files: BTreeMap<String, FileCoverage>,
}

impl Coverage {
    pub fn total(&self) -> FileCoverage {
        self.files
            .values()
            .fold(FileCoverage::default(), |a, f| FileCoverage {
                covered: a.covered + f.covered,
                lines: a.lines + f.lines,
            })
    }

    fn add(&mut self, per_line: HashMap<String, HashMap<u32, bool>>) {
        for (file, lines) in per_line {
            let e = self.files.entry(file).or_default();
            e.lines += lines.len() as u64;
            e.covered += lines.values().filter(|h| **h).count() as u64;
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CoverageError {
    #[error("cannot read coverage report {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: malformed coverage report at byte {offset}: {message}")]
    Malformed {
        path: PathBuf,
        offset: u64,
        message: String,
    },
    #[error("{path}: not a coverage report (expected Cobertura XML or LCOV)")]
    Unknown { path: PathBuf },
}

/// Read a Cobertura or LCOV file (told apart by content, not name) into `into`.
pub fn load(path: &Path, into: &mut Coverage) -> Result<(), CoverageError> {
    let io = |source| CoverageError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut r = BufReader::new(File::open(path).map_err(io)?);
    let first = r.fill_buf().map_err(io)?;
    let start = first
        .iter()
        .position(|b| !b.is_ascii_whitespace() && *b != 0xEF && *b != 0xBB && *b != 0xBF);
    match start.map(|i| first[i]) {
        Some(b'<') => cobertura(path, r, into),
        Some(_) => lcov(path, r, into),
        None => Err(CoverageError::Unknown {
            path: path.to_path_buf(),
        }),
    }
}

fn cobertura(path: &Path, r: impl BufRead, into: &mut Coverage) -> Result<(), CoverageError> {
    let mut reader = Reader::from_reader(r);
    let mut buf = Vec::new();
    // Element names from the root; `<line>` counts only as `class > lines > line` (the copies
    // under `class > methods > method > lines` would count lines twice).
    let mut stack: Vec<Vec<u8>> = Vec::new();
    let mut file: Option<String> = None;
    let mut per_line: HashMap<String, HashMap<u32, bool>> = HashMap::new();
    let mut saw_coverage = false;
    loop {
        let ev = reader.read_event_into(&mut buf);
        let (start, empty) = match &ev {
            Ok(Event::Start(e)) => (Some(e.clone()), false),
            Ok(Event::Empty(e)) => (Some(e.clone()), true),
            Ok(Event::End(_)) => {
                if stack.pop().as_deref() == Some(b"class") {
                    file = None;
                }
                (None, false)
            }
            Ok(Event::Eof) => {
                if !stack.is_empty() {
                    return Err(CoverageError::Malformed {
                        path: path.to_path_buf(),
                        offset: reader.buffer_position(),
                        message: "unexpected end of file (the report is truncated)".into(),
                    });
                }
                break;
            }
            Err(e) => {
                return Err(CoverageError::Malformed {
                    path: path.to_path_buf(),
                    offset: reader.error_position(),
                    message: e.to_string(),
                });
            }
            Ok(_) => (None, false),
        };
        if let Some(e) = start {
            let name = e.local_name().as_ref().to_vec();
            if stack.is_empty() {
                if name != b"coverage" {
                    return Err(CoverageError::Unknown {
                        path: path.to_path_buf(),
                    });
                }
                saw_coverage = true;
            }
            let attr = |key: &[u8]| {
                e.attributes()
                    .with_checks(false)
                    .flatten()
                    .find(|a| a.key.local_name().as_ref() == key)
                    .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
            };
            match name.as_slice() {
                b"class" => file = attr(b"filename"),
                b"line" => {
                    let n = stack.len();
                    if n >= 2
                        && stack[n - 1] == b"lines"
                        && stack[n - 2] == b"class"
                        && let (Some(f), Some(num)) =
                            (&file, attr(b"number").and_then(|v| v.parse::<u32>().ok()))
                    {
                        let hit = attr(b"hits")
                            .and_then(|v| v.parse::<u64>().ok())
                            .unwrap_or(0)
                            > 0;
                        let slot = per_line
                            .entry(f.clone())
                            .or_default()
                            .entry(num)
                            .or_default();
                        *slot |= hit;
                    }
                }
                _ => {}
            }
            if !empty {
                stack.push(name);
            }
        }
        buf.clear();
    }
    if !saw_coverage {
        return Err(CoverageError::Unknown {
            path: path.to_path_buf(),
        });
    }
    into.add(per_line);
    Ok(())
}

fn lcov(path: &Path, r: impl BufRead, into: &mut Coverage) -> Result<(), CoverageError> {
    let mut per_line: HashMap<String, HashMap<u32, bool>> = HashMap::new();
    let mut summary_only: HashMap<String, FileCoverage> = HashMap::new();
    let mut file: Option<String> = None;
    let mut saw_record = false;
    let (mut lf, mut lh) = (None::<u64>, None::<u64>);
    for (i, line) in r.lines().enumerate() {
        let line = line.map_err(|source| CoverageError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let line = line.trim();
        let bad = |what: &str| CoverageError::Malformed {
            path: path.to_path_buf(),
            offset: i as u64 + 1,
            message: format!("line {}: {what}: {line:?}", i + 1),
        };
        if let Some(f) = line.strip_prefix("SF:") {
            file = Some(f.to_string());
            saw_record = true;
            (lf, lh) = (None, None);
        } else if let Some(da) = line.strip_prefix("DA:") {
            let mut parts = da.split(',');
            let num = parts.next().and_then(|v| v.trim().parse::<u32>().ok());
            // Some tools write hit counts as floats ("1.0") or negative on overflow.
            let hits = parts.next().and_then(|v| v.trim().parse::<f64>().ok());
            let (Some(num), Some(hits)) = (num, hits) else {
                return Err(bad("bad DA record"));
            };
            let Some(f) = &file else {
                return Err(bad("DA record before SF"));
            };
            *per_line
                .entry(f.clone())
                .or_default()
                .entry(num)
                .or_default() |= hits != 0.0;
        } else if let Some(v) = line.strip_prefix("LF:") {
            lf = v.trim().parse().ok();
        } else if let Some(v) = line.strip_prefix("LH:") {
            lh = v.trim().parse().ok();
        } else if line == "end_of_record" {
            if let (Some(f), Some(lf), Some(lh)) = (&file, lf, lh)
                && !per_line.contains_key(f)
            {
                summary_only.insert(
                    f.clone(),
                    FileCoverage {
                        covered: lh,
                        lines: lf,
                    },
                );
            }
            file = None;
        }
    }
    if !saw_record {
        return Err(CoverageError::Unknown {
            path: path.to_path_buf(),
        });
    }
    into.add(per_line);
    for (f, c) in summary_only {
        let e = into.files.entry(f).or_default();
        e.covered += c.covered;
        e.lines += c.lines;
    }
    Ok(())
}

/// A threshold miss, for the summary and the exit code.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Shortfall {
    /// `None` for the total.
    pub file: Option<String>,
    pub percent: f64,
    pub minimum: f64,
}

/// Compare coverage to the minimum total and (optionally) per-file percentages.
pub fn check(cov: &Coverage, min_total: Option<f64>, min_file: Option<f64>) -> Vec<Shortfall> {
    let mut out = Vec::new();
    if let Some(min) = min_total {
        let p = cov.total().percent();
        if p + 1e-9 < min {
            out.push(Shortfall {
                file: None,
                percent: p,
                minimum: min,
            });
        }
    }
    if let Some(min) = min_file {
        for (f, c) in &cov.files {
            if c.lines > 0 && c.percent() + 1e-9 < min {
                out.push(Shortfall {
                    file: Some(f.clone()),
                    percent: c.percent(),
                    minimum: min,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(name: &str, text: &str) -> Result<Coverage, CoverageError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        let mut c = Coverage::default();
        load(&p, &mut c).map(|_| c)
    }

    #[test]
    fn cobertura_counts_class_lines_once_per_file() {
        let c = load_str(
            "coverage.xml",
            r#"<?xml version="1.0" ?>
<coverage line-rate="0.99" lines-covered="99" lines-valid="100">
 <packages><package name="calc"><classes>
  <class name="ops.py" filename="calc/ops.py" line-rate="0.5">
   <methods><method name="add"><lines><line number="1" hits="1"/></lines></method></methods>
   <lines><line number="1" hits="1"/><line number="2" hits="0"/><line number="3" hits="4"/></lines>
  </class>
  <class name="ops$Inner" filename="calc/ops.py">
   <lines><line number="2" hits="0"/><line number="9" hits="0"/></lines>
  </class>
  <class name="x" filename="calc/x.py"><lines><line number="1" hits="2"/></lines></class>
 </classes></package></packages>
</coverage>"#,
        )
        .unwrap();
        assert_eq!(
            c.files["calc/ops.py"],
            FileCoverage {
                covered: 2,
                lines: 4
            }
        );
        assert_eq!(
            c.total(),
            FileCoverage {
                covered: 3,
                lines: 5
            }
        );
        assert_eq!(check(&c, Some(60.0), None), vec![]);
        let miss = check(&c, Some(61.0), Some(75.0));
        assert_eq!(miss.len(), 2);
        assert_eq!(miss[1].file.as_deref(), Some("calc/ops.py"));
    }

    #[test]
    fn lcov_uses_da_records_and_falls_back_to_summaries() {
        let c = load_str(
            "lcov.info",
            "TN:\nSF:src/a.js\nDA:1,1\nDA:2,0\nDA:2,3\nDA:3,0\nLF:3\nLH:2\nend_of_record\n\
             SF:src/b.js\nLF:10\nLH:5\nend_of_record\n",
        )
        .unwrap();
        assert_eq!(
            c.files["src/a.js"],
            FileCoverage {
                covered: 2,
                lines: 3
            }
        );
        assert_eq!(
            c.files["src/b.js"],
            FileCoverage {
                covered: 5,
                lines: 10
            }
        );
    }

    #[test]
    fn broken_reports_are_errors() {
        assert!(matches!(
            load_str("c.xml", "<coverage><packages>"),
            Err(CoverageError::Malformed { .. })
        ));
        assert!(matches!(
            load_str("c.xml", "<html/>"),
            Err(CoverageError::Unknown { .. })
        ));
        assert!(matches!(
            load_str("l.info", "SF:a\nDA:x,1\n"),
            Err(CoverageError::Malformed { .. })
        ));
        assert!(matches!(
            load_str("l.info", "hello\n"),
            Err(CoverageError::Unknown { .. })
        ));
    }
}
