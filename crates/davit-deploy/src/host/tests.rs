//! Everything a real deploy does is in its plan, for every strategy: the pull (where davit
//! pulls), the backup before migrations, and the ledger record, in that order around the
//! strategy's own steps.

use super::*;
use davit_config::Config;
use davit_exec::Recording;
use davit_exec::runner::Quiet;
use std::path::Path;

fn target(strategy: &str) -> Target {
    let text = format!(
        r#"
[app]
name = "shop"
[image]
name = "registry.example.com/acme/shop"
pull = "always"
[environments.production]
{strategy}
[environments.production.backup]
dir = "/srv/backups"
url_env = "DATABASE_URL"
"#
    );
    let cfg = Config::parse(
        &format!("state_dir = \".davit/state\"\n{text}"),
        Path::new("davit.toml"),
        Path::new("/srv/shop"),
    )
    .unwrap();
    let mut t = Target::resolve(&cfg, "production", &|_| None).unwrap();
    t.actor = "tester".into();
    t
}

const STRATEGIES: [(&str, &str, bool); 4] = [
    (
        "blue-green",
        "strategy = \"blue-green\"\nports = { public = 8080, blue = 8081, green = 8082 }",
        true,
    ),
    ("compose", "strategy = \"compose\"\nport = 8090", true),
    (
        "swarm",
        "strategy = \"swarm\"\n[environments.production.swarm]\npublished_port = 8080",
        true,
    ),
    (
        "kubernetes",
        "strategy = \"kubernetes\"\n[environments.production.kubernetes]\nnamespace = \"shop\"\ndeployment = \"web\"\ncontainer = \"app\"",
        // The cluster pulls; davit does not.
        false,
    ),
];

/// The kinds of the plan's steps davit adds around the strategy's own, in order.
fn outline(plan: &Plan) -> Vec<String> {
    plan.steps
        .iter()
        .filter_map(|s| match &s.step {
            Step::Action(Action::Pull { image }) => Some(format!("pull {image}")),
            Step::Action(Action::Backup { .. }) => Some("backup".into()),
            Step::AppendLine { path, line } if path.ends_with("releases.jsonl") => {
                let r: Record = serde_json::from_str(line).unwrap();
                Some(format!("record {:?} {} {}", r.event, r.id, r.strategy))
            }
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn every_strategy_plans_the_pull_backup_and_ledger_record_a_real_run_performs() {
    for (name, settings, pulls) in STRATEGIES {
        let t = target(settings);
        let exec = Recording::new("local");
        let obs = crate::observe(&exec, &t, Some(&t.image_for("v2")))
            .await
            .unwrap();
        assert!(obs.needs_pull, "{name}");
        let opts = Options {
            dry_run: true,
            ..Default::default()
        };
        let d = plan_deploy(&exec, &t, "v2", "r-v2", obs, &opts, &Quiet)
            .await
            .unwrap();
        let mut want = Vec::new();
        if pulls {
            want.push("pull registry.example.com/acme/shop:v2".to_string());
        }
        want.push("backup".into());
        want.push(format!("record Deployed r-v2 {name}"));
        assert_eq!(outline(&d.plan), want, "{name}:\n{}", d.plan.render());
        // The backup comes before the strategy's first change, the record after its last.
        let at = |kind: &str| {
            d.plan
                .steps
                .iter()
                .position(|s| s.step.render().contains(kind))
                .unwrap()
        };
        assert_eq!(at("back up the database"), d.prepared, "{name}");
        assert_eq!(d.plan.steps.len() - 1, at("releases.jsonl"), "{name}");
        assert!(
            d.plan.steps.last().unwrap().best_effort,
            "{name}: a missing record must not undo a release that went live"
        );
        // A dry run changes nothing: it only looked.
        for line in exec.log() {
            assert!(line.starts_with("run "), "{name}: {line}");
        }
    }
}

#[tokio::test]
async fn a_real_run_pulls_as_the_preparation_and_runs_the_rest() {
    let t = target(STRATEGIES[1].1);
    let exec = Recording::new("local").with_output(
        "docker image inspect",
        davit_exec::Output {
            status: 0,
            stdout: "sha256:abc\n".into(),
            ..Default::default()
        },
    );
    let obs = crate::observe(&exec, &t, Some(&t.image_for("v2")))
        .await
        .unwrap();
    let d = plan_deploy(&exec, &t, "v2", "r-v2", obs, &Options::default(), &Quiet)
        .await
        .unwrap();
    assert_eq!(d.prepared, 1);
    assert!(
        exec.log()
            .iter()
            .any(|l| l == "run docker pull registry.example.com/acme/shop:v2"),
        "{:?}",
        exec.log()
    );
    assert_eq!(d.record.digest.as_deref(), Some("sha256:abc"));
}
