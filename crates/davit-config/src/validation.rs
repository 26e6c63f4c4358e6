//! Cross-field checks that serde cannot express, each problem phrased with its fix.

use crate::{Config, Environment, HealthCheck, Strategy};
use davit_core::validate;

pub fn check(cfg: &Config) -> Vec<String> {
    let mut p = Vec::new();
    let mut push = |r: Result<(), validate::Invalid>| {
        if let Err(e) = r {
            p.push(e.to_string());
        }
    };
    push(validate::name("app.name", &cfg.app.name));
    push(validate::port("app.port", cfg.app.port).map(|_| ()));
    push(validate::image_ref("image.name", &cfg.image.name));
    if cfg.image.name.contains('@') || has_tag(&cfg.image.name) {
        p.push(format!(
            "image.name = \"{}\" has a tag or digest: give the repository only (e.g. ghcr.io/acme/shop); the release version becomes the tag",
            cfg.image.name
        ));
    }
    env_table(&mut p, "app.env", &cfg.app.env);
    for (i, name) in cfg.app.secret_env.iter().enumerate() {
        if let Err(e) = validate::env_name(&format!("app.secret_env[{i}]"), name) {
            p.push(e.to_string());
        }
    }
    health(&mut p, "health", &cfg.health);
    if cfg.environments.is_empty() {
        p.push("no environments are defined: add [environments.staging] and/or [environments.production] with a strategy".into());
    }
    for (name, env) in &cfg.environments {
        environment(&mut p, name, env);
    }
    crate::processes::check_tables(cfg, &mut p);
    p
}

/// Whether the last path component carries a `:tag`.
fn has_tag(image: &str) -> bool {
    let last = image.rsplit('/').next().unwrap_or(image);
    last.contains(':')
}

fn env_table(p: &mut Vec<String>, field: &str, env: &std::collections::BTreeMap<String, String>) {
    for (k, v) in env {
        if let Err(e) = validate::env_name(&format!("{field} key"), k) {
            p.push(e.to_string());
        }
        if let Err(e) = validate::single_line(&format!("{field}.{k}"), v) {
            p.push(e.to_string());
        }
    }
}

fn health(p: &mut Vec<String>, field: &str, h: &HealthCheck) {
    if let Err(e) = validate::url_path(&format!("{field}.path"), &h.path) {
        p.push(e.to_string());
    }
    if !(100..=599).contains(&h.expect_status) {
        p.push(format!(
            "{field}.expect_status = {} is not an HTTP status: use 100-599 (usually 200)",
            h.expect_status
        ));
    }
    if h.consecutive == 0 {
        p.push(format!(
            "{field}.consecutive = 0: use at least 1 (3 guards against apps that answer before they are ready)"
        ));
    }
    if h.interval_ms == 0 || h.timeout_ms == 0 {
        p.push(format!(
            "{field}.interval_ms and {field}.timeout_ms must be above 0"
        ));
    }
    if h.deadline_secs == 0 {
        p.push(format!(
            "{field}.deadline_secs = 0: give the app time to start, e.g. 60"
        ));
    }
    if let Some(host) = &h.host {
        let name = host.rsplit_once(':').map_or(host.as_str(), |(n, port)| {
            if port.parse::<u16>().is_ok() { n } else { host }
        });
        if validate::hostname(&format!("{field}.host"), name).is_err() {
            p.push(format!(
                "{field}.host = \"{host}\" is not a host name: give the name your app answers to (one of Django's ALLOWED_HOSTS), e.g. \"shop.example.com\""
            ));
        }
    }
}

