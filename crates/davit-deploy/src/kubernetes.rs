//! The kubernetes strategy: point an existing Deployment's container at the release's image and
//! let Kubernetes roll it out, with davit adding the deadline, the undo and the records.
//!
//! davit does not own the Deployment (its replicas, probes, resources and env live in the
//! cluster, managed however the team manages manifests); it changes only the one thing a release
//! changes, the image, and annotates the Deployment with the release so `kubectl rollout
//! history` and davit's ledger tell the same story. `kubectl rollout status --timeout` is the
//! wait: it exits non-zero when the rollout does not finish (new pods never ready, progress
//! deadline exceeded), and the plan's undo then runs `kubectl rollout undo`, which returns the
//! Deployment to its previous ReplicaSet.
//!
//! What has and has not run against a live cluster is written down in docs/kubernetes.md: these
//! plans are tested as snapshots only, because no cluster can run where davit's CI runs.

use crate::target::Target;
use crate::{NewRelease, Observed};
use davit_config::Kubernetes;
use davit_core::{Cmd, Plan, Probe, Step};
use std::time::Duration;

/// `kubectl [--context C] --namespace NS`: every command names both, so a changed current
/// context on the runner can never point a deploy at the wrong cluster or namespace silently.
fn kubectl(k: &Kubernetes) -> Cmd {
    let mut c = Cmd::new("kubectl");
    if let Some(ctx) = &k.context {
        c = c.arg("--context").arg(ctx.clone());
    }
    c.arg("--namespace").arg(k.namespace.clone())
}

fn deployment(k: &Kubernetes) -> String {
    format!("deployment/{}", k.deployment)
}

/// Annotate the Deployment with a release. Done before the image changes, so the ReplicaSet the
/// change creates carries `kubernetes.io/change-cause` in `kubectl rollout history`.
fn annotate(k: &Kubernetes, release: &str, version: &str, why: &str) -> Cmd {
    kubectl(k)
        .args(["annotate", "--overwrite"])
        .arg(deployment(k))
        .arg(format!("davit.dev/release={release}"))
        .arg(format!("davit.dev/version={version}"))
        .arg(format!(
            "kubernetes.io/change-cause=davit {why} {version} ({release})"
        ))
        .timeout(Duration::from_secs(60))
}

fn set_image(k: &Kubernetes, image: &str) -> Cmd {
    kubectl(k)
        .args(["set", "image"])
        .arg(deployment(k))
        .arg(format!("{}={image}", k.container))
        .timeout(Duration::from_secs(60))
}

/// Waits for the rollout with kubectl's own deadline; the process timeout is a backstop a
/// little longer, so kubectl gets to say why it gave up.
fn rollout_status(k: &Kubernetes) -> Cmd {
    let secs = k.rollout_timeout_secs;
    kubectl(k)
        .args(["rollout", "status"])
        .arg(deployment(k))
        .arg(format!("--timeout={secs}s"))
        .timeout(Duration::from_secs(secs + 30))
}

fn rollout_undo(k: &Kubernetes) -> Vec<Step> {
    vec![
        Step::Exec(
            kubectl(k)
                .args(["rollout", "undo"])
                .arg(deployment(k))
                .timeout(Duration::from_secs(60)),
        ),
        Step::Exec(rollout_status(k)),
    ]
}

/// The probe of the environment's public URL, when it has one; a Deployment has no address
/// davit could derive (Services, Ingresses and their hosts are the cluster's business).
pub fn probe(t: &Target, version: &str) -> Option<Probe> {
    let url = t.url.as_ref()?;
    // The URL names the public host already: only an explicit health.host overrides it.
    Some(Probe {
        host: t.health.host.clone(),
        ..crate::health::probe(t, url.trim_end_matches('/'), version)
    })
}

/// Set the release's image, wait for the rollout, probe the URL; undo the rollout on failure.
pub fn plan_deploy(t: &Target, k: &Kubernetes, rel: &NewRelease, obs: &Observed) -> Plan {
    let mut plan = Plan::new(format!(
        "kubernetes deploy of {} ({}) to {} (deployment/{} in {})",
        rel.version, rel.image, t.environment, k.deployment, k.namespace
    ));
    crate::push_env_and_pre_hooks(&mut plan, t, rel, obs);
    push_rollout(&mut plan, t, k, rel, obs, "deploy");
    crate::push_post_hooks(&mut plan, t, rel);
    plan
}

