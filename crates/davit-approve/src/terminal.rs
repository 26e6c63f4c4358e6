//! The `tty` and `auto` providers, for runs without GitHub.
//!
//! On a laptop the person at the keyboard approves by typing the version (a yes/no prompt is
//! too easy to answer by reflex). Without a terminal the answer is no. `auto` exists for
//! throwaway environments and demos; it needs an explicit flag and says loudly what it did.

use std::io::{BufRead, BufReader, Write};

use chrono::Utc;

use crate::evaluate::Verdict;
use crate::{ApproveError, Decision, Provider, ReleaseInfo};

/// Ask on `/dev/tty`, which works even when stdin and stdout are pipes.
pub fn tty(release: &ReleaseInfo) -> Decision {
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty");
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "local-user".into());
    match opened {
        Ok(tty) => match tty.try_clone() {
            Ok(out) => ask(BufReader::new(tty), out, release, &user),
            Err(e) => no_terminal(release, &e.to_string()),
        },
        Err(e) => no_terminal(release, &e.to_string()),
    }
}

fn no_terminal(release: &ReleaseInfo, why: &str) -> Decision {
    let v = Verdict::Denied {
        reason: format!("no terminal to ask on ({why}); use github-issue or environment in CI"),
        by: None,
        at: Utc::now(),
    };
    Decision::from_verdict(&v, Provider::Tty, release, None)
}

/// The prompt itself, over any reader and writer (tests use buffers).
pub fn ask(
    mut input: impl BufRead,
    mut output: impl Write,
    release: &ReleaseInfo,
    user: &str,
) -> Decision {
    let _ = writeln!(
        output,
        "\nDeploy {} to {}?\n  image:  {}\n  digest: {}\n  scan:   {}",
        release.version,
        release.environment,
        davit_github::strip_credentials(&release.image),
        release.digest,
        if release.scan_result.is_empty() {
            "not reported"
        } else {
            &release.scan_result
        },
    );
    if !release.commits.trim().is_empty() {
        let _ = writeln!(output, "  commits:");
        for l in release.commits.lines().take(30) {
            let _ = writeln!(output, "    {l}");
        }
    }
    let _ = write!(
        output,
        "Type the version ({}) to approve, anything else denies: ",
        release.version
    );
    let _ = output.flush();
    let mut line = String::new();
    let read = input.read_line(&mut line);
    let verdict = match read {
        Ok(n) if n > 0 && !release.version.is_empty() && line.trim() == release.version => {
            Verdict::Approved {
                by: vec![user.to_string()],
                at: Utc::now(),
            }
        }
        Ok(_) => Verdict::Denied {
            reason: "the version was not typed at the prompt".into(),
            by: Some(user.to_string()),
            at: Utc::now(),
        },
        Err(e) => Verdict::Denied {
            reason: format!("could not read the terminal: {e}"),
            by: None,
            at: Utc::now(),
        },
    };
    Decision::from_verdict(&verdict, Provider::Tty, release, None)
}

/// Approve without asking, only when `confirmed` (the explicit flag) is set.
pub fn auto(release: &ReleaseInfo, confirmed: bool) -> Result<Decision, ApproveError> {
    if !confirmed {
        return Err(ApproveError::bad_input(
            "provider `auto` approves without asking anyone and needs an explicit flag",
            "pass --auto-approve-i-know-what-i-am-doing (never for real production), or use github-issue",
        ));
    }
    tracing::warn!(
        "AUTO-APPROVED: {} goes to {} WITHOUT ANY HUMAN APPROVAL (provider auto, requested by {})",
        release.version,
        release.environment,
        release.requested_by
    );
    let v = Verdict::Approved {
        by: vec!["auto".into()],
        at: Utc::now(),
    };
    let mut d = Decision::from_verdict(&v, Provider::Auto, release, None);
    d.reason = "auto-approved without a human (explicit flag)".into();
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release() -> ReleaseInfo {
        ReleaseInfo {
            version: "1.4.0".into(),
            environment: "production".into(),
            requested_by: "carol".into(),
            commits: "abc fix\n".into(),
            ..Default::default()
        }
    }

    #[test]
    fn typing_the_version_approves() {
        let mut out = Vec::new();
        let d = ask(&b"1.4.0\n"[..], &mut out, &release(), "carol");
        assert!(d.approved);
        assert_eq!(d.by, ["carol"]);
        assert_eq!(d.provider, Provider::Tty);
        assert!(
            String::from_utf8(out)
                .unwrap()
                .contains("Type the version (1.4.0)")
        );
    }

    #[test]
    fn anything_else_or_eof_denies() {
        for input in [&b"y\n"[..], b"yes\n", b"\n", b"", b"1.4.0x\n"] {
            let d = ask(input, Vec::new(), &release(), "carol");
            assert!(!d.approved, "{input:?}");
        }
        let mut r = release();
        r.version = String::new();
        assert!(!ask(&b"\n"[..], Vec::new(), &r, "carol").approved);
    }

    #[test]
    fn auto_needs_the_flag() {
        assert!(auto(&release(), false).is_err());
        let d = auto(&release(), true).unwrap();
        assert!(d.approved);
        assert_eq!(d.provider, Provider::Auto);
    }
}
