//! The steps every strategy's deploy plan shares around its own: the release folder, its env
//! file, and the pre- and post-deploy hooks.
//!
//! Pre-deploy hooks (migrations) run before any switch, after the env file they read exists;
//! post-deploy hooks run once the release is live. Both are plan steps, so the dry run shows
//! them and a failure undoes what the plan did before.

use crate::target::Target;
use crate::{NewRelease, Observed, docker, env_path, release_dir};
use davit_config::HookPlace;
use davit_core::{Cmd, FileBody, Plan, Secret, Step};
use std::time::Duration;

/// How every pre-deploy hook step's summary starts: a failed step is known as a migration hook
/// by it (see `migration_report`).
pub(crate) const PRE_DEPLOY: &str = "pre-deploy hook ";

/// The release folder, its 0600 env file, and pre-deploy hooks (which run before any switch).
pub(crate) fn push_env_and_pre_hooks(
    plan: &mut Plan,
    t: &Target,
    rel: &NewRelease,
    _obs: &Observed,
) {
    push_env(plan, t, rel);
    push_pre_hooks(plan, t, rel);
}

/// The release folder and its 0600 env file (every process of the release reads it).
pub(crate) fn push_env(plan: &mut Plan, t: &Target, rel: &NewRelease) {
    plan.push(
        "create the release folder",
        Step::MkDir {
            path: release_dir(t, &rel.id),
            mode: 0o700,
        },
    );
    let text = docker::env_file(t, &rel.id, &rel.version);
    let body = if t.secret_env.is_empty() {
        FileBody::Plain(text)
    } else {
        FileBody::Secret(Secret::new(text))
    };
    plan.push(
        "write the release's env file (0600: it may hold secrets)",
        Step::WriteFile {
            path: env_path(t, &rel.id),
            body,
            mode: 0o600,
        },
    );
}

/// Pre-deploy hooks (migrations): before any process of the new release starts.
pub(crate) fn push_pre_hooks(plan: &mut Plan, t: &Target, rel: &NewRelease) {
    for (i, h) in t.pre_deploy.iter().enumerate() {
        plan.push(
            format!("{PRE_DEPLOY}{}: {}", i + 1, h.run.join(" ")),
            Step::Exec(hook_cmd(t, rel, h)),
        );
    }
}

pub(crate) fn push_post_hooks(plan: &mut Plan, t: &Target, rel: &NewRelease) {
    for (i, h) in t.post_deploy.iter().enumerate() {
        plan.push(
            format!("post-deploy hook {}: {}", i + 1, h.run.join(" ")),
            Step::Exec(hook_cmd(t, rel, h)),
        );
    }
}

fn hook_cmd(t: &Target, rel: &NewRelease, h: &davit_config::Hook) -> Cmd {
    let timeout = Duration::from_secs(h.timeout_secs);
    match h.on {
        HookPlace::Image => docker::hook_in_image(
            &rel.image,
            &env_path(t, &rel.id),
            t.processes.as_ref().map(|s| s.network.as_str()),
            &h.run,
            h.replace_entrypoint,
            timeout,
        ),
        HookPlace::Host => Cmd::new(h.run[0].clone())
            .args(h.run[1..].iter().cloned())
            .env("DAVIT_APP", t.app.clone())
            .env("DAVIT_ENVIRONMENT", t.environment.clone())
            .env("DAVIT_RELEASE", rel.id.clone())
            .env("DAVIT_VERSION", rel.version.clone())
            .env("DAVIT_IMAGE", rel.image.clone())
            .env("DAVIT_HOSTS", t.host.clone())
            .env("DAVIT_PERFORMER", t.actor.clone())
            // The release's 0600 env file: a host hook reads the app's settings (and secrets)
            // from it rather than from argv or davit's own environment.
            .env("DAVIT_ENV_FILE", env_path(t, &rel.id).display().to_string())
            .timeout(timeout),
    }
}
