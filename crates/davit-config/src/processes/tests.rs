use super::*;
use std::path::Path;

fn no_vars(_: &str) -> Option<String> {
    None
}

fn set(cfg: &Config, env: &str) -> Result<AppSet, ConfigError> {
    cfg.app_set(&Resolve {
        env_name: env,
        lookup: &no_vars,
    })
}

const HEAD: &str = r#"
[app]
name = "shop"

[image]
name = "ghcr.io/acme/shop"

[environments.production]
strategy = "blue-green"
ports = { public = 8080, blue = 8081, green = 8082 }
"#;

fn parse(extra: &str) -> Result<Config, ConfigError> {
    Config::parse(
        &format!("{HEAD}\n{extra}"),
        Path::new("davit.toml"),
        Path::new("/repo"),
    )
}

fn problems(e: ConfigError) -> String {
    e.to_string()
}

#[test]
fn the_example_stack_resolves_from_its_compose_file() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/django-celery");
    let cfg = Config::load(&Path::new(dir).join("davit.toml")).unwrap();
    let set = set(&cfg, "production").unwrap();
    let names: Vec<_> = set.processes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["backend", "celery-beat", "celery-worker"]);
    assert!(set.processes[0].web);
    // The secret in the compose file stays a template: expanded only into the service's 0600
    // env file when it starts, never here.
    let pg = &set.services[0];
    assert_eq!(pg.name, "postgres");
    assert!(matches!(
        &pg.env["POSTGRES_PASSWORD"],
        EnvValue::Template(t) if t.contains("${POSTGRES_PASSWORD")
    ));
    insta::assert_yaml_snapshot!("example_app_set", set);
}

#[test]
fn processes_and_services_from_davit_toml_alone() {
    let cfg = parse(
        r#"
[processes.web]
volumes = ["media:/app/media"]

[processes.worker]
command = ["celery", "-A", "app", "worker"]
replicas = 2
stop_signal = "TERM"
stop_grace_secs = 90
ready = { command = ["celery", "-A", "app", "inspect", "ping"], timeout_secs = 30 }
volumes = ["media:/app/media:ro"]

[processes.scheduler]
command = ["celery", "-A", "app", "beat"]
singleton = true

[services.redis]
image = "redis:7"
volumes = ["redis_data:/data"]

[volumes.media]
[volumes.redis_data]
name = "team-redis"
"#,
    )
    .unwrap();
    let s = set(&cfg, "production").unwrap();
    assert_eq!(s.network, "shop-production");
    assert_eq!(s.volumes, ["shop-production_media", "team-redis"]);
    let w = s.processes.iter().find(|p| p.name == "worker").unwrap();
    assert_eq!(
        (w.replicas, w.stop_signal.as_str(), w.stop_grace_secs),
        (2, "SIGTERM", 90)
    );
    assert_eq!(
        w.mounts[0].docker_arg(),
        "type=volume,source=shop-production_media,target=/app/media,readonly"
    );
    assert!(matches!(
        w.readiness,
        Readiness::Command {
            timeout_secs: 30,
            ..
        }
    ));
    let b = s.processes.iter().find(|p| p.name == "scheduler").unwrap();
    assert!(b.singleton);
    assert_eq!(b.readiness, Readiness::UpFor { secs: 5 });
    assert_eq!(s.web().unwrap().name, "web");
    assert_eq!(s.others().count(), 2);
    assert_eq!(
        s.services[0].mounts[0].docker_arg(),
        "type=volume,source=team-redis,target=/data"
    );
}

#[test]
fn a_scheduler_must_say_whether_it_may_run_twice() {
    let cfg = parse(
        r#"
[processes.web]
[processes.beat]
command = ["celery", "-A", "app", "beat"]
"#,
    )
    .unwrap();
    let e = problems(set(&cfg, "production").unwrap_err());
    assert!(e.contains("looks like a scheduler"), "{e}");
    assert!(
        e.contains("hint: add [processes.beat] singleton = true"),
        "{e}"
    );
}

#[test]
fn an_undeclared_volume_names_the_fix() {
    let cfg = parse(
        r#"
[processes.web]
volumes = ["media:/app/media"]
"#,
    )
    .unwrap();
    let e = problems(set(&cfg, "production").unwrap_err());
    assert!(e.contains("volume \"media\" is not declared"), "{e}");
    assert!(e.contains("hint: add [volumes.media]"), "{e}");
}

