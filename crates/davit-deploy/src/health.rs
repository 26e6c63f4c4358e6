//! What "healthy" means for a release, shared by every strategy.
//!
//! The expectation (status, body text, the version field) and the probe timing come from one
//! `[health]` section whatever the strategy; only the address differs (a color's own port, the
//! published port, the public URL). Keeping the expectation here, not in one strategy's module,
//! means a change to what counts as healthy reaches every strategy and verify at once.

use crate::target::Target;
use davit_core::{Probe, ProbeExpect};

/// The answer a healthy `version` gives on the health path.
pub fn expect(t: &Target, version: &str) -> ProbeExpect {
    ProbeExpect {
        status: u16::try_from(t.health.expect_status).unwrap_or(200),
        body_contains: t.health.body_contains.clone(),
        json_field: (!t.health.version_field.is_empty())
            .then(|| (t.health.version_field.clone(), version.to_string())),
        header: None,
    }
}

/// The health gate at `base` (`http://host:port`, no path): the configured path, expectation
/// and timing.
pub fn probe(t: &Target, base: &str, version: &str) -> Probe {
    let (interval, per_try, deadline) = t.health_timing();
    Probe {
        url: format!("{base}{}", t.health.path),
        expect: expect(t, version),
        per_try_timeout: per_try,
        interval,
        consecutive: t.health.consecutive,
        deadline,
        host: t.probe_host(),
    }
}
