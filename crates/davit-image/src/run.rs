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

use crate::docker::{BuildSecret, BuildSpec, Builder, Docker, DockerError, Login};
use crate::finding::{ScanOutcome, Severity};
use crate::meta::{self, GitContext, Latest, MetaInput};
use crate::osv::{DbError, OsvDb};
use crate::policy::{self, Policy, Verdict};
use crate::report::{self, Report, SbomSummary};
use crate::sbom::{archive, catalog, cyclonedx, spdx};
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use davit_core::{Exit, Failure, Secret, validate};
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

fn lines(v: &[String]) -> Vec<String> {
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

fn pairs(field: &str, v: &[String]) -> Result<Vec<(String, String)>, Failure> {
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

fn set_meta_outputs(gha: &Gha, m: &meta::Meta) -> Result<(), Failure> {
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

fn out(gha: &Gha, name: &str, value: &str) -> Result<(), Failure> {
    gha.set_output(name, value)
        .map_err(|e| Failure::infra(format!("cannot write output {name}: {e}")))
}

fn docker_failure(e: DockerError) -> Failure {
    match e {
        DockerError::BadInput(m, h) => Failure::bad_input(m, h),
        DockerError::Verify(m) => Failure::infra(m).with_hint("the registry does not hold the scanned image under that digest; do not deploy it, and check for a concurrent push to the same tag"),
        other => Failure::infra(other.to_string()).with_hint("check that the Docker daemon runs and the registry is reachable (docker info, docker login)"),
    }
}

fn write_json(dir: &Path, name: &str, v: &impl serde::Serialize) -> Result<PathBuf, Failure> {
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
    let fail_on = Severity::parse(&a.fail_on).ok_or_else(|| {
        Failure::bad_input(
            format!("fail-on = {:?} is not a severity", a.fail_on),
            "use one of critical, high, medium, low, unknown",
        )
    })?;
    let ignores = match &a.ignore_file {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| {
                Failure::bad_input(
                    format!("cannot read ignore file {}: {e}", p.display()),
                    "fix the ignore-file path or remove it",
                )
            })?;
            policy::parse_ignore_file(&p.display().to_string(), &text).map_err(|e| {
                Failure::bad_input(
                    e.to_string(),
                    "each [[ignore]] entry needs id, reason and expires = \"YYYY-MM-DD\"",
                )
            })?
        }
        None => Vec::new(),
    };
    let policy = Policy {
        fail_on,
        ignore_unfixed: a.ignore_unfixed,
        ignores,
        today: a.today.unwrap_or_else(|| Utc::now().date_naive()),
    };
    a.osv_fetch.settings()?;
    let build_args = pairs("build-arg", &a.build_args)?;
    let mut secrets = Vec::new();
    for (id, path) in pairs("secret-file", &a.secret_files)? {
        secrets.push(BuildSecret::File {
            id,
            path: path.into(),
        });
    }
    for (id, var) in pairs("secret-env", &a.secret_envs)? {
        let value = std::env::var(&var).map_err(|_| {
            Failure::bad_input(
                format!("secret-env {id}: environment variable {var} is not set"),
                "export the variable or pass the secret through the action's `secrets` input",
            )
        })?;
        secrets.push(BuildSecret::Value {
            id,
            value: Secret::new(value),
        });
    }
    // The action's `secrets` input: `id=value` lines, read from the environment only.
    if let Ok(block) = std::env::var("DAVIT_BUILD_SECRETS") {
        for (id, value) in pairs("secrets", &[block])? {
            gha.mask(&value);
            secrets.push(BuildSecret::Value {
                id,
                value: Secret::new(value),
            });
        }
    }
    let password = std::env::var("DAVIT_REGISTRY_PASSWORD")
        .ok()
        .filter(|s| !s.is_empty())
        .map(Secret::new);
    if let Some(p) = &password {
        gha.mask(p.expose());
    }
    let login = match (&a.registry_username, password) {
        (Some(u), Some(p)) if !u.is_empty() => Some(Login {
            registry: a.registry.clone().filter(|r| !r.is_empty()),
            username: u.clone(),
            password: p,
        }),
        (_, None) => None,
        _ => {
            return Err(Failure::bad_input(
                "a registry password is set but no registry-username",
                "set registry-username (for GHCR: github.actor)",
            ));
        }
    };
    if a.push && a.archive.is_some() {
        return Err(Failure::bad_input(
            "--push with --archive: an archive cannot be pushed",
            "build or name a local image with --image to push",
        ));
    }
    for p in [Some(&a.context), a.dockerfile.as_ref()]
        .into_iter()
        .flatten()
    {
        if p.to_string_lossy().starts_with('-') {
            return Err(Failure::bad_input(
                format!("path {:?} starts with '-'", p.display().to_string()),
                "use ./name for paths that start with '-'",
            ));
        }
    }
    let meta_in = meta_input(&a.meta)?;
    let m = meta::compute(&meta_in).map_err(|e| {
        Failure::bad_input(
            e.to_string(),
            "see docker/metadata-action's tag syntax: type=ref|semver|sha|raw",
        )
    })?;
    if a.push && m.refs.is_empty() {
        return Err(Failure::bad_input(
            "push requested but no image name is set",
            "set `images` (e.g. ghcr.io/org/app)",
        ));
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
    let (docker, image_id, archive_path) = if let Some(ar) = &a.archive {
        (None, None, ar.clone())
    } else {
        let docker = Docker::locate().map_err(docker_failure)?;
        let id = match &a.image {
            Some(img) => {
                validate::image_ref("image", img)
                    .or_else(|_| {
                        if img.starts_with("sha256:") && !img.contains(char::is_whitespace) {
                            Ok(())
                        } else {
                            Err(())
                        }
                    })
                    .map_err(|_| {
                        Failure::bad_input(
                            format!("image = {img:?} is not an image reference"),
                            "name a local image, e.g. app:dev or sha256:<id>",
                        )
                    })?;
                docker.image_id(img).map_err(docker_failure)?
            }
            None => {
                let builder = docker.builder();
                gha.group_start(&format!(
                    "Build ({})",
                    match builder {
                        Builder::Buildx => "docker buildx build",
                        Builder::Classic => "classic docker build",
                    }
                ));
                let spec = BuildSpec {
                    context: a.context.clone(),
                    dockerfile: a.dockerfile.clone(),
                    target: a.target.clone().filter(|s| !s.is_empty()),
                    build_args: build_args.clone(),
                    secrets: secrets.clone(),
                    cache_from: lines(&a.cache_from),
                    cache_to: lines(&a.cache_to),
                    platform: a.platform.clone().filter(|s| !s.is_empty()),
                    labels: m.labels.clone(),
                    tags: m.refs.clone(),
                    pull: a.pull,
                };
                let r = docker.build(&spec, builder, &|l| gha.log(l));
                gha.group_end();
                r.map_err(docker_failure)?
            }
        };
        let tar = work.path().join("image.tar");
        gha.group_start("Export image");
        let r = docker.save(&id, &tar);
        gha.log(&format!("docker save {id}"));
        gha.group_end();
        r.map_err(docker_failure)?;
        (Some(docker), Some(id), tar)
    };

    // ---- SBOM from the exported layers.
    gha.group_start("SBOM");
    let files = archive::read(&archive_path, &catalog::wanted)
        .map_err(|e| Failure::infra(e.to_string()))?;
    let inv = catalog::inventory(&files);
    drop(files);
    if let Some(id) = &image_id
        && *id != inv.image_id
    {
        return Err(Failure::infra(format!(
            "docker save returned image {} but {id} was built",
            inv.image_id
        )));
    }
    let name = m
        .refs
        .first()
        .cloned()
        .or(a.image.clone())
        .unwrap_or_else(|| inv.image_id.clone());
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let serial = cyclonedx::urn_uuid();
    let cdx_path = write_json(
        &a.out_dir,
        "sbom.cdx.json",
        &cyclonedx::render(&inv, &name, &now, &serial),
    )?;
    let spdx_path = write_json(
        &a.out_dir,
        "sbom.spdx.json",
        &spdx::render(&inv, &name, &now, serial.trim_start_matches("urn:uuid:")),
    )?;
    let summary_sbom = SbomSummary::of(&inv);
    gha.log(&format!(
        "{} components: {:?}\n",
        summary_sbom.components, summary_sbom.by_type
    ));
    gha.group_end();

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
        sbom: summary_sbom,
        scan: outcome,
        decision,
        pushed: None,
        push_skipped: None,
    };
    let mut push_error = None;
    if a.push {
        match report.decision.verdict {
            Verdict::Pass => {
                let docker = docker.as_ref().expect("push without archive has docker");
                gha.group_start("Push");
                match docker.push(&report.image_id, &m.refs, login.as_ref(), &|l| gha.log(l)) {
                    Ok(p) => report.pushed = Some(p),
                    Err(e) => {
                        report.push_skipped = Some(format!("push failed: {e}"));
                        push_error = Some(docker_failure(e));
                    }
                }
                gha.group_end();
            }
            Verdict::Fail => report.push_skipped = Some("the policy rejected the image".into()),
            Verdict::NotScanned => report.push_skipped = Some("the scan did not run".into()),
        }
    }

    // ---- reports and outputs, also when the push failed.
    let sarif_artifact = a
        .dockerfile
        .clone()
        .unwrap_or_else(|| a.context.join("Dockerfile"));
    let sarif_artifact = sarif_artifact
        .to_string_lossy()
        .trim_start_matches("./")
        .to_string();
    let sarif_path = write_json(
        &a.out_dir,
        "scan.sarif",
        &report::sarif(&report, &sarif_artifact),
    )?;
    let report_path = write_json(&a.out_dir, "report.json", &report)?;
    let md = report::summary(&report, a.summary_findings);
    let md_path = a.out_dir.join("summary.md");
    std::fs::write(&md_path, &md)
        .map_err(|e| Failure::infra(format!("writing {}: {e}", md_path.display())))?;
    let _ = gha.summary(&md);
    for f in report.decision.blocking.iter().take(10) {
        gha.annotate(
            Level::Error,
            &Annotation {
                title: Some(format!("{} in {} {}", f.id, f.package, f.installed_version)),
                file: Some(sarif_artifact.clone()),
                line: None,
                message: format!(
                    "{} ({}); {}",
                    f.title,
                    f.severity,
                    f.fixed_version
                        .as_deref()
                        .map_or("no fix yet".into(), |v| format!("fixed in {v}"))
                ),
            },
        );
    }
    for e in &report.decision.expired {
        gha.annotate(
            Level::Warning,
            &Annotation {
                title: Some("ignore entry expired".into()),
                file: a.ignore_file.as_ref().map(|p| p.display().to_string()),
                line: None,
                message: format!(
                    "{} expired on {} and no longer applies ({} finding(s) counted again)",
                    e.rule.id, e.rule.expires, e.would_match
                ),
            },
        );
    }
    set_meta_outputs(gha, &m)?;
    out(gha, "image-id", &report.image_id)?;
    out(
        gha,
        "digest",
        report.pushed.as_ref().map_or("", |p| p.digest.as_str()),
    )?;
    out(
        gha,
        "repo-digests",
        &report
            .pushed
            .as_ref()
            .map_or(String::new(), |p| p.repo_digests.join("\n")),
    )?;
    out(
        gha,
        "verdict",
        match report.decision.verdict {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::NotScanned => "not-scanned",
        },
    )?;
    out(gha, "sbom", &cdx_path.display().to_string())?;
    out(gha, "sbom-spdx", &spdx_path.display().to_string())?;
    out(gha, "sarif", &sarif_path.display().to_string())?;
    out(gha, "report", &report_path.display().to_string())?;
    out(gha, "summary", &md_path.display().to_string())?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    }
    if let Some(e) = push_error {
        return Err(e);
    }
    match report.decision.verdict {
        Verdict::Pass => Ok(Exit::Ok),
        Verdict::Fail => Err(Failure::rejected(format!(
            "{} finding(s) at or above {} block this image; nothing was pushed (see {})",
            report.decision.blocking.len(),
            report.decision.fail_on,
            md_path.display()
        ))
        .with_hint("upgrade the packages listed with a fixed version, or add a reviewed entry with reason and expiry to the ignore file")),
        Verdict::NotScanned => {
            let (reason, hint) = match &report.scan {
                ScanOutcome::DidNotRun { reason, hint } => (reason.clone(), hint.clone()),
                _ => (String::new(), String::new()),
            };
            Err(Failure::infra(format!("scan did not run: {reason}; the image is unchecked and was not pushed")).with_hint(hint))
        }
    }
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
