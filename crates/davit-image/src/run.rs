//! The command line and the pipeline: build -> save -> SBOM -> scan -> decide -> push.
//!
//! Every flag has a `DAVIT_*` environment variable so `actions/image/action.yml` maps inputs to
//! env and never interpolates them into a script. Secrets have no flag at all: the registry
//! password (`DAVIT_REGISTRY_PASSWORD`) and build secret values (`DAVIT_BUILD_SECRETS`) are read
//! from the environment only, because argv is world-readable.
//!
//! Exit codes: 0 scanned and passed (and pushed when asked); 1 the policy rejected the image
//! (nothing pushed); 2 bad input; 3 infrastructure failure, including a scan that did not run
//! (no database, scanner error): that is not a verdict on the image, a retry after fixing the
//! setup may pass, and nothing is pushed (T35).

use crate::docker::DockerError;
use crate::finding::ScanOutcome;
use crate::meta::{self, GitContext, Latest, MetaInput};
use crate::osv::{DbError, OsvDb};
use crate::pipeline::{self, Inputs};
use crate::report::Report;
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use davit_core::{Exit, Failure, validate};
use davit_gha::{Annotation, Gha, Level};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, Parser)]
#[command(
    name = "davit-image",
    version,
    about = "Build an image, SBOM and scan it, decide, and push exactly what was scanned."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Build (or take) an image, write its SBOM, scan it, apply the policy, push if it passed.
    Run(Box<RunArgs>),
    /// Only compute tags and labels (JSON on stdout).
    Meta(Box<MetaArgs>),
}

/// Which scanner to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScannerChoice {
    /// OSV when `--osv-db` or `--osv-url` is set, else Trivy when on PATH, else OSV downloaded
    /// from osv.dev.
    Auto,
    Osv,
    Trivy,
}

