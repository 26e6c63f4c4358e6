//! The exit-code contract shared by every davit binary.
//!
//! CI systems branch on exit codes, so they are part of the interface: `1` means "davit looked
//! and said no" (tests failed, vulnerabilities over policy, unhealthy release, rolled back), `2`
//! means the user must fix their input, `3` means infrastructure or an unexpected error, where a
//! retry may help.

use std::fmt;

/// Documented exit codes (see docs/EXIT-CODES in the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exit {
    /// 0: everything passed / deployed.
    Ok,
    /// 1: the gate said no: a check failed, a release was unhealthy or rolled back, approval denied.
    Rejected,
    /// 2: bad input or configuration; the message names the fix.
    BadInput,
    /// 3: infrastructure failure or unexpected error.
    Infra,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Rejected => 1,
            Exit::BadInput => 2,
            Exit::Infra => 3,
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e.code())
    }
}

/// An error that knows which exit code it maps to and how the user can fix it.
///
/// Libraries return their own `thiserror` enums; at the binary edge they are turned into a
/// `Failure` so that `main` prints `error: ...` and `hint: ...` the same way everywhere.
#[derive(Debug, Clone)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
    pub hint: Option<String>,
}

impl Failure {
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Failure {
            exit,
            message: message.into(),
            hint: None,
        }
    }
    pub fn bad_input(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Failure {
            exit: Exit::BadInput,
            message: message.into(),
            hint: Some(hint.into()),
        }
    }
    pub fn infra(message: impl Into<String>) -> Self {
        Failure::new(Exit::Infra, message)
    }
    pub fn rejected(message: impl Into<String>) -> Self {
        Failure::new(Exit::Rejected, message)
    }
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\nhint: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Failure {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_documented_contract() {
        assert_eq!(
            [Exit::Ok, Exit::Rejected, Exit::BadInput, Exit::Infra].map(Exit::code),
            [0, 1, 2, 3]
        );
    }

    #[test]
    fn failure_display_carries_the_hint() {
        let f = Failure::bad_input("port 0 is not valid", "set ports.blue to 1-65535");
        assert_eq!(
            f.to_string(),
            "port 0 is not valid\nhint: set ports.blue to 1-65535"
        );
    }
}
