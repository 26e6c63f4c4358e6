use super::*;
use std::path::Path;

const GOOD: &str = r#"
[app]
name = "shop"
port = 8000
env = { DJANGO_SETTINGS_MODULE = "shop.settings" }
secret_env = ["DATABASE_URL"]

[image]
name = "ghcr.io/acme/shop"

[environments.staging]
strategy = "compose"
port = 8090

[environments.production]
strategy = "blue-green"
ports = { public = 8080, blue = 8081, green = 8082 }
health = { path = "/healthz", consecutive = 5 }

[[environments.production.hooks.pre_deploy]]
run = ["python", "manage.py", "migrate"]
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("davit.toml"), Path::new("/repo"))
}

fn problems(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn good_config_has_defaults_and_overlays() {
    let c = parse(GOOD).unwrap();
    let prod = c.environment("production").unwrap();
    assert_eq!(prod.strategy, Strategy::BlueGreen);
    assert_eq!(prod.host, "local");
    assert_eq!(prod.bind, "127.0.0.1");
    let h = c.health_for(prod);
    assert_eq!(
        (h.path.as_str(), h.consecutive, h.interval_ms),
        ("/healthz", 5, 500)
    );
    let staging = c.environment("staging").unwrap();
    assert_eq!(c.health_for(staging).path, "/health");
    assert_eq!(prod.verify.watch_secs, 30);
    assert_eq!(prod.hooks.pre_deploy[0].on, HookPlace::Image);
    let relative = parse(&format!("state_dir = \"state\"\n{GOOD}")).unwrap();
    assert_eq!(
        relative.state_dir_for("production", prod),
        Path::new("/repo/state/shop-production")
    );
}

#[test]
fn the_default_state_folder_is_outside_the_repository() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| std::ffi::OsString::from(v))
        }
    };
    assert_eq!(
        default_state_root(&env(&[("XDG_STATE_HOME", "/x"), ("HOME", "/home/u")])),
        Path::new("/x/davit")
    );
    assert_eq!(
        default_state_root(&env(&[("XDG_STATE_HOME", "rel"), ("HOME", "/home/u")])),
        Path::new("/home/u/.local/state/davit")
    );
    assert_eq!(default_state_root(&env(&[])), Path::new("/var/lib/davit"));
    let c = parse(GOOD).unwrap();
    let dir = c.state_dir_for("production", c.environment("production").unwrap());
    assert!(!dir.starts_with("/repo"), "{}", dir.display());
    assert!(dir.is_absolute());
}

#[test]
fn a_config_named_relative_to_the_working_folder_gives_absolute_paths() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("davit.toml"),
        format!("state_dir = \".state\"\n{GOOD}"),
    )
    .unwrap();
    // What the README and the actions pass: a bare file name, resolved against the working
    // folder once, so nothing davit derives from it is relative.
    let rel = pathdiff(dir.path());
    let c = Config::load(&rel.join("davit.toml")).unwrap();
    assert!(c.base_dir.is_absolute(), "{}", c.base_dir.display());
    let prod = c.environment("production").unwrap();
    assert_eq!(
        c.state_dir_for("production", prod),
        std::fs::canonicalize(dir.path())
            .unwrap()
            .join(".state/shop-production")
    );
}

/// `dir` relative to the current folder (`../../tmp/x` style).
fn pathdiff(dir: &Path) -> std::path::PathBuf {
    let cwd = std::env::current_dir().unwrap();
    let up = cwd.components().count() - 1;
    let mut p = std::path::PathBuf::new();
    for _ in 0..up {
        p.push("..");
    }
    p.join(dir.strip_prefix("/").unwrap())
}

#[test]
fn unknown_environment_lists_the_known_ones() {
    let c = parse(GOOD).unwrap();
    let e = c.environment("prod").unwrap_err().to_string();
    assert!(e.contains("defined: production, staging"), "{e}");
    assert!(e.contains("hint: add [environments.prod]"), "{e}");
}

#[test]
fn typo_in_a_key_is_an_error_naming_the_key() {
    let e = problems(&GOOD.replace("strategy = \"compose\"", "strtegy = \"compose\""));
    assert!(e.contains("unknown field `strtegy`"), "{e}");
    let e = problems(&GOOD.replace("\"compose\"", "\"rolling\""));
    assert!(e.contains("unknown variant `rolling`"), "{e}");
}