#[derive(Debug, Clone, Args)]
pub struct MetaArgs {
    /// Image names without tag, one per line or comma-separated (ghcr.io/org/app).
    #[arg(long = "images", env = "DAVIT_IMAGES", value_delimiter = '\n')]
    pub images: Vec<String>,
    /// Tag specs in docker/metadata-action syntax, one per line; empty means the defaults.
    #[arg(long = "tags", env = "DAVIT_TAGS", value_delimiter = '\n')]
    pub tags: Vec<String>,
    /// When to add `latest`.
    #[arg(long, env = "DAVIT_LATEST", value_enum, default_value = "auto")]
    pub latest: Latest,
    /// Extra labels `key=value`, one per line.
    #[arg(long = "label", env = "DAVIT_LABELS", value_delimiter = '\n')]
    pub labels: Vec<String>,
    /// Commit SHA (default: $GITHUB_SHA, else `git rev-parse HEAD`).
    #[arg(long, env = "GITHUB_SHA")]
    pub sha: Option<String>,
    /// Git ref (default: $GITHUB_REF, else the checked-out branch).
    #[arg(long = "ref", env = "GITHUB_REF")]
    pub git_ref: Option<String>,
    #[arg(long, env = "GITHUB_EVENT_NAME", default_value = "push")]
    pub event: String,
    /// The repository's default branch, for `latest`.
    #[arg(long, env = "DAVIT_DEFAULT_BRANCH")]
    pub default_branch: Option<String>,
    /// Repository URL for the source/url labels (default from $GITHUB_SERVER_URL/$GITHUB_REPOSITORY).
    #[arg(long, env = "DAVIT_REPO_URL")]
    pub repo_url: Option<String>,
    #[arg(long, env = "DAVIT_TITLE")]
    pub title: Option<String>,
    #[arg(long, env = "DAVIT_DESCRIPTION")]
    pub description: Option<String>,
    /// SPDX license expression for the licenses label.
    #[arg(long, env = "DAVIT_LICENSES")]
    pub licenses: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub meta: MetaArgs,
    /// Build context directory.
    #[arg(long, env = "DAVIT_CONTEXT", default_value = ".")]
    pub context: PathBuf,
    /// Dockerfile (default: `<context>/Dockerfile`).
    #[arg(long = "file", env = "DAVIT_DOCKERFILE")]
    pub dockerfile: Option<PathBuf>,
    /// Target stage.
    #[arg(long, env = "DAVIT_TARGET")]
    pub target: Option<String>,
    /// Build args `KEY=value`, one per line (not for secrets: they are visible in the image history).
    #[arg(long = "build-arg", env = "DAVIT_BUILD_ARGS", value_delimiter = '\n')]
    pub build_args: Vec<String>,
    /// Build secrets from files, `id=path`, one per line.
    #[arg(
        long = "secret-file",
        env = "DAVIT_BUILD_SECRET_FILES",
        value_delimiter = '\n'
    )]
    pub secret_files: Vec<String>,
    /// Build secrets from environment variables of this process, `id=ENV_VAR`, one per line.
    #[arg(
        long = "secret-env",
        env = "DAVIT_BUILD_SECRET_ENVS",
        value_delimiter = '\n'
    )]
    pub secret_envs: Vec<String>,
    #[arg(long = "cache-from", env = "DAVIT_CACHE_FROM", value_delimiter = '\n')]
    pub cache_from: Vec<String>,
    #[arg(long = "cache-to", env = "DAVIT_CACHE_TO", value_delimiter = '\n')]
    pub cache_to: Vec<String>,
    /// One target platform (the scanned image must be loadable locally).
    #[arg(long, env = "DAVIT_PLATFORM")]
    pub platform: Option<String>,
    /// Always pull newer base images.
    #[arg(long, env = "DAVIT_PULL")]
    pub pull: bool,
    /// Use this local image instead of building.
    #[arg(long, env = "DAVIT_IMAGE", conflicts_with = "archive")]
    pub image: Option<String>,
    /// Scan a `docker save` archive instead of building (no push possible).
    #[arg(long, env = "DAVIT_ARCHIVE")]
    pub archive: Option<PathBuf>,
    /// Scanner.
    #[arg(long, env = "DAVIT_SCANNER", value_enum, default_value = "auto")]
    pub scanner: ScannerChoice,
    /// Offline OSV database: a directory of OSV JSON files or an osv.dev `all.zip`.
    #[arg(long, env = "DAVIT_OSV_DB")]
    pub osv_db: Option<PathBuf>,
    #[command(flatten)]
    pub osv_fetch: crate::osv_fetch::FetchArgs,
    /// Block on findings at or above this severity (critical, high, medium, low, unknown).
    #[arg(long, env = "DAVIT_FAIL_ON", default_value = "high")]
    pub fail_on: String,
    /// Do not block on findings that have no fixed version yet.
    #[arg(long, env = "DAVIT_IGNORE_UNFIXED")]
    pub ignore_unfixed: bool,
    /// TOML ignore file: `[[ignore]]` entries with id, reason, expires, optional package.
    #[arg(long, env = "DAVIT_IGNORE_FILE")]
    pub ignore_file: Option<PathBuf>,
    /// Where SBOMs and reports are written.
    #[arg(long, env = "DAVIT_OUT_DIR", default_value = "davit-image-out")]
    pub out_dir: PathBuf,
    /// Push after the policy passed.
    #[arg(long, env = "DAVIT_PUSH")]
    pub push: bool,
    /// Registry to log in to (default: the host of the first image name).
    #[arg(long, env = "DAVIT_REGISTRY")]
    pub registry: Option<String>,
    /// Registry user; the password comes from $DAVIT_REGISTRY_PASSWORD only.
    #[arg(long, env = "DAVIT_REGISTRY_USERNAME")]
    pub registry_username: Option<String>,
    /// Findings listed in the summary.
    #[arg(long, env = "DAVIT_SUMMARY_FINDINGS", default_value_t = 15)]
    pub summary_findings: usize,
    /// Print the JSON report on stdout.
    #[arg(long)]
    pub json: bool,
    /// Date used for ignore-entry expiry (tests).
    #[arg(long, env = "DAVIT_TODAY", hide = true)]
    pub today: Option<NaiveDate>,
}

pub(crate) fn lines(v: &[String]) -> Vec<String> {
    v.iter()
        .flat_map(|s| s.split(['\n', ',']))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn spec_lines(v: &[String]) -> Vec<String> {
    // Tag specs contain commas themselves: split on newlines only.
    v.iter()
        .flat_map(|s| s.split('\n'))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && !s.starts_with('#'))
        .collect()
}

pub(crate) fn pairs(field: &str, v: &[String]) -> Result<Vec<(String, String)>, Failure> {
    v.iter()
        .flat_map(|s| s.split('\n'))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| {
                    Failure::bad_input(
                        format!("{field}: {s:?} is not KEY=value"),
                        format!("write each {field} entry as KEY=value on its own line"),
                    )
                })
        })
        .collect()
}