#[test]
fn bad_mounts_are_rejected() {
    for (spec, want) in [
        ("media", "is not source:/target"),
        ("media:relative", "must be an absolute path"),
        ("media:/x:rx", "is not ro or rw"),
        ("/a,b:/x", "commas are not allowed"),
    ] {
        let cfg = parse(&format!(
            "[volumes.media]\n[processes.web]\nvolumes = [{spec:?}]\n"
        ))
        .unwrap();
        let e = problems(set(&cfg, "production").unwrap_err());
        assert!(e.contains(want), "{spec}: {e}");
    }
}

#[test]
fn table_shapes_are_checked_when_the_file_is_read() {
    let e = problems(
        parse(
            r#"
[processes.worker]
command = ["celery"]
stop_signal = "SIGBOGUS"
replicas = 0
ready = { healthcheck = true, up_secs = 3 }

[processes.Bad_Name]
command = ["x"]

[services.worker]
image = "--privileged"
"#,
        )
        .unwrap_err(),
    );
    for want in [
        "stop_signal = \"SIGBOGUS\" is not a signal",
        "replicas = 0",
        "must say one way to know the process is ready",
        "processes key \"Bad_Name\"",
        "is both a process and a service",
        "services.worker.image",
    ] {
        assert!(e.contains(want), "missing {want:?} in:\n{e}");
    }
}

#[test]
fn the_web_process_must_be_clear() {
    let dir = tempfile_dir();
    std::fs::write(
        dir.join("compose.yml"),
        "services:\n  a: {build: ., ports: ['1:1']}\n  b: {build: ., ports: ['2:2'], command: x}\n",
    )
    .unwrap();
    let text = format!("compose_file = \"compose.yml\"\n{HEAD}");
    let cfg = Config::parse(&text, Path::new("davit.toml"), &dir).unwrap();
    let e = problems(set(&cfg, "production").unwrap_err());
    assert!(
        e.contains(
            "cannot tell which of the processes a, b is the web process (several publish ports)"
        ),
        "{e}"
    );
    assert!(e.contains("hint: add [processes.<name>] web = true"), "{e}");

    let text = format!("compose_file = \"compose.yml\"\n{HEAD}\n[processes.b]\nweb = true\n");
    let cfg = Config::parse(&text, Path::new("davit.toml"), &dir).unwrap();
    let s = set(&cfg, "production").unwrap();
    assert_eq!(s.web().unwrap().name, "b");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_missing_or_broken_compose_file_names_it() {
    let dir = tempfile_dir();
    let text = format!("compose_file = \"nope.yml\"\n{HEAD}");
    let cfg = Config::parse(&text, Path::new("davit.toml"), &dir).unwrap();
    let e = problems(set(&cfg, "production").unwrap_err());
    assert!(e.contains("nope.yml") && e.contains("hint:"), "{e}");
    std::fs::write(dir.join("bad.yml"), "services: [1, 2]\n").unwrap();
    let text = format!("compose_file = \"bad.yml\"\n{HEAD}");
    let cfg = Config::parse(&text, Path::new("davit.toml"), &dir).unwrap();
    let e = problems(set(&cfg, "production").unwrap_err());
    assert!(
        e.contains("bad.yml") && e.contains("hint: compose_file must be a Compose file"),
        "{e}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn compose_values_are_interpolated_and_bind_mounts_resolve_beside_the_file() {
    let dir = tempfile_dir();
    std::fs::create_dir_all(dir.join("deploy")).unwrap();
    std::fs::write(
        dir.join("deploy/compose.yml"),
        r#"
services:
  web: {build: ., command: "serve --workers ${WORKERS:-3}", volumes: ["./uploads:/app/media"]}
  cache: {image: "redis:${REDIS_TAG:-7}", command: redis-server --save ""}
"#,
    )
    .unwrap();
    let text = format!("compose_file = \"deploy/compose.yml\"\n{HEAD}");
    let cfg = Config::parse(&text, Path::new("davit.toml"), &dir).unwrap();
    let lookup = |v: &str| (v == "REDIS_TAG").then(|| "7.2".to_string());
    let s = cfg
        .app_set(&Resolve {
            env_name: "production",
            lookup: &lookup,
        })
        .unwrap();
    assert_eq!(
        s.processes[0].command.as_deref().unwrap(),
        ["serve", "--workers", "3"]
    );
    assert_eq!(
        s.processes[0].mounts[0].source,
        MountSource::Bind(dir.join("deploy/./uploads"))
    );
    assert_eq!(s.services[0].image, "redis:7.2");
    assert_eq!(
        s.services[0].command.as_deref().unwrap(),
        ["redis-server", "--save", ""]
    );
    std::fs::remove_dir_all(dir).unwrap();
}

fn tempfile_dir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "davit-config-processes-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}