/// Roll back to a recorded release by setting its image again: an ordinary, watched rollout,
/// which works for any release in the ledger (not only the last ReplicaSet, as `rollout undo`).
pub fn plan_rollback(t: &Target, k: &Kubernetes, to: &NewRelease, obs: &Observed) -> Plan {
    let mut plan = Plan::new(format!(
        "kubernetes rollback of {} to {} (deployment/{} in {})",
        t.environment, to.version, k.deployment, k.namespace
    ));
    push_rollout(&mut plan, t, k, to, obs, "rollback to");
    plan
}

fn push_rollout(
    plan: &mut Plan,
    t: &Target,
    k: &Kubernetes,
    rel: &NewRelease,
    obs: &Observed,
    why: &str,
) {
    // If the rollout is undone, the annotation goes back to what is live again.
    let previous = crate::ledger::live(&obs.ledger).filter(|r| r.id != rel.id);
    let undo_annotation = previous
        .map(|p| vec![Step::Exec(annotate(k, &p.id, &p.version, "restored"))])
        .unwrap_or_default();
    plan.push_with_undo(
        format!("annotate the Deployment with release {}", rel.id),
        Step::Exec(annotate(k, &rel.id, &rel.version, why)),
        undo_annotation,
    );
    plan.push_with_undo(
        format!("set the {} container's image", k.container),
        Step::Exec(set_image(k, &rel.image)),
        rollout_undo(k),
    );
    plan.push(
        format!(
            "wait for the rollout (kubectl rollout status, up to {}s)",
            k.rollout_timeout_secs
        ),
        Step::Exec(rollout_status(k)),
    );
    if let Some(p) = probe(t, &rel.version) {
        plan.push(
            format!("health gate: {} must answer at the public URL", rel.version),
            Step::WaitHttp(p),
        );
    }
}

#[cfg(test)]
mod tests {
    //! Plan snapshots: the only tests of this strategy that can run here (see docs/kubernetes.md).

    use super::*;
    use crate::ledger::{Event, Record};
    use crate::test_support::{rel, target_from};

    fn k8s(t: &Target) -> Kubernetes {
        match &t.strategy {
            crate::target::StrategySettings::Kubernetes(k) => k.clone(),
            other => panic!("not a kubernetes target: {other:?}"),
        }
    }

    fn target(extra: &str) -> Target {
        let text = format!(
            r#"
[app]
name = "shop"
secret_env = ["DATABASE_URL"]

[image]
name = "registry.example.com/acme/shop"

[environments.production]
strategy = "kubernetes"
{extra}
[environments.production.kubernetes]
namespace = "shop"
deployment = "web"
container = "app"
rollout_timeout_secs = 120
"#
        );
        target_from(
            &format!("state_dir = \".davit/state\"\n{text}"),
            "production",
        )
    }

    fn live(version: &str) -> Observed {
        Observed {
            ledger: vec![Record {
                id: format!("r-{version}"),
                event: Event::Deployed,
                version: version.into(),
                image: format!("registry.example.com/acme/shop:{version}"),
                digest: None,
                strategy: "kubernetes".into(),
                color: None,
                environment: "production".into(),
                host: "local".into(),
                at: "2026-01-01T00:00:00Z".into(),
                actor: "ci".into(),
                reason: None,
                approval: None,
                processes: Vec::new(),
            }],
            ..Default::default()
        }
    }

    fn render(plan: &Plan) -> String {
        let text = plan.render();
        assert!(!text.contains("canary-s3cret"), "a secret leaked:\n{text}");
        text
    }

    #[test]
    fn deploy_sets_the_image_waits_and_undoes() {
        let t = target("");
        insta::assert_snapshot!(render(&plan_deploy(&t, &k8s(&t), &rel("v2"), &live("v1"))));
    }

    #[test]
    fn deploy_with_context_and_url_probes_the_public_url() {
        let t = target("url = \"https://shop.example.com/\"\n");
        let mut k = k8s(&t);
        k.context = Some("prod-eu".into());
        let plan = plan_deploy(&t, &k, &rel("v2"), &Observed::default());
        assert!(
            plan.programs().iter().all(|p| p == "kubectl"),
            "{:?}",
            plan.programs()
        );
        insta::assert_snapshot!(render(&plan));
    }

    #[test]
    fn rollback_sets_the_recorded_image_again() {
        let t = target("");
        insta::assert_snapshot!(render(&plan_rollback(
            &t,
            &k8s(&t),
            &rel("v1"),
            &live("v2")
        )));
    }

    #[test]
    fn probe_only_with_a_url() {
        assert!(probe(&target(""), "v1").is_none());
        let p = probe(&target("url = \"https://shop.example.com/\"\n"), "v1").unwrap();
        assert_eq!(p.url, "https://shop.example.com/health");
    }
}
