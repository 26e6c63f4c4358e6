//! The Docker CLI calls: build, save, tag, login, push, and the digest check.
//!
//! Command lines are built as [`Cmd`] values by pure functions ([`build_cmd`]) so they can be
//! snapshot-tested and logged with secrets redacted; [`run`] executes them. Two rules are
//! enforced here rather than left to callers:
//!
//! * Build secrets are BuildKit secrets (`--secret id=..,env=..`, value passed in the child's
//!   environment) and nothing else. The classic builder has no secrets, so asking it for one is
//!   an error that says how to get BuildKit, never a silent `--build-arg`.
//! * Registry credentials go to `docker login --password-stdin` inside a temporary
//!   `DOCKER_CONFIG` directory that is deleted when the push returns, on success or error, so
//!   no auth file outlives the step and the password never appears in argv.
//!
//! After pushing, the registry's manifest is read back and its `config.digest` must equal the
//! image ID that was scanned: the output digest provably names the scanned image.

use davit_core::{Cmd, FileBody, Secret};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("{0}")]
    BadInput(String, String),
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Failed {
        cmd: String,
        status: String,
        stderr: String,
    },
    #[error("could not run `{cmd}`: {source}")]
    Spawn { cmd: String, source: std::io::Error },
    #[error("{0}")]
    Verify(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

/// Which builder `docker` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Builder {
    /// `docker buildx build` (BuildKit): secrets, cache export, platforms.
    Buildx,
    /// `docker build` with `DOCKER_BUILDKIT=0`: no secrets, `--cache-from` only, one platform.
    Classic,
}

/// A build secret; the value never reaches argv.
#[derive(Debug, Clone)]
pub enum BuildSecret {
    /// Value given to the build through an environment variable of the docker process.
    Value { id: String, value: Secret<String> },
    /// A file on the runner.
    File { id: String, path: PathBuf },
}

/// What to build.
#[derive(Debug, Clone, Default)]
pub struct BuildSpec {
    pub context: PathBuf,
    pub dockerfile: Option<PathBuf>,
    pub target: Option<String>,
    pub build_args: Vec<(String, String)>,
    pub secrets: Vec<BuildSecret>,
    pub cache_from: Vec<String>,
    pub cache_to: Vec<String>,
    pub platform: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub tags: Vec<String>,
    pub pull: bool,
}

/// The docker CLI.
#[derive(Debug, Clone)]
pub struct Docker {
    pub program: PathBuf,
}

impl Docker {
    /// Find `docker` on PATH.
    pub fn locate() -> Result<Docker, DockerError> {
        which::which("docker")
            .map(|program| Docker { program })
            .map_err(|_| {
                DockerError::BadInput(
                    "docker is not installed or not on PATH".into(),
                    "install Docker Engine (or run on a GitHub-hosted ubuntu runner)".into(),
                )
            })
    }

    fn cmd(&self) -> Cmd {
        Cmd::new(self.program.display().to_string())
    }