#[test]
fn t01_t02_hostile_values_in_image_host_and_ports_are_rejected() {
    let cases = [
        (
            "name = \"ghcr.io/acme/shop\"",
            "name = \"--privileged\"",
            "image.name = \"--privileged\" is not valid",
        ),
        (
            "name = \"ghcr.io/acme/shop\"",
            "name = \"shop; id #\"",
            "image.name = \"shop; id #\" is not valid",
        ),
        (
            "name = \"ghcr.io/acme/shop\"",
            "name = \"$(id)\"",
            "image.name = \"$(id)\" is not valid",
        ),
        (
            "name = \"ghcr.io/acme/shop\"",
            "name = \"shop:1.2\"",
            "has a tag or digest",
        ),
        (
            "strategy = \"compose\"",
            "strategy = \"compose\"\nhost = \"-oProxyCommand=id\"",
            "environments.staging.host = \"-oProxyCommand=id\" is not valid",
        ),
        (
            "strategy = \"compose\"",
            "strategy = \"compose\"\nhost = \"web`id`\"",
            "environments.staging.host = \"web`id`\" is not valid",
        ),
        (
            "port = 8090",
            "port = 0",
            "environments.staging.port = \"0\" is not valid: use a TCP port from 1 to 65535",
        ),
        (
            "port = 8090",
            "port = 70000",
            "use a TCP port from 1 to 65535",
        ),
        ("blue = 8081", "blue = 8080", "uses one port twice"),
        (
            "name = \"shop\"",
            "name = \"Shop App\"",
            "app.name = \"Shop App\" is not valid",
        ),
        ("\"shop.settings\"", "\"a\\nB=1\"", "remove newlines"),
        ("\"DATABASE_URL\"", "\"DATABASE-URL\"", "app.secret_env[0]"),
        (
            "path = \"/healthz\"",
            "path = \"healthz\"",
            "use a path starting with '/'",
        ),
    ];
    for (from, to, want) in cases {
        assert!(GOOD.contains(from), "fixture lacks {from}");
        let e = problems(&GOOD.replacen(from, to, 1));
        assert!(e.contains(want), "{to}: wanted {want:?} in\n{e}");
    }
}

#[test]
fn missing_strategy_fields_say_what_to_add() {
    let e = problems(&GOOD.replace("port = 8090\n", ""));
    assert!(e.contains("compose needs the host port"), "{e}");
    let e = problems(&GOOD.replace("ports = { public = 8080, blue = 8081, green = 8082 }\n", ""));
    assert!(
        e.contains("blue-green needs ports = { public = 8080"),
        "{e}"
    );
}

#[test]
fn all_problems_are_listed_at_once() {
    let e = problems(
        &GOOD
            .replace("port = 8090", "port = 0")
            .replace("name = \"shop\"", "name = \"-x\""),
    );
    assert!(e.contains("2 problem(s)"), "{e}");
}

#[test]
fn snippet_cannot_break_out_of_its_block() {
    let text = format!(
        "{GOOD}\n[environments.production.proxy]\nsnippet = \"}} server {{ listen 81; }}\"\n"
    );
    assert!(problems(&text).contains("may not contain braces"));
}

#[test]
fn t12_remote_host_needs_ssh_settings_and_a_host_key() {
    let remote = GOOD.replace(
        "strategy = \"blue-green\"",
        "strategy = \"blue-green\"\nhost = \"web-1.example.com\"",
    );
    let e = problems(&remote);
    assert!(e.contains("environments.production.ssh is missing"), "{e}");
    let no_key = format!("{remote}\n[environments.production.ssh]\nuser = \"deploy\"\n");
    let e = problems(&no_key);
    assert!(e.contains("host keys are always verified"), "{e}");
    let md5 = format!(
        "{remote}\n[environments.production.ssh]\nuser = \"deploy\"\nfingerprint = \"MD5:aa\"\n"
    );
    assert!(problems(&md5).contains("is not a SHA256 fingerprint"));
    let ok = format!(
        "{remote}\n[environments.production.ssh]\nuser = \"deploy\"\nknown_hosts_env = \"KH\"\n"
    );
    let c = parse(&ok).unwrap();
    let prod = c.environment("production").unwrap();
    assert_eq!(
        c.state_dir_for("production", prod),
        Path::new("/var/lib/davit/shop-production")
    );
    let relative = ok.replace(
        "host = \"web-1.example.com\"",
        "host = \"web-1.example.com\"\nstate_dir = \"state\"",
    );
    assert!(problems(&relative).contains("must be absolute for a remote host"));
}

