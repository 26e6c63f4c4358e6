//! Verified PostgreSQL backups: no verified backup, no migration.
//!
//! A migration that goes wrong in production is only recoverable if the backup taken just
//! before it can actually be restored. `pg_restore --list` reads the table of contents and
//! happily accepts a dump whose data blocks are truncated or damaged, so this crate verifies
//! for real: by default each dump is restored into a throwaway scratch database on the same
//! server and its per-table row counts are compared with the source ([`VerifyLevel::Restore`]);
//! the cheaper [`VerifyLevel::Read`] decodes every data block with `pg_restore -f /dev/null`.
//! Only a dump that passed is renamed from `*.partial` to its final name and gets a manifest,
//! and only a backup with a manifest counts: [`require_verified_backup`] is the gate the deploy
//! flow calls before running migrations.
//!
//! Everything that touches the database host goes through a [`davit_exec::Executor`], so the
//! same code runs locally, over SSH, or recorded in tests. The dump never passes through this
//! process (the executor returns text, a dump is binary, and over SSH it would cross the wire
//! twice): it is streamed to a file on the database host by a small fixed `bash` script whose
//! variable parts are positional arguments, never interpolated. Secrets travel only in the
//! environment or on stdin (see [`source`]); encryption uses `age` on the database host, with
//! the dump piped straight into it so no plaintext ever lands on disk (see [`mod@backup`]).

pub mod backup;
pub mod error;
pub mod manifest;
pub mod restore;
pub mod settings;
pub mod source;

pub use backup::{backup, verify_file};
pub use error::BackupError;
pub use manifest::{
    EncryptionInfo, Listing, Manifest, PruneReport, Verification, list, prune,
    require_verified_backup, retention,
};
pub use restore::{RestoreReport, drill, restore};
pub use settings::BackupSettings;
pub use source::Source;

use davit_core::Secret;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// How thoroughly a fresh dump is checked before it counts as a backup.
///
/// Ordered: `Read < Restore`, so a gate can ask for "at least" a level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum VerifyLevel {
    /// `pg_restore -f /dev/null`: every data block is read and decompressed (zlib checks its
    /// own checksum), but nothing is loaded into a server.
    Read,
    /// Restore into a uniquely named scratch database (`--exit-on-error`), compare exact row
    /// counts per table with the source, drop the scratch database. Needs CREATEDB.
    #[default]
    Restore,
}

impl std::fmt::Display for VerifyLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VerifyLevel::Read => "read",
            VerifyLevel::Restore => "restore",
        })
    }
}

/// Everything needed to take, verify, keep and restore backups of one database.
#[derive(Debug, Clone)]
pub struct BackupSpec {
    pub source: Source,
    /// Absolute directory on the database host (created 0700 if missing).
    pub dir: PathBuf,
    pub verify: VerifyLevel,
    /// An age identity (`AGE-SECRET-KEY-1...`). `Some` means encryption is required: an empty
    /// value is an error before anything is dumped, never a silent fallback to plaintext.
    pub encryption: Option<Secret<String>>,
    /// Verified backups to keep (at least 1).
    pub keep: usize,
    /// Verified backups older than this are deleted too, except the newest one.
    pub max_age: Option<chrono::Duration>,
    /// Directory of the PostgreSQL client tools on the host (URL mode); `None` uses PATH.
    /// pg_dump must be at least the server's major version.
    pub pg_bin: Option<PathBuf>,
}

impl BackupSpec {
    /// A spec with the defaults: restore-level verification, no encryption, keep 7.
    pub fn new(source: Source, dir: impl Into<PathBuf>) -> Self {
        BackupSpec {
            source,
            dir: dir.into(),
            verify: VerifyLevel::default(),
            encryption: None,
            keep: 7,
            max_age: None,
            pg_bin: None,
        }
    }

    /// Cross-field checks that need no host: run first so a bad setting fails before any dump.
    pub fn validate(&self) -> Result<(), BackupError> {
        if !self.dir.is_absolute() {
            return Err(BackupError::Config {
                message: format!("backup.dir {} is not an absolute path", self.dir.display()),
                hint: "set backup.dir to an absolute directory on the database host, e.g. /var/backups/davit/<app>".into(),
            });
        }
        if self.keep == 0 {
            return Err(BackupError::Config {
                message: "backup.keep is 0".into(),
                hint: "keep at least 1 verified backup".into(),
            });
        }
        if let Some(k) = &self.encryption
            && k.expose().trim().is_empty()
        {
            return Err(BackupError::KeyMissing);
        }
        Ok(())
    }
}
