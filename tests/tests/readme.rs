//! The README's commands exactly as a new user types them: from a fresh folder holding only a
//! `davit.toml` (no `state_dir`, so the default state folder), with no `--config`, for each
//! strategy; then the actions' defaults (`DAVIT_CONFIG: davit.toml` and the inputs as
//! variables). The command lines are read from README.md's CLI block, so the README cannot
//! drift from what works.

use davit_tests::*;
use std::path::Path;
use std::process::{Command, Output};

/// `davit ...` lines of the README's CLI block, comments removed, in order.
fn readme_commands() -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let block = text
        .split("## The CLI")
        .nth(1)
        .and_then(|s| s.split("```sh").nth(1))
        .and_then(|s| s.split("```").next())
        .expect("README.md has a CLI block");
    block
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| l.starts_with("davit "))
        .map(|l| l.split_whitespace().skip(1).map(String::from).collect())
        .collect()
}

struct Fresh {
    app: String,
    dir: tempfile::TempDir,
    state_home: tempfile::TempDir,
}

impl Fresh {
    /// A fresh folder with only a davit.toml: the README's keys, nothing that points davit at
    /// absolute paths.
    fn new(app: &str, image: &str, environment: &str) -> Fresh {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("davit.toml"),
            format!(
                "[app]\nname = \"{app}\"\nport = 8000\n\n[image]\nname = \"{image}\"\npull = \"never\"\n\n\
                 [health]\ninterval_ms = 200\nconsecutive = 2\ndeadline_secs = 30\n\n{environment}\n\
                 [environments.production.verify]\nwatch_secs = 2\ninterval_ms = 200\n"
            ),
        )
        .unwrap();
        Fresh {
            app: app.to_string(),
            dir,
            state_home: tempfile::tempdir().unwrap(),
        }
    }

    /// `davit <args>` run in the fresh folder, as a user types it.
    fn davit(&self, args: &[String]) -> Output {
        self.cmd(&bin("davit")).args(args).output().unwrap()
    }

    fn cmd(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        c.current_dir(self.dir.path())
            // The default state folder ($XDG_STATE_HOME/davit), kept inside this test.
            .env("XDG_STATE_HOME", self.state_home.path())
            .env_remove("DAVIT_CONFIG")
            .env_remove("GITHUB_ACTIONS")
            .env_remove("GITHUB_TOKEN");
        c
    }

    fn state(&self) -> std::path::PathBuf {
        self.state_home.path().join("davit")
    }
}

impl Drop for Fresh {
    fn drop(&mut self) {
        cleanup_app(&self.app, &self.state());
        let _ = Command::new("docker")
            .args([
                "compose",
                "--project-name",
                &format!("davit-{}-production", self.app),
                "down",
            ])
            .output();
    }
}