/// The structured proxy settings: every value lands in an nginx file, so each is held to a
/// shape nginx cannot misread (no `;`, braces or quotes that would open or close a block).
fn proxy_settings(p: &mut Vec<String>, name: &str, proxy: &crate::Proxy) {
    let f = |k: &str| format!("environments.{name}.proxy.{k}");
    let nginx_word = |v: &str| {
        !v.is_empty()
            && !v.contains(|c: char| {
                c.is_whitespace() || matches!(c, ';' | '{' | '}' | '"' | '\'' | '\\' | '$' | '#')
            })
    };
    let prefix = |v: &str| v.starts_with('/') && nginx_word(v);
    if let Some(size) = &proxy.client_max_body_size {
        let digits = size.trim_end_matches(['k', 'K', 'm', 'M', 'g', 'G']);
        if digits.is_empty()
            || !digits.chars().all(|c| c.is_ascii_digit())
            || size.len() - digits.len() > 1
        {
            p.push(format!(
                "{} = \"{size}\" is not a size: use a number with an optional k, m or g, e.g. \"20m\" (0 disables the limit)",
                f("client_max_body_size")
            ));
        }
    }
    for (i, w) in proxy.websockets.iter().enumerate() {
        if !prefix(w) {
            p.push(format!(
                "{}[{i}] = \"{w}\" is not a URL prefix: use a path like \"/ws/\"",
                f("websockets")
            ));
        }
    }
    for (i, a) in proxy.trusted_proxies.iter().enumerate() {
        let (addr, bits) = a.split_once('/').unwrap_or((a, "0"));
        if addr.parse::<std::net::IpAddr>().is_err() || bits.parse::<u8>().is_err() {
            p.push(format!(
                "{}[{i}] = \"{a}\" is not an address or range: use the address of your load balancer, e.g. \"10.0.0.5\" or \"10.0.0.0/8\"",
                f("trusted_proxies")
            ));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, loc) in proxy.files.iter().enumerate() {
        let at = format!("{}[{i}]", f("files"));
        if !(prefix(&loc.path) && loc.path.ends_with('/')) {
            p.push(format!(
                "{at}.path = \"{}\" must start and end with '/', e.g. \"/static/\"",
                loc.path
            ));
        }
        if !seen.insert(loc.path.clone()) {
            p.push(format!("{at}.path = \"{}\" is listed twice", loc.path));
        }
        if let Some(d) = &loc.dir
            && (!d.is_absolute() || !nginx_word(&d.to_string_lossy()))
        {
            p.push(format!(
                "{at}.dir = \"{}\" must be an absolute folder on the host without spaces or quotes, e.g. \"/srv/shop/static\"",
                d.display()
            ));
        }
        if let Some(v) = &loc.volume {
            let ok = v.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
            if !ok {
                p.push(format!(
                    "{at}.volume = \"{v}\" is not a Docker volume name (letters, digits, '_', '.', '-')"
                ));
            }
            if loc.mount.is_none() {
                p.push(format!(
                    "{at}.mount is missing: where the app's containers write the volume, e.g. mount = \"/app/media\" (Django's MEDIA_ROOT)"
                ));
            }
        }
        if loc.dir.is_none() && loc.volume.is_none() {
            p.push(format!(
                "{at}: set dir (a folder on the host), volume (a named Docker volume), or both (a volume davit creates over that folder)"
            ));
        }
        if let Some(m) = &loc.mount
            && !(m.starts_with('/') && nginx_word(m) && !m.contains(':'))
        {
            p.push(format!(
                "{at}.mount = \"{m}\" must be an absolute path in the container, e.g. \"/app/media\""
            ));
        }
        if let Some(e) = &loc.expires
            && !nginx_word(e)
        {
            p.push(format!(
                "{at}.expires = \"{e}\" is not a duration: e.g. \"30d\""
            ));
        }
    }
    for (i, loc) in proxy.locations.iter().enumerate() {
        let at = format!("{}[{i}]", f("locations"));
        let words: Vec<&str> = loc.path.split_whitespace().collect();
        let pattern_ok = match words.as_slice() {
            [path] => prefix(path),
            [modifier, pattern] => {
                matches!(*modifier, "=" | "~" | "~*" | "^~")
                    && !pattern.contains(['{', '}', ';', '"', '\''])
            }
            _ => false,
        };
        if !pattern_ok {
            p.push(format!(
                "{at}.path = \"{}\" is not a location: use a prefix (\"/admin/\") or a modifier and a pattern (\"= /robots.txt\")",
                loc.path
            ));
        }
        if loc.directives.contains(['{', '}']) {
            p.push(format!(
                "{at}.directives may not contain braces: they go inside the location; add another [[..proxy.locations]] instead of nesting"
            ));
        }
    }
}

/// `hosts = [...]`: remote names, each once, instead of `host`, and only for strategies that
/// davit converges host by host (a cluster engine is driven through one manager or context).
fn hosts(p: &mut Vec<String>, name: &str, env: &Environment) {
    if env.hosts.is_empty() {
        return;
    }
    let f = format!("environments.{name}.hosts");
    if env.host != "local" {
        p.push(format!(
            "environments.{name}: set host or hosts, not both (hosts = [\"{}\", ...] lists every host)",
            env.host
        ));
    }
    for (i, h) in env.hosts.iter().enumerate() {
        if h == "local" {
            p.push(format!(
                "{f}[{i}] = \"local\": hosts lists remote hosts reached over SSH; for this machine use host = \"local\""
            ));
        } else if let Err(e) = validate::hostname(&format!("{f}[{i}]"), h) {
            p.push(e.to_string());
        }
        if env.hosts[..i].contains(h) {
            p.push(format!(
                "{f}[{i}] = \"{h}\" is listed twice: name each host once"
            ));
        }
    }
    if matches!(env.strategy, Strategy::Swarm | Strategy::Kubernetes) {
        p.push(format!(
            "{f}: {} deploys through one manager node or kubectl context, which spreads the release itself; set host to it instead",
            env.strategy.as_str()
        ));
    }
}

fn environment(p: &mut Vec<String>, name: &str, env: &Environment) {
    let f = |k: &str| format!("environments.{name}.{k}");
    if let Err(e) = validate::name(&format!("environments.{name}"), name) {
        p.push(e.to_string());
    }
    hosts(p, name, env);
    let remote = env.host != "local" || !env.hosts.is_empty();
    if remote {
        if env.hosts.is_empty()
            && let Err(e) = validate::hostname(&f("host"), &env.host)
        {
            p.push(e.to_string());
        }
        match &env.ssh {
            None => p.push(format!(
                "{} is missing: host = \"{}\" is remote, so davit needs [environments.{name}.ssh] with user, key_env and known_hosts_env or fingerprint",
                f("ssh"),
                env.hosts.first().unwrap_or(&env.host)
            )),
            Some(ssh) => {
                if let Err(e) = validate::name(&f("ssh.user"), &ssh.user) {
                    p.push(e.to_string());
                }
                if let Err(e) = validate::port(&f("ssh.port"), ssh.port) {
                    p.push(e.to_string());
                }
                for (field, v) in [
                    ("ssh.key_env", Some(&ssh.key_env)),
                    ("ssh.known_hosts_env", ssh.known_hosts_env.as_ref()),
                ] {
                    if let Some(v) = v
                        && let Err(e) = validate::env_name(&f(field), v)
                    {
                        p.push(e.to_string());
                    }
                }
                match (&ssh.known_hosts_env, &ssh.fingerprint) {
                    (None, None) => p.push(format!(
                        "{}: host keys are always verified; set known_hosts_env (a variable holding known_hosts lines) or fingerprint = \"SHA256:...\"",
                        f("ssh")
                    )),
                    (Some(_), Some(_)) => p.push(format!(
                        "{}: set known_hosts_env or fingerprint, not both",
                        f("ssh")
                    )),
                    (None, Some(fp)) if !fp.starts_with("SHA256:") => p.push(format!(
                        "{} = \"{fp}\" is not a SHA256 fingerprint: use the SHA256:... form ssh-keygen -lf prints",
                        f("ssh.fingerprint")
                    )),
                    _ => {}
                }
            }
        }
        if let Some(dir) = &env.state_dir
            && !dir.is_absolute()
        {
            p.push(format!(
                "{} = \"{}\" must be absolute for a remote host, e.g. /var/lib/davit",
                f("state_dir"),
                dir.display()
            ));
        }
    }
    for (field, addr) in [("bind", &env.bind), ("proxy.listen", &env.proxy.listen)] {
        if addr.parse::<std::net::IpAddr>().is_err() {
            p.push(format!(
                "{} = \"{addr}\" is not an IP address: use 127.0.0.1 (only this host) or 0.0.0.0 (all interfaces)",
                f(field)
            ));
        }
    }
    if env.proxy.nginx.is_empty()
        || env.proxy.nginx.starts_with('-')
        || env.proxy.nginx.contains(char::is_whitespace)
    {
        p.push(format!(
            "{} = \"{}\" is not a program: use \"nginx\" or an absolute path like /usr/sbin/nginx",
            f("proxy.nginx"),
            env.proxy.nginx
        ));
    }
    env_table(p, &f("env"), &env.env);
    if let Some(h) = &env.health {
        health(p, &f("health"), h);
    }
    proxy_settings(p, name, &env.proxy);
    if let Some(s) = &env.proxy.snippet
        && s.contains(['{', '}'])
    {
        p.push(format!(
            "{} may not contain braces: it goes inside `location /`; put directives only, e.g. \"client_max_body_size 20m;\"",
            f("proxy.snippet")
        ));
    }
    for (kind, hooks) in [
        ("pre_deploy", &env.hooks.pre_deploy),
        ("post_deploy", &env.hooks.post_deploy),
    ] {
        for (i, h) in hooks.iter().enumerate() {
            if h.run.is_empty() || h.run[0].is_empty() {
                p.push(format!(
                    "{}[{i}].run is empty: give the command as a list, e.g. [\"python\", \"manage.py\", \"migrate\"]",
                    f(&format!("hooks.{kind}"))
                ));
            }
        }
    }
    match env.strategy {
        Strategy::Compose => match env.port {
            None => p.push(format!(
                "{} is missing: compose needs the host port to publish the app on, e.g. port = 8090",
                f("port")
            )),
            Some(port) => {
                if let Err(e) = validate::port(&f("port"), port) {
                    p.push(e.to_string());
                }
            }
        },
        Strategy::Swarm => match &env.swarm {
            None => p.push(format!(
                "{} is missing: the swarm strategy needs at least published_port, e.g. [environments.{name}.swarm] published_port = 8080",
                f("swarm")
            )),
            Some(s) => {
                if let Err(e) = validate::port(&f("swarm.published_port"), s.published_port) {
                    p.push(e.to_string());
                }
                if s.replicas == 0 || s.parallelism == 0 {
                    p.push(format!(
                        "{} and parallelism must be at least 1",
                        f("swarm.replicas")
                    ));
                }
            }
        },
        Strategy::Kubernetes => match &env.kubernetes {
            None => p.push(format!(
                "{} is missing: the kubernetes strategy needs namespace, deployment and container",
                f("kubernetes")
            )),
            Some(k) => {
                for (field, v) in [
                    ("namespace", &k.namespace),
                    ("deployment", &k.deployment),
                    ("container", &k.container),
                ] {
                    if let Err(e) = validate::name(&f(&format!("kubernetes.{field}")), v) {
                        p.push(e.to_string());
                    }
                }
                if let Some(c) = &k.context
                    && (c.is_empty() || c.starts_with('-') || c.contains(char::is_whitespace))
                {
                    p.push(format!(
                        "{} = \"{c}\" is not a kubectl context name",
                        f("kubernetes.context")
                    ));
                }
            }
        },
        Strategy::BlueGreen => match env.ports {
            None => p.push(format!(
                "{} is missing: blue-green needs ports = {{ public = 8080, blue = 8081, green = 8082 }}",
                f("ports")
            )),
            Some(ports) => {
                let mut ok = true;
                for (k, v) in [
                    ("public", ports.public),
                    ("blue", ports.blue),
                    ("green", ports.green),
                ] {
                    if let Err(e) = validate::port(&f(&format!("ports.{k}")), v) {
                        p.push(e.to_string());
                        ok = false;
                    }
                }
                if ok
                    && (ports.public == ports.blue
                        || ports.public == ports.green
                        || ports.blue == ports.green)
                {
                    p.push(format!(
                        "{} uses one port twice ({}, {}, {}): public, blue and green need three different ports",
                        f("ports"),
                        ports.public,
                        ports.blue,
                        ports.green
                    ));
                }
            }
        },
    }
}