fn git(args: &[&str]) -> Option<String> {
    let o = Command::new("git").args(args).output().ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

fn created() -> DateTime<Utc> {
    // Reproducible builds set SOURCE_DATE_EPOCH; honour it for the created label.
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(|s| DateTime::from_timestamp(s, 0))
        .unwrap_or_else(Utc::now)
}

/// Resolve the metadata input: flags/env, then git, then defaults.
pub fn meta_input(a: &MetaArgs) -> Result<MetaInput, Failure> {
    let images = lines(&a.images);
    for i in &images {
        validate::image_ref("images", i).map_err(|e| {
            Failure::bad_input(
                e.to_string(),
                "list image names like ghcr.io/org/app, without a tag",
            )
        })?;
        if i.contains('@') || docker_has_tag(i) {
            return Err(Failure::bad_input(
                format!("images = {i:?} has a tag or digest"),
                "give the name only; tags come from `tags`",
            ));
        }
    }
    let sha = a
        .sha
        .clone()
        .filter(|s| !s.is_empty())
        .or_else(|| git(&["rev-parse", "HEAD"]))
        .unwrap_or_default();
    let git_ref = a
        .git_ref
        .clone()
        .filter(|s| !s.is_empty())
        .or_else(|| git(&["symbolic-ref", "-q", "HEAD"]))
        .unwrap_or_default();
    let default_branch = a
        .default_branch
        .clone()
        .filter(|s| !s.is_empty())
        .or_else(|| {
            git(&["symbolic-ref", "-q", "--short", "refs/remotes/origin/HEAD"])
                .map(|s| s.trim_start_matches("origin/").to_string())
        });
    let repo_url = a.repo_url.clone().filter(|s| !s.is_empty()).or_else(|| {
        let server = std::env::var("GITHUB_SERVER_URL").ok()?;
        let repo = std::env::var("GITHUB_REPOSITORY").ok()?;
        Some(format!("{server}/{repo}"))
    });
    Ok(MetaInput {
        images,
        tag_specs: spec_lines(&a.tags),
        latest: a.latest,
        git: GitContext {
            event: a.event.clone(),
            git_ref,
            sha,
            default_branch,
        },
        repo_url,
        title: a.title.clone().filter(|s| !s.is_empty()),
        description: a.description.clone().filter(|s| !s.is_empty()),
        licenses: a.licenses.clone().filter(|s| !s.is_empty()),
        created: created(),
        extra_labels: pairs("label", &a.labels)?,
    })
}

fn docker_has_tag(name: &str) -> bool {
    let last = name.rsplit('/').next().unwrap_or(name);
    last.contains(':')
}

/// `davit-image meta`.
pub fn meta_cmd(a: &MetaArgs, gha: &Gha) -> Result<Exit, Failure> {
    let m = meta::compute(&meta_input(a)?).map_err(|e| {
        Failure::bad_input(
            e.to_string(),
            "see the tag spec syntax in actions/image/README or docker/metadata-action",
        )
    })?;
    set_meta_outputs(gha, &m)?;
    println!("{}", serde_json::to_string_pretty(&m).unwrap_or_default());
    Ok(Exit::Ok)
}

pub(crate) fn set_meta_outputs(gha: &Gha, m: &meta::Meta) -> Result<(), Failure> {
    out(gha, "version", &m.version)?;
    out(gha, "tags", &m.refs.join("\n"))?;
    out(
        gha,
        "labels",
        &m.labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

pub(crate) fn out(gha: &Gha, name: &str, value: &str) -> Result<(), Failure> {
    gha.set_output(name, value)
        .map_err(|e| Failure::infra(format!("cannot write output {name}: {e}")))
}

pub(crate) fn docker_failure(e: DockerError) -> Failure {
    match e {
        DockerError::BadInput(m, h) => Failure::bad_input(m, h),
        DockerError::Verify(m) => Failure::infra(m).with_hint("the registry does not hold the scanned image under that digest; do not deploy it, and check for a concurrent push to the same tag"),
        other => Failure::infra(other.to_string()).with_hint("check that the Docker daemon runs and the registry is reachable (docker info, docker login)"),
    }
}

pub(crate) fn write_json(
    dir: &Path,
    name: &str,
    v: &impl serde::Serialize,
) -> Result<PathBuf, Failure> {
    let p = dir.join(name);
    let text = serde_json::to_string_pretty(v)
        .map_err(|e| Failure::infra(format!("serializing {name}: {e}")))?;
    std::fs::write(&p, text + "\n")
        .map_err(|e| Failure::infra(format!("writing {}: {e}", p.display())))?;
    Ok(p)
}

/// Choose and run the scanner. Never fails: problems become `DidNotRun`. Without `osv_db` the
/// OSV archives are downloaded as `fetch` says ([`crate::osv_fetch`]).
pub fn scan(
    choice: ScannerChoice,
    osv_db: Option<&Path>,
    fetch: &crate::osv_fetch::FetchArgs,
    inv: &crate::sbom::Inventory,
    archive: &Path,
) -> ScanOutcome {
    let trivy = which::which("trivy").ok();
    let use_osv = match choice {
        ScannerChoice::Osv => true,
        ScannerChoice::Trivy => false,
        ScannerChoice::Auto => osv_db.is_some() || fetch.url_set() || trivy.is_none(),
    };
    if use_osv {
        let Some(db) = osv_db else {
            return crate::osv_fetch::scan_downloaded(fetch, inv);
        };
        match OsvDb::load(db) {
            Ok(db) => db.scan(inv),
            Err(e) => {
                let hint = match e {
                    DbError::Missing { .. } | DbError::Empty { .. } => {
                        "download the OSV records for your ecosystems (osv.dev publishes <Ecosystem>/all.zip) and point `osv-db` at them"
                    }
                    _ => "re-download the OSV database; a partial or corrupted copy is not used",
                };
                ScanOutcome::did_not_run(e.to_string(), hint)
            }
        }
    } else {
        match trivy {
            Some(t) => crate::trivy::scan(&t, archive),
            None => ScanOutcome::did_not_run(
                "trivy was requested but is not on PATH",
                "install trivy or use `scanner: osv` with `osv-db`",
            ),
        }
    }
}

/// `davit-image run`.
pub fn run_cmd(a: &RunArgs, gha: &Gha) -> Result<Exit, Failure> {
    // ---- settings: everything that can be wrong with the input fails here, before work.
    let Inputs {
        policy,
        build_args,
        secrets,
        login,
        meta: m,
    } = pipeline::inputs(a, gha)?;
    if a.push && m.refs.is_empty() {
        return Err(Failure::bad_input(
            "push requested but no image name is set",
            "set `images` (e.g. ghcr.io/org/app)",
        ));
    }
    if a.archive.is_none() && a.image.is_none() {
        crate::context_check::check(&a.context, &a.out_dir)?;
    }
    std::fs::create_dir_all(&a.out_dir)
        .map_err(|e| Failure::infra(format!("cannot create {}: {e}", a.out_dir.display())))?;

    gha.group_start("Tags and labels");
    gha.log(&format!("version {}\n{}\n", m.version, m.refs.join("\n")));
    gha.group_end();

    // ---- build (or take) the image and export it.
    let work = tempfile::Builder::new()
        .prefix("davit-image-")
        .tempdir()
        .map_err(|e| Failure::infra(format!("temp dir: {e}")))?;
    let (docker, image_id, archive_path) =
        pipeline::build_or_take(a, gha, &m, build_args, secrets, work.path())?;

    // ---- SBOM from the exported layers.
    let (inv, sbom) = pipeline::sbom(a, gha, &m, &archive_path, image_id.as_deref())?;

    // ---- scan and decide.
    gha.group_start("Vulnerability scan");
    let outcome = scan(
        a.scanner,
        a.osv_db.as_deref(),
        &a.osv_fetch,
        &inv,
        &archive_path,
    );
    let decision = policy.decide(&outcome);
    gha.group_end();

    // ---- push only what passed.
    let mut report = Report {
        image_id: inv.image_id.clone(),
        meta: Some(m.clone()),
        sbom: sbom.summary.clone(),
        scan: outcome,
        decision,
        pushed: None,
        push_skipped: None,
    };
    let push_error = pipeline::push(a, gha, &m, docker.as_ref(), login.as_ref(), &mut report);

    // ---- reports and outputs, also when the push failed.
    let md_path = pipeline::publish(a, gha, &m, &report, &sbom)?;
    pipeline::conclude(&report, &md_path, push_error)
}

/// Entry point used by `main`: parse, dispatch, map errors to the exit-code contract.
pub fn main_with(cli: Cli) -> Exit {
    let gha = Gha::from_env();
    let r = match &cli.command {
        Cmd::Run(a) => run_cmd(a, &gha),
        Cmd::Meta(a) => meta_cmd(a, &gha),
    };
    match r {
        Ok(e) => e,
        Err(f) => {
            if gha.on_runner() {
                gha.annotate(
                    Level::Error,
                    &Annotation {
                        title: Some("davit-image".into()),
                        message: f.message.clone(),
                        ..Default::default()
                    },
                );
                if let Some(h) = &f.hint {
                    eprintln!("hint: {h}");
                }
            } else {
                eprintln!("error: {f}");
            }
            f.exit
        }
    }
}
