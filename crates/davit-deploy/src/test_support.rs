//! What the planner tests share: a target resolved from davit.toml text the way the CLI does
//! (project at /srv/shop, a canary value for DATABASE_URL so a test can prove it never leaks, a
//! fixed actor so snapshots do not depend on who runs them), and a release by version.

use crate::NewRelease;
use crate::target::Target;
use davit_config::Config;
use std::path::Path;

/// The canary secret every planner test resolves DATABASE_URL to.
pub const CANARY_URL: &str = "postgres://u:canary-s3cret@db/shop";

/// `text` (a whole davit.toml) resolved for environment `env`.
pub fn target_from(text: &str, env: &str) -> Target {
    let cfg = Config::parse(text, Path::new("davit.toml"), Path::new("/srv/shop")).unwrap();
    let mut t = Target::resolve(&cfg, env, &|name| {
        (name == "DATABASE_URL").then(|| CANARY_URL.to_string())
    })
    .unwrap();
    t.actor = "tester".into();
    t
}

/// Release `r-<version>` of the test image.
pub fn rel(version: &str) -> NewRelease {
    NewRelease {
        id: format!("r-{version}"),
        version: version.into(),
        image: format!("registry.example.com/acme/shop:{version}"),
    }
}