#[test]
fn several_hosts_are_remote_distinct_and_only_for_host_by_host_strategies() {
    let ssh = "\n[environments.production.ssh]\nuser = \"deploy\"\nknown_hosts_env = \"KH\"\n";
    let two = GOOD.replace(
        "strategy = \"blue-green\"",
        "strategy = \"blue-green\"\nhosts = [\"web-1.example.com\", \"10.0.0.2\"]",
    );
    let c = parse(&format!("{two}{ssh}")).unwrap();
    let prod = c.environment("production").unwrap();
    assert_eq!(prod.host, "web-1.example.com", "the first host is the host");
    assert_eq!(prod.hosts, ["web-1.example.com", "10.0.0.2"]);
    assert_eq!(
        c.state_dir_for("production", prod),
        Path::new("/var/lib/davit/shop-production"),
        "remote defaults apply"
    );
    assert!(
        problems(&two)
            .contains("environments.production.ssh is missing: host = \"web-1.example.com\"")
    );
    let both = two.replace("hosts = [", "host = \"web-3\"\nhosts = [");
    assert!(problems(&format!("{both}{ssh}")).contains("set host or hosts, not both"));
    let twice = two.replace("\"10.0.0.2\"", "\"web-1.example.com\"");
    assert!(
        problems(&format!("{twice}{ssh}"))
            .contains("hosts[1] = \"web-1.example.com\" is listed twice")
    );
    let local = two.replace("\"10.0.0.2\"", "\"local\"");
    assert!(problems(&format!("{local}{ssh}")).contains("hosts[1] = \"local\""));
    let hostile = two.replace("\"10.0.0.2\"", "\"-oProxyCommand=id\"");
    assert!(problems(&format!("{hostile}{ssh}")).contains("hosts[1]"));
}

#[test]
fn structured_proxy_settings_parse_and_bad_values_name_the_fix() {
    let ok = format!(
        r#"{GOOD}
[environments.production.proxy]
client_max_body_size = "20m"
websockets = ["/ws/"]
trusted_proxies = ["10.0.0.0/8", "192.168.1.5"]
[[environments.production.proxy.files]]
path = "/static/"
dir = "/srv/shop/static"
expires = "30d"
[[environments.production.proxy.files]]
path = "/media/"
volume = "shop_media"
mount = "/app/media"
[[environments.production.proxy.locations]]
path = "= /robots.txt"
directives = "return 200 'ok';"
proxy = false
"#
    );
    let c = parse(&ok).unwrap();
    let proxy = &c.environment("production").unwrap().proxy;
    assert_eq!(proxy.files.len(), 2);
    assert_eq!(proxy.files[1].volume.as_deref(), Some("shop_media"));
    assert!(!proxy.locations[0].proxy);
    for (bad, says) in [
        ("\"20m\"", "\"20 m\""),
        ("\"/ws/\"]", "\"ws\"]"),
        ("\"192.168.1.5\"", "\"lb.example\""),
        ("\"/srv/shop/static\"", "\"static\""),
        ("volume = \"shop_media\"", "volume = \"-v\""),
        ("mount = \"/app/media\"", "mount = \"media\""),
        ("path = \"/static/\"", "path = \"/static\""),
        ("return 200 'ok';", "if ($x) { return 403; }"),
    ] {
        let text = ok.replace(bad, says);
        assert!(parse(&text).is_err(), "{says} should be refused");
    }
    let e = problems(&ok.replace("mount = \"/app/media\"\n", ""));
    assert!(e.contains("MEDIA_ROOT"), "{e}");
    let neither = ok.replace("dir = \"/srv/shop/static\"\n", "");
    assert!(problems(&neither).contains("set dir"));
    let both = ok.replace(
        "volume = \"shop_media\"",
        "volume = \"shop_media\"\ndir = \"/srv/media\"",
    );
    assert!(parse(&both).is_ok());
    let host = GOOD.replace(
        "[environments.staging]",
        "[health]\nhost = \"shop.example.com\"\n[environments.staging]",
    );
    assert_eq!(
        parse(&host).unwrap().health.host.as_deref(),
        Some("shop.example.com")
    );
    let bad_host = host.replace("shop.example.com", "shop example");
    assert!(problems(&bad_host).contains("ALLOWED_HOSTS"));
}

#[test]
fn traffic_analysis_settings_have_defaults_and_bounds() {
    let c = parse(GOOD).unwrap();
    let v = &c.environment("production").unwrap().verify;
    assert!(v.traffic);
    assert_eq!(
        (
            v.traffic_window_ms,
            v.traffic_error_ratio,
            v.traffic_min_requests
        ),
        (1000, Ratio(0.1), 50)
    );
    let with = |settings: &str| format!("{GOOD}\n[environments.production.verify]\n{settings}\n");
    let c = parse(&with(
        "traffic_window_ms = 2000\ntraffic_error_ratio = 0.25\ntraffic_min_requests = 20",
    ))
    .unwrap();
    let v = &c.environment("production").unwrap().verify;
    assert_eq!(
        (
            v.traffic_window_ms,
            v.traffic_error_ratio.0,
            v.traffic_min_requests
        ),
        (2000, 0.25, 20)
    );
    for (bad, field) in [
        ("traffic_error_ratio = 1.5", "traffic_error_ratio"),
        ("traffic_error_ratio = 0.0", "traffic_error_ratio"),
        ("traffic_error_ratio = nan", "traffic_error_ratio"),
        ("traffic_window_ms = 0", "traffic_window_ms"),
        ("traffic_min_requests = 0", "traffic_min_requests"),
    ] {
        let e = problems(&with(bad));
        assert!(e.contains(&format!("verify.{field}")), "{bad}: {e}");
    }
}
