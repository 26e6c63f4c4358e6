//! Every strategy's whole plan, as one host makes it through the [`strategy::Strategy`] seam: a
//! deploy and a rollback each, snapshotted, and checked for the steps davit adds around the
//! strategy's own.
//!
//! `plan_tests` snapshots what each strategy plans; these go through `host` as a real run does,
//! so a snapshot here is everything `--dry-run` shows and the runner undoes: the pull (where
//! davit pulls), the verified backup before the strategy's first change, and the ledger records
//! after its last. The host is a [`Recording`] answering as a host with two releases would
//! (v1, then v2 live), so each strategy takes the path a second deploy and a first rollback take.

use super::*;
use crate::test_support::target_from;
use davit_core::{Action, Step};
use davit_exec::runner::Quiet;
use davit_exec::{Output, Recording};
use ledger::Event;

/// One strategy under test: its settings in davit.toml and what its own observation saw.
struct Case {
    name: &'static str,
    settings: &'static str,
    /// Whether davit pulls the image itself (the cluster pulls for Kubernetes).
    pulls: bool,
}

const BLUE_GREEN: Case = Case {
    name: "blue-green",
    settings: "strategy = \"blue-green\"\nports = { public = 8080, blue = 8081, green = 8082 }",
    pulls: true,
};
const COMPOSE: Case = Case {
    name: "compose",
    settings: "strategy = \"compose\"\nport = 8090",
    pulls: true,
};
const SWARM: Case = Case {
    name: "swarm",
    settings: "strategy = \"swarm\"\n[environments.production.swarm]\npublished_port = 8085",
    pulls: true,
};
const KUBERNETES: Case = Case {
    name: "kubernetes",
    settings: "strategy = \"kubernetes\"\nurl = \"https://shop.example.com\"\n[environments.production.kubernetes]\nnamespace = \"shop\"\ndeployment = \"web\"\ncontainer = \"app\"",
    pulls: false,
};

impl Case {
    fn target(&self) -> Target {
        let text = format!(
            "state_dir = \".davit/state\"\n\
             [app]\nname = \"shop\"\nsecret_env = [\"DATABASE_URL\"]\n\
             [image]\nname = \"registry.example.com/acme/shop\"\npull = \"always\"\n\
             [environments.production]\n{}\n\
             [environments.production.backup]\ndir = \"/srv/backups\"\nurl_env = \"DATABASE_URL\"\n",
            self.settings
        );
        target_from(&text, "production")
    }

    /// The ledger: v1 went live in green, then v2 in blue (colors only for blue-green).
    fn ledger(&self) -> Vec<ledger::Record> {
        [("v1", "green"), ("v2", "blue")]
            .into_iter()
            .map(|(v, color)| ledger::Record {
                id: format!("r-{v}"),
                event: Event::Deployed,
                version: v.into(),
                image: format!("registry.example.com/acme/shop:{v}"),
                digest: Some(format!("sha256:{v}")),
                strategy: self.name.into(),
                color: (self.name == "blue-green").then(|| color.into()),
                environment: "production".into(),
                host: "local".into(),
                at: "2026-01-01T00:00:00Z".into(),
                actor: "ci".into(),
                reason: None,
                approval: None,
                processes: Vec::new(),
            })
            .collect()
    }

    /// What observing the host found: the ledger, v2 live, and the strategy's own view.
    fn observed(&self) -> Observed {
        let mut obs = Observed {
            ledger: self.ledger(),
            needs_pull: true,
            ..Default::default()
        };
        match self.name {
            "blue-green" => {
                obs.live = Some(nginx::LiveSite {
                    color: "blue".into(),
                    release: "r-v2".into(),
                    version: "v2".into(),
                });
                obs.seen = Seen::Proxy {
                    nginx_running: true,
                };
            }
            "compose" => obs.seen = Seen::Compose(Some(docker::ComposeFlavor::Plugin)),
            "swarm" => {
                obs.seen = Seen::Swarm(swarm::SwarmState {
                    node_state: "active".into(),
                    manager: true,
                    service: Some(swarm::ServiceState {
                        release: "r-v2".into(),
                        previous_release: "r-v1".into(),
                        update_state: "completed".into(),
                    }),
                })
            }
            _ => {}
        }
        obs
    }

    /// A host where v1's image, its compose file and its (stopped) blue-green container are
    /// still there, so every strategy can plan the rollback to it.
    fn host(&self, t: &Target) -> Recording {
        let answer = |stdout: &str| Output {
            status: 0,
            stdout: stdout.into(),
            ..Default::default()
        };
        Recording::new("local")
            .with_output("docker image inspect", answer("sha256:v1\n"))
            .with_output(
                "docker container inspect",
                answer("false|r-v1|registry.example.com/acme/shop:v1\n"),
            )
            .with_file(compose::compose_file_path(t, "r-v1"), "services: {}\n")
    }

