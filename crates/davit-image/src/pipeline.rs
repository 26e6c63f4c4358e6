//! The stages of the image pipeline that `run_cmd` runs in order: read and check every input,
//! build (or take) the image and export it, write the SBOMs, push only what passed, publish the
//! reports and outputs, and turn the decision into the exit code. One function per stage keeps
//! each testable and `run_cmd` a page that reads as the pipeline.

use crate::docker::{BuildSecret, BuildSpec, Builder, Docker, Login};
use crate::finding::{ScanOutcome, Severity};
use crate::meta::{self, Meta};
use crate::policy::{self, Policy, Verdict};
use crate::report::{self, Report, SbomSummary};
use crate::run::{
    RunArgs, docker_failure, lines, meta_input, out, pairs, set_meta_outputs, write_json,
};
use crate::sbom::{Inventory, archive, catalog, cyclonedx, spdx};
use chrono::Utc;
use davit_core::{Exit, Failure, Secret, validate};
use davit_gha::{Annotation, Gha, Level};
use std::path::{Path, PathBuf};

/// Every input, checked before any work.
pub(crate) struct Inputs {
    pub policy: Policy,
    pub build_args: Vec<(String, String)>,
    pub secrets: Vec<BuildSecret>,
    pub login: Option<Login>,
    pub meta: Meta,
}

/// Everything that can be wrong with the input fails here, before work.
pub(crate) fn inputs(a: &RunArgs, gha: &Gha) -> Result<Inputs, Failure> {
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
    Ok(Inputs {
        policy,
        build_args,
        secrets,
        login,
        meta: m,
    })
}

/// The image: built, a named local one, or an archive given; exported to a tar in `work`.
pub(crate) fn build_or_take(
    a: &RunArgs,
    gha: &Gha,
    m: &Meta,
    build_args: Vec<(String, String)>,
    secrets: Vec<BuildSecret>,
    work: &Path,
) -> Result<(Option<Docker>, Option<String>, PathBuf), Failure> {
    Ok(if let Some(ar) = &a.archive {
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
                    build_args,
                    secrets,
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
        let tar = work.join("image.tar");
        gha.group_start("Export image");
        let r = docker.save(&id, &tar);
        gha.log(&format!("docker save {id}"));
        gha.group_end();
        r.map_err(docker_failure)?;
        (Some(docker), Some(id), tar)
    })
}

/// The SBOMs written and summarised.
pub(crate) struct Sboms {
    pub cdx: PathBuf,
    pub spdx: PathBuf,
    pub summary: SbomSummary,
}

/// The SBOM from the exported layers (CycloneDX and SPDX), checked against the image built.
pub(crate) fn sbom(
    a: &RunArgs,
    gha: &Gha,
    m: &Meta,
    archive_path: &Path,
    image_id: Option<&str>,
) -> Result<(Inventory, Sboms), Failure> {
    gha.group_start("SBOM");
    let files =
        archive::read(archive_path, &catalog::wanted).map_err(|e| Failure::infra(e.to_string()))?;
    let inv = catalog::inventory(&files);
    drop(files);
    if let Some(id) = image_id
        && id != inv.image_id
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
    Ok((
        inv,
        Sboms {
            cdx: cdx_path,
            spdx: spdx_path,
            summary: summary_sbom,
        },
    ))
}

/// Push only what passed; returns the push's failure, if any (the reports are written anyway).
pub(crate) fn push(
    a: &RunArgs,
    gha: &Gha,
    m: &Meta,
    docker: Option<&Docker>,
    login: Option<&Login>,
    report: &mut Report,
) -> Option<Failure> {
    let mut push_error = None;
    if a.push {
        match report.decision.verdict {
            Verdict::Pass => {
                let docker = docker.expect("push without archive has docker");
                gha.group_start("Push");
                match docker.push(&report.image_id, &m.refs, login, &|l| gha.log(l)) {
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
    push_error
}

/// The reports (SARIF, JSON, markdown), the summary, annotations and outputs. Returns the
/// markdown summary's path.
pub(crate) fn publish(
    a: &RunArgs,
    gha: &Gha,
    m: &Meta,
    report: &Report,
    sbom: &Sboms,
) -> Result<PathBuf, Failure> {
    let cdx_path = &sbom.cdx;
    let spdx_path = &sbom.spdx;
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
        &report::sarif(report, &sarif_artifact),
    )?;
    let report_path = write_json(&a.out_dir, "report.json", report)?;
    let md = report::summary(report, a.summary_findings);
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
    set_meta_outputs(gha, m)?;
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
            serde_json::to_string_pretty(report).unwrap_or_default()
        );
    }
    Ok(md_path)
}

/// The exit code: a failed push first, then the policy's decision.
pub(crate) fn conclude(
    report: &Report,
    md_path: &Path,
    push_error: Option<Failure>,
) -> Result<Exit, Failure> {
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