    /// Whether the buildx plugin answers.
    pub fn builder(&self) -> Builder {
        let ok = Command::new(&self.program)
            .args(["buildx", "version"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            Builder::Buildx
        } else {
            Builder::Classic
        }
    }

    /// Build and return the image ID.
    pub fn build(
        &self,
        spec: &BuildSpec,
        builder: Builder,
        log: &dyn Fn(&str),
    ) -> Result<String, DockerError> {
        let dir = tempfile::tempdir().map_err(|e| io("creating a temp dir", e))?;
        let iid = dir.path().join("iid");
        let cmd = build_cmd(self.cmd(), spec, builder, &iid)?;
        log(&format!("$ {}", cmd.render()));
        run(&cmd, Output::ToStderr)?;
        let id =
            std::fs::read_to_string(&iid).map_err(|e| io("reading the build's image id", e))?;
        Ok(id.trim().to_string())
    }

    /// The local image ID of a reference.
    pub fn image_id(&self, reference: &str) -> Result<String, DockerError> {
        let c = self
            .cmd()
            .args(["image", "inspect", "--format", "{{.Id}}", "--", reference]);
        Ok(run(&c, Output::Capture)?.trim().to_string())
    }

    /// `docker save` the image into `dest`.
    pub fn save(&self, image: &str, dest: &Path) -> Result<(), DockerError> {
        let c = self
            .cmd()
            .args(["save", "-o"])
            .arg(dest.display().to_string())
            .arg(image);
        run(&c, Output::Capture).map(|_| ())
    }

    pub fn tag(&self, image: &str, reference: &str) -> Result<(), DockerError> {
        run(&self.cmd().args(["tag", image, reference]), Output::Capture).map(|_| ())
    }

    /// Tag, (log in,) push every reference, and verify that the pushed manifest is the image
    /// `image_id`. Returns the manifest digest.
    pub fn push(
        &self,
        image_id: &str,
        refs: &[String],
        login: Option<&Login>,
        log: &dyn Fn(&str),
    ) -> Result<Pushed, DockerError> {
        if refs.is_empty() {
            return Err(DockerError::BadInput(
                "push requested but there is no image name to push to".into(),
                "set `images` (e.g. ghcr.io/org/app) so that tags can be computed".into(),
            ));
        }
        // Credentials live only as long as this value: dropped (and deleted) on every return.
        let config = match login {
            Some(l) => Some(self.login(l, refs, log)?),
            None => None,
        };
        let with_config = |c: Cmd| match &config {
            Some(dir) => c.env("DOCKER_CONFIG", dir.path().display().to_string()),
            None => c,
        };
        let mut digest: Option<String> = None;
        for r in refs {
            self.tag(image_id, r)?;
            let c = with_config(self.cmd().args(["push", r.as_str()]));
            log(&format!("$ {}", c.render()));
            let out = run(&c, Output::Capture)?;
            log(out.trim_end());
            let d = parse_push_digest(&out).ok_or_else(|| {
                DockerError::Verify(format!("`docker push {r}` did not report a digest"))
            })?;
            match &digest {
                Some(prev) if *prev != d => {
                    return Err(DockerError::Verify(format!(
                        "pushes of one image produced different digests ({prev} and {d})"
                    )));
                }
                _ => digest = Some(d),
            }
        }
        let digest = digest.unwrap_or_default();
        let mut repo_digests = Vec::new();
        for r in refs {
            let repo = repository_of(r);
            let by_digest = format!("{repo}@{digest}");
            if !repo_digests.contains(&by_digest) {
                let config_digest = self.manifest_config_digest(&by_digest, &with_config)?;
                if config_digest != image_id {
                    return Err(DockerError::Verify(format!(
                        "the registry's manifest {by_digest} points at config {config_digest}, not the scanned image {image_id}"
                    )));
                }
                repo_digests.push(by_digest);
            }
        }
        drop(config);
        Ok(Pushed {
            digest,
            repo_digests,
        })
    }

    fn login(
        &self,
        l: &Login,
        refs: &[String],
        log: &dyn Fn(&str),
    ) -> Result<tempfile::TempDir, DockerError> {
        let registry = match &l.registry {
            Some(r) => r.clone(),
            None => registry_of(&refs[0]),
        };
        for r in refs {
            if registry_of(r) != registry {
                return Err(DockerError::BadInput(
                    format!("credentials are for {registry} but {r} is in another registry"),
                    "push to one registry per step, or log in beforehand (docker/login-action) and omit registry-password".into(),
                ));
            }
        }
        let base = std::env::var_os("RUNNER_TEMP")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let dir = tempfile::Builder::new()
            .prefix("davit-docker-config-")
            .tempdir_in(base)
            .map_err(|e| io("creating a temporary DOCKER_CONFIG", e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
                .map_err(|e| io("restricting the temporary DOCKER_CONFIG", e))?;
        }
        // With no auth entries at all, the docker CLI picks a system credential helper
        // (secretservice, pass) when one is installed, and the password would outlive this
        // directory in the user's keyring. A placeholder entry keeps the plain file store.
        std::fs::write(
            dir.path().join("config.json"),
            br#"{"auths":{"davit.invalid":{}}}"#,
        )
        .map_err(|e| io("writing the temporary DOCKER_CONFIG", e))?;
        let c = self
            .cmd()
            .env("DOCKER_CONFIG", dir.path().display().to_string())
            .args([
                "login",
                "--username",
                l.username.as_str(),
                "--password-stdin",
                registry.as_str(),
            ])
            .stdin(FileBody::Secret(l.password.clone()));
        log(&format!("$ {}", c.render()));
        run(&c, Output::Capture)?;
        Ok(dir)
    }

    /// `config.digest` of a manifest in the registry (`docker manifest inspect`).
    fn manifest_config_digest(
        &self,
        by_digest: &str,
        with_config: &dyn Fn(Cmd) -> Cmd,
    ) -> Result<String, DockerError> {
        let mut c = self.cmd().args(["manifest", "inspect"]);
        if is_loopback_registry(&registry_of(by_digest)) {
            // Plain-HTTP registries on the loopback interface are what Docker itself allows
            // without configuration; `manifest inspect` needs to be told.
            c = c.arg("--insecure");
        }
        let c = with_config(c.arg(by_digest));
        let out = run(&c, Output::Capture)?;
        let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| {
            DockerError::Verify(format!("manifest of {by_digest} is not JSON: {e}"))
        })?;
        v.pointer("/config/digest")
            .and_then(|d| d.as_str())
            .map(str::to_string)
            .ok_or_else(|| {
                DockerError::Verify(format!(
                    "manifest of {by_digest} has no config digest (a manifest list?)"
                ))
            })
    }
}

/// Registry credentials.
#[derive(Debug, Clone)]
pub struct Login {
    /// Registry host; by default the host of the first image name.
    pub registry: Option<String>,
    pub username: String,
    pub password: Secret<String>,
}

/// What a push produced.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Pushed {
    /// `sha256:...` manifest digest.
    pub digest: String,
    /// `repo@sha256:...` for each repository pushed to.
    pub repo_digests: Vec<String>,
}