fn show(o: &Output) -> String {
    format!(
        "exit {:?}\n{}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The exit code the README's line should give in this sequence (see the test's comment).
fn expected(args: &[String]) -> &'static [i32] {
    match (args[0].as_str(), args.get(2).map(String::as_str)) {
        // After `rollback production` the live release is 1.4.1: asking for it again is a
        // bad-input answer naming the fix, never an infrastructure failure.
        ("rollback", Some("--to")) => &[0, 2],
        // No [backup] in this davit.toml: bad input naming the fix.
        ("backup", _) => &[2],
        _ => &[0],
    }
}

fn readme_as_written(strategy: &str) {
    if !require_all(&["docker", "nginx"]) {
        return;
    }
    let app = format!("rd{}", &strategy[..2]).replace('-', "");
    let repo = format!("davit-test/{app}");
    for v in ["1.4.1", "1.4.2"] {
        demo_image(&repo, v, &[]);
    }
    let public = free_port();
    let env = match strategy {
        "blue-green" => format!(
            "[environments.production]\nstrategy = \"blue-green\"\nports = {{ public = {public}, blue = {}, green = {} }}\n",
            free_port(),
            free_port()
        ),
        _ => format!("[environments.production]\nstrategy = \"compose\"\nport = {public}\n"),
    };
    let f = Fresh::new(&app, &repo, &env);
    let commands = readme_commands();
    assert!(commands.len() >= 6, "{commands:?}");
    // A first release, so that `rollback` has somewhere to go: the README's own deploy line
    // with the older tag.
    let mut first = commands[0].clone();
    assert_eq!(first[..3], ["deploy", "production", "--version"]);
    first[3] = "1.4.1".into();
    let o = f.davit(&first);
    assert!(o.status.success(), "{}", show(&o));
    for args in &commands {
        let o = f.davit(args);
        let code = o.status.code().unwrap_or(-1);
        assert!(
            expected(args).contains(&code),
            "davit {} ({strategy}):\n{}",
            args.join(" "),
            show(&o)
        );
        if args[0] == "deploy" && !args.contains(&"--dry-run".to_string()) {
            let url = format!("http://127.0.0.1:{public}/health");
            let body = block_on(get(&url)).map(|r| r.2).unwrap_or_default();
            assert!(body.contains("1.4.2"), "{url}: {body}");
        }
    }
    // Nothing was written into the repository folder: the state lives outside it.
    let entries: Vec<String> = std::fs::read_dir(f.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(entries, ["davit.toml"]);
    assert!(
        f.state()
            .join(format!("{app}-production/releases.jsonl"))
            .is_file()
    );

    // The actions' defaults: DAVIT_CONFIG: davit.toml and the inputs as variables.
    let o = f
        .cmd(&bin("davit"))
        .arg("deploy")
        .env("DAVIT_CONFIG", "davit.toml")
        .env("DAVIT_ENVIRONMENT", "production")
        .env("DAVIT_VERSION", "1.4.2")
        .output()
        .unwrap();
    assert!(o.status.success(), "deploy action defaults:\n{}", show(&o));
    let o = f
        .cmd(&bin("davit-verify"))
        .env("DAVIT_CONFIG", "davit.toml")
        .env("DAVIT_ENVIRONMENT", "production")
        .env("DAVIT_VERSION", "1.4.2")
        .env("DAVIT_WATCH_SECS", "2")
        .output()
        .unwrap();
    assert!(o.status.success(), "verify action defaults:\n{}", show(&o));
}

#[test]
fn readme_commands_as_written_blue_green() {
    readme_as_written("blue-green");
}

#[test]
fn readme_commands_as_written_compose() {
    readme_as_written("compose");
}

/// Swarm and Kubernetes need a cluster; their plans, from the same fresh folder, must name
/// only absolute paths.
#[test]
fn readme_dry_runs_name_absolute_paths_for_swarm_and_kubernetes() {
    for (app, env) in [
        (
            "rdsw",
            "[environments.production]\nstrategy = \"swarm\"\n[environments.production.swarm]\npublished_port = 18999\n",
        ),
        (
            "rdku",
            "[environments.production]\nstrategy = \"kubernetes\"\n[environments.production.kubernetes]\nnamespace = \"shop\"\ndeployment = \"web\"\ncontainer = \"app\"\n",
        ),
    ] {
        let f = Fresh::new(app, "davit-test/none", env);
        // No image to pull in a dry run: "missing" lets the plan show the pull.
        let toml = f.dir.path().join("davit.toml");
        let text = std::fs::read_to_string(&toml).unwrap();
        std::fs::write(&toml, text.replace("\"never\"", "\"missing\"")).unwrap();
        let dry = readme_commands()
            .into_iter()
            .find(|a| a.contains(&"--dry-run".to_string()))
            .expect("README shows a dry run");
        let o = f.davit(&dry);
        let text = show(&o);
        assert_eq!(o.status.code(), Some(0), "{text}");
        if app == "rdsw" {
            // The stack file is written under the default state folder, named absolutely.
            let state = f.state().join("rdsw-production");
            assert!(text.contains(&state.display().to_string()), "{text}");
        }
        for word in text.split_whitespace() {
            let w = word.trim_matches(|c: char| "\"'(),:".contains(c));
            assert!(
                !w.contains(&format!("{app}-production/")) || w.starts_with('/'),
                "relative path {w} in:\n{text}"
            );
        }
    }
}

/// The README's davit.toml reference is a configuration davit accepts, structured proxy
/// settings included.
#[test]
fn readme_davit_toml_reference_parses() {
    let text = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let block = text
        .split("## `davit.toml` reference")
        .nth(1)
        .and_then(|s| s.split("```toml").nth(1))
        .and_then(|s| s.split("```").next())
        .expect("README.md has the davit.toml reference");
    let cfg = davit_config::Config::parse(block, Path::new("README.md"), Path::new("/repo"))
        .unwrap_or_else(|e| panic!("{e}"));
    let prod = cfg.environment("production").unwrap();
    assert_eq!(prod.proxy.files.len(), 2);
    assert_eq!(prod.proxy.websockets, ["/ws/"]);
}
