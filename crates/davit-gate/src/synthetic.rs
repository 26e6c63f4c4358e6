//! Synthetic JUnit reports of any size, for the huge-report test and the parsing benchmark.
//!
//! Real reports big enough to stress the reader are not something we can ship, so this writes one
//! with the features that cost time and memory: nested suites, entities, CDATA, system-out on
//! every case, failures with long bodies (some over the per-test cap), skips, and Surefire flaky
//! reruns. It returns the counts it wrote, so callers compare against what was generated rather
//! than against numbers written down.

use std::io::{self, Write};

/// What a generated report contains.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub bytes: u64,
    pub tests: u64,
    pub passed: u64,
    pub failed: u64,
    pub errors: u64,
    pub skipped: u64,
    pub flaky: u64,
    /// Failures whose body exceeds [`crate::junit::TEXT_CAP`].
    pub oversized: u64,
}

struct Counting<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(b)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Write a report of at least `target_bytes` to `w`.
pub fn write_report(w: impl Write, target_bytes: u64) -> io::Result<Counts> {
    let mut w = Counting {
        inner: io::BufWriter::with_capacity(1 << 20, w),
        n: 0,
    };
    let mut c = Counts::default();
    let big_body = "x".repeat(crate::junit::TEXT_CAP + 1024);
    writeln!(w, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(w, r#"<testsuites name="synthetic">"#)?;
    let mut suite = 0u64;
    while w.n < target_bytes {
        suite += 1;
        writeln!(w, r#"  <testsuite name="pkg{suite}" tests="1000">"#)?;
        writeln!(
            w,
            r#"    <testsuite name="pkg{suite}.inner" file="src/pkg{suite}/mod.rs">"#
        )?;
        for i in 0..1000u64 {
            let id = suite * 1000 + i;
            c.tests += 1;
            write!(
                w,
                r#"      <testcase classname="pkg{suite}.Module&amp;Tests" name="test_case_{id}[param-&quot;{i}&quot;]" file="tests/test_pkg{suite}.py" line="{i}" time="0.{i:03}">"#
            )?;
            if id % 50 == 7 {
                if id % 100 == 7 {
                    c.failed += 1;
                    write!(
                        w,
                        r#"<failure message="assert {id} == {} &lt;diff&gt;" type="AssertionError">"#,
                        id + 1
                    )?;
                } else {
                    c.errors += 1;
                    write!(
                        w,
                        r#"<error message="RuntimeError: boom {id}" type="RuntimeError">"#
                    )?;
                }
                if id % 5000 == 7 {
                    c.oversized += 1;
                    w.write_all(big_body.as_bytes())?;
                } else {
                    for l in 0..20 {
                        write!(
                            w,
                            "  File \"tests/test_pkg{suite}.py\", line {l}, in test_case_{id}\n    assert value &gt; limit &amp;&amp; ok\n"
                        )?;
                    }
                }
                if id % 100 == 7 {
                    write!(w, "</failure>")?;
                } else {
                    write!(w, "</error>")?;
                }
            } else if id % 20 == 3 {
                c.skipped += 1;
                write!(w, r#"<skipped message="not on this platform"/>"#)?;
            } else {
                c.passed += 1;
                if id % 500 == 11 {
                    c.flaky += 1;
                    write!(
                        w,
                        r#"<flakyFailure message="timing" type="AssertionError"><stackTrace><![CDATA[at Foo.bar(Foo.java:1)]]></stackTrace></flakyFailure>"#
                    )?;
                }
            }
            write!(
                w,
                "<system-out><![CDATA[captured stdout of case {id}: connecting to db... ok\nrows=42 <not markup> & more]]></system-out><system-err>warning: deprecated &quot;thing&quot; used in case {id}</system-err></testcase>\n"
            )?;
        }
        writeln!(w, "    </testsuite>")?;
        writeln!(w, "  </testsuite>")?;
    }
    writeln!(w, "</testsuites>")?;
    w.flush()?;
    c.bytes = w.n;
    Ok(c)
}

/// Peak resident set size of this process in bytes (VmHWM), when /proc says.
pub fn peak_rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Current resident set size in bytes (VmRSS).
pub fn rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