    /// The dry run of deploying v3: everything a real run would do, nothing done.
    async fn deploy(&self) -> (Target, Plan) {
        let t = self.target();
        let exec = self.host(&t);
        let opts = Options {
            dry_run: true,
            ..Default::default()
        };
        let d = host::plan_deploy(&exec, &t, "v3", "r-v3", self.observed(), &opts, &Quiet)
            .await
            .unwrap();
        assert_eq!(d.prepared, usize::from(self.pulls), "{}", self.name);
        assert_only_looked(&exec, self.name);
        (t, d.plan)
    }

    /// The dry run of rolling back from v2 to v1.
    async fn rollback(&self) -> (Target, Plan) {
        let t = self.target();
        let exec = self.host(&t);
        let r = host::plan_rollback(&exec, &t, None, "bad release", &self.observed(), true)
            .await
            .unwrap();
        assert_eq!(r.to.id, "r-v1", "{}", self.name);
        assert_only_looked(&exec, self.name);
        (t, r.plan)
    }
}

/// A dry run only reads the host.
fn assert_only_looked(exec: &Recording, name: &str) {
    for line in exec.log() {
        assert!(
            line.starts_with("run docker image inspect")
                || line.starts_with("run docker container inspect")
                || line.starts_with("read "),
            "{name}: planning changed the host: {line}"
        );
    }
}

/// What a step is for, as far as this file is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Pull,
    Backup,
    Strategy,
    /// The ledger records: the events and releases of the one line the plan appends.
    Ledger(Vec<(Event, String)>),
}

/// The plan's parts in order, consecutive strategy steps as one.
fn outline(t: &Target, plan: &Plan) -> Vec<Part> {
    let mut parts: Vec<Part> = Vec::new();
    for s in &plan.steps {
        let part = match &s.step {
            Step::Action(Action::Pull { .. }) => Part::Pull,
            Step::Action(Action::Backup { .. }) => Part::Backup,
            Step::AppendLine { path, line } if *path == t.ledger_path() => {
                assert!(
                    s.best_effort,
                    "a missing record must not undo a live release"
                );
                Part::Ledger(
                    line.lines()
                        .map(|l| {
                            let r: ledger::Record = serde_json::from_str(l).unwrap();
                            (r.event, r.id)
                        })
                        .collect(),
                )
            }
            // The state folder the record goes in, made just before it.
            Step::MkDir { path, .. } if s.best_effort && *path == t.state_dir => continue,
            _ => Part::Strategy,
        };
        if !(part == Part::Strategy && parts.last() == Some(&Part::Strategy)) {
            parts.push(part);
        }
    }
    parts
}

/// The plan as the dry run shows it, the records' timestamps (the time of the run) fixed.
fn render(plan: &Plan) -> String {
    let text = plan.render();
    assert!(
        !text.contains("canary-s3cret"),
        "a secret leaked into the plan:\n{text}"
    );
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("\"at\":\"") {
        let start = i + "\"at\":\"".len();
        let end = start + rest[start..].find('"').unwrap();
        out.push_str(&rest[..start]);
        out.push_str("<now>");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// A deploy's plan: the pull where davit pulls, the backup before the strategy's first change,
/// one record of the deploy after its last.
async fn deploys(case: &Case) -> String {
    let (t, plan) = case.deploy().await;
    let mut want = Vec::new();
    if case.pulls {
        want.push(Part::Pull);
    }
    want.extend([
        Part::Backup,
        Part::Strategy,
        Part::Ledger(vec![(Event::Deployed, "r-v3".into())]),
    ]);
    assert_eq!(
        outline(&t, &plan),
        want,
        "{}:\n{}",
        case.name,
        plan.render()
    );
    render(&plan)
}

/// A rollback's plan: no pull and no backup (the release ran before; no migration runs), the
/// strategy's steps, then the rollback away from v2 and the restore of v1 in one record step.
async fn rolls_back(case: &Case) -> String {
    let (t, plan) = case.rollback().await;
    let want = vec![
        Part::Strategy,
        Part::Ledger(vec![
            (Event::RolledBack, "r-v2".into()),
            (Event::Restored, "r-v1".into()),
        ]),
    ];
    assert_eq!(
        outline(&t, &plan),
        want,
        "{}:\n{}",
        case.name,
        plan.render()
    );
    render(&plan)
}

#[tokio::test]
async fn blue_green_deploy() {
    insta::assert_snapshot!(deploys(&BLUE_GREEN).await);
}

#[tokio::test]
async fn blue_green_rollback() {
    insta::assert_snapshot!(rolls_back(&BLUE_GREEN).await);
}

#[tokio::test]
async fn compose_deploy() {
    insta::assert_snapshot!(deploys(&COMPOSE).await);
}

#[tokio::test]
async fn compose_rollback() {
    insta::assert_snapshot!(rolls_back(&COMPOSE).await);
}

#[tokio::test]
async fn swarm_deploy() {
    insta::assert_snapshot!(deploys(&SWARM).await);
}

#[tokio::test]
async fn swarm_rollback() {
    insta::assert_snapshot!(rolls_back(&SWARM).await);
}

#[tokio::test]
async fn kubernetes_deploy() {
    insta::assert_snapshot!(deploys(&KUBERNETES).await);
}

#[tokio::test]
async fn kubernetes_rollback() {
    insta::assert_snapshot!(rolls_back(&KUBERNETES).await);
}