/// The repository part of `repo:tag` / `repo@digest`.
pub fn repository_of(reference: &str) -> String {
    let no_digest = reference.split('@').next().unwrap_or(reference);
    let last_slash = no_digest.rfind('/').map_or(0, |i| i + 1);
    match no_digest[last_slash..].rfind(':') {
        Some(i) => no_digest[..last_slash + i].to_string(),
        None => no_digest.to_string(),
    }
}

/// The registry host of a reference (`docker.io` when none is named).
pub fn registry_of(reference: &str) -> String {
    match reference.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first.to_string()
        }
        _ => "docker.io".to_string(),
    }
}

fn is_loopback_registry(host: &str) -> bool {
    let h = host.rsplit_once(':').map_or(host, |(h, p)| {
        if p.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    h == "localhost" || h.starts_with("127.") || h == "[::1]"
}

/// `latest: digest: sha256:<hex> size: 528` -> `sha256:<hex>`.
pub fn parse_push_digest(out: &str) -> Option<String> {
    out.lines().find_map(|l| {
        let i = l.find("digest: sha256:")?;
        let d = l[i + 8..].split_whitespace().next()?;
        (d.len() == 71).then(|| d.to_string())
    })
}

/// The build command for `builder`, with the image ID written to `iidfile`.
pub fn build_cmd(
    base: Cmd,
    spec: &BuildSpec,
    builder: Builder,
    iidfile: &Path,
) -> Result<Cmd, DockerError> {
    let mut c = base;
    match builder {
        Builder::Buildx => c = c.args(["buildx", "build", "--load"]),
        Builder::Classic => {
            if !spec.secrets.is_empty() {
                let ids: Vec<&str> = spec
                    .secrets
                    .iter()
                    .map(|s| match s {
                        BuildSecret::Value { id, .. } | BuildSecret::File { id, .. } => id.as_str(),
                    })
                    .collect();
                return Err(DockerError::BadInput(
                    format!(
                        "build secrets ({}) need BuildKit, and this docker has no buildx plugin",
                        ids.join(", ")
                    ),
                    "install the buildx plugin (Debian: docker-buildx; Docker's repo: docker-buildx-plugin, or docker/setup-buildx-action); secrets are never passed as build args".into(),
                ));
            }
            if !spec.cache_to.is_empty() {
                return Err(DockerError::BadInput(
                    "cache-to needs BuildKit, and this docker has no buildx plugin".into(),
                    "install the buildx plugin or remove cache-to".into(),
                ));
            }
            c = c.env("DOCKER_BUILDKIT", "0").arg("build");
        }
    }
    c = c.arg("--iidfile").arg(iidfile.display().to_string());
    if let Some(f) = &spec.dockerfile {
        c = c.arg("--file").arg(f.display().to_string());
    }
    if let Some(t) = &spec.target {
        c = c.args(["--target", t.as_str()]);
    }
    if let Some(p) = &spec.platform {
        c = c.args(["--platform", p.as_str()]);
    }
    if spec.pull {
        c = c.arg("--pull");
    }
    for (k, v) in &spec.build_args {
        c = c.arg("--build-arg").arg(format!("{k}={v}"));
    }
    for (i, s) in spec.secrets.iter().enumerate() {
        match s {
            BuildSecret::Value { id, value } => {
                let var = format!("DAVIT_BUILD_SECRET_{i}");
                c = c.arg("--secret").arg(format!("id={id},env={var}"));
                c = c.secret_env(var, value.clone());
            }
            BuildSecret::File { id, path } => {
                c = c
                    .arg("--secret")
                    .arg(format!("id={id},src={}", path.display()));
            }
        }
    }
    for x in &spec.cache_from {
        c = c.arg("--cache-from").arg(x);
    }
    for x in &spec.cache_to {
        c = c.arg("--cache-to").arg(x);
    }
    for (k, v) in &spec.labels {
        c = c.arg("--label").arg(format!("{k}={v}"));
    }
    for t in &spec.tags {
        c = c.arg("--tag").arg(t);
    }
    // `--` would be read as the context by docker; a context starting with '-' is refused
    // upstream (validate::relative_path), so the context is the last plain argument.
    Ok(c.arg(spec.context.display().to_string()))
}

/// Where a command's stdout goes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Collected and returned (stderr collected for the error message).
    Capture,
    /// Streamed to our stderr (build logs), so our stdout stays data.
    ToStderr,
}

/// Run a [`Cmd`]: env (secrets exposed only to the child), stdin, and output handling.
pub fn run(c: &Cmd, output: Output) -> Result<String, DockerError> {
    let mut p = Command::new(&c.program);
    p.args(&c.args);
    for (k, v) in &c.env {
        p.env(k, v.expose());
    }
    if let Some(d) = &c.cwd {
        p.current_dir(d);
    }
    p.stdin(if c.stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    match output {
        Output::Capture => {
            p.stdout(Stdio::piped()).stderr(Stdio::piped());
        }
        Output::ToStderr => {
            use std::os::fd::AsFd;
            let err = std::io::stderr()
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| io("duplicating stderr", e))?;
            p.stdout(Stdio::from(err)).stderr(Stdio::inherit());
        }
    }
    let mut child = p.spawn().map_err(|source| DockerError::Spawn {
        cmd: c.render(),
        source,
    })?;
    if let Some(body) = &c.stdin
        && let Some(mut sin) = child.stdin.take()
    {
        // Errors here surface as the command's own failure below.
        let _ = sin.write_all(body.expose().as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|source| DockerError::Spawn {
            cmd: c.render(),
            source,
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(8).collect();
        return Err(DockerError::Failed {
            cmd: c.render(),
            status: out.status.to_string(),
            stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        });
    }
    Ok(stdout)
}

fn io(context: &str, source: std::io::Error) -> DockerError {
    DockerError::Io {
        context: context.to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> BuildSpec {
        BuildSpec {
            context: "app".into(),
            dockerfile: Some("app/Dockerfile".into()),
            target: Some("runtime".into()),
            build_args: vec![("VERSION".into(), "1.2.3".into())],
            secrets: vec![BuildSecret::Value {
                id: "npmrc".into(),
                value: Secret::new("s3cr3t-token".into()),
            }],
            cache_from: vec!["type=gha".into()],
            cache_to: vec!["type=gha,mode=max".into()],
            platform: Some("linux/amd64".into()),
            labels: [(
                "org.opencontainers.image.revision".to_string(),
                "abc".to_string(),
            )]
            .into(),
            tags: vec!["127.0.0.1:5000/app:main".into()],
            pull: false,
        }
    }

    #[test]
    fn buildx_passes_secrets_through_env_only() {
        let c = build_cmd(
            Cmd::new("docker"),
            &spec(),
            Builder::Buildx,
            Path::new("/t/iid"),
        )
        .unwrap();
        assert!(c.args.iter().all(|a| !a.contains("s3cr3t")), "{:?}", c.args);
        assert_eq!(c.env[0].1.expose(), "s3cr3t-token");
        insta::assert_snapshot!(c.render());
    }

    #[test]
    fn classic_builder_refuses_secrets_instead_of_using_build_args() {
        let e = build_cmd(
            Cmd::new("docker"),
            &spec(),
            Builder::Classic,
            Path::new("/t/iid"),
        )
        .unwrap_err();
        let DockerError::BadInput(msg, hint) = e else {
            panic!("{e}")
        };
        assert!(
            msg.contains("need BuildKit") && msg.contains("npmrc"),
            "{msg}"
        );
        assert!(hint.contains("buildx"), "{hint}");
        let mut s = spec();
        s.secrets.clear();
        s.cache_to.clear();
        let c = build_cmd(
            Cmd::new("docker"),
            &s,
            Builder::Classic,
            Path::new("/t/iid"),
        )
        .unwrap();
        insta::assert_snapshot!(c.render());
    }

    #[test]
    fn references_and_digests() {
        assert_eq!(
            repository_of("127.0.0.1:5000/app:main"),
            "127.0.0.1:5000/app"
        );
        assert_eq!(repository_of("127.0.0.1:5000/app"), "127.0.0.1:5000/app");
        assert_eq!(repository_of("ghcr.io/a/b@sha256:00"), "ghcr.io/a/b");
        assert_eq!(registry_of("127.0.0.1:5000/app:main"), "127.0.0.1:5000");
        assert_eq!(registry_of("library/app:1"), "docker.io");
        assert!(is_loopback_registry("127.0.0.1:5000"));
        assert!(!is_loopback_registry("ghcr.io"));
        let out = "The push refers to repository [127.0.0.1:5000/app]\n5f70bf18a086: Pushed\nmain: digest: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef size: 527\n";
        assert_eq!(
            parse_push_digest(out).as_deref(),
            Some("sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
        );
    }
}
