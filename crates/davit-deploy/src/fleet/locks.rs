//! The lock set of an operation: every host's deploy lock, taken in the order the hosts are
//! listed (so two deployers cannot deadlock) and released on every path.
//!
//! An operation nested in one that holds the locks (verify rolling back, a fleet converging
//! back) passes `Options::lock_held` and takes none: the set is re-entrant that way.

use super::Hosts;
use crate::Options;
use crate::lock::{self, Lock};
use davit_core::Failure;

impl Hosts<'_> {
    /// Take the deploy lock on every host, in order. When one is held, the ones taken are
    /// released and the error names the holder (the lock module's message).
    pub(super) async fn lock_all(
        &self,
        operation: &str,
        version: &str,
        opts: &Options,
    ) -> Result<Vec<Lock>, Failure> {
        let mut locks = Vec::new();
        for h in &self.hosts {
            match lock::acquire(h.exec, h.target, operation, version, &opts.lock).await {
                Ok(l) => locks.push(l),
                Err(e) => {
                    let mut e = self.on_host(h, e);
                    for w in self.release_all(locks).await {
                        e.message.push('\n');
                        e.message.push_str(&w);
                    }
                    return Err(e);
                }
            }
        }
        Ok(locks)
    }

    pub(super) async fn release_all(&self, locks: Vec<Lock>) -> Vec<String> {
        let mut warnings = Vec::new();
        for (h, l) in self.hosts.iter().zip(locks) {
            let on = self.label(h);
            if let Some(stale) = &l.freed_stale {
                warnings.push(format!("{on}{}", stale.freed_note()));
            }
            if let Err(e) = l.release(h.exec, h.target).await {
                warnings.push(format!(
                    "{on}could not release the deploy lock ({e}); once the host answers again, the next run from this machine frees it (from elsewhere: davit lock release {})",
                    h.target.environment
                ));
            }
        }
        warnings
    }
}
