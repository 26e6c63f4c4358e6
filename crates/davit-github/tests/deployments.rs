//! Deployment records against the local fake GitHub: lifecycle, rollback, T34 faults (bounded
//! retries, no duplicates, a failed write is only a warning), T06 permission errors and T08
//! secret canaries.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use davit_core::Secret;
use davit_fake_github::{FakeGithub, Fault};
use davit_github::{
    DeploymentId, DeploymentRecorder, DeploymentState, GithubClient, GithubError, NewDeployment,
    Repo, RetryPolicy, RolledBack, StatusUpdate,
};

const TOKEN_CANARY: &str = "ghp_CANARYtoken0123456789abcdefCANARY";
const REGISTRY_CANARY: &str = "CANARYregistryPassw0rd";
const DEPLOYMENTS: &str = "/repos/davit-dev/app/deployments";
const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
const RUN_URL: &str = "https://github.com/davit-dev/app/actions/runs/42";

fn client(fake: &FakeGithub) -> GithubClient {
    GithubClient::new(
        fake.url(),
        Secret::new(TOKEN_CANARY.to_string()),
        Repo::parse(fake.repo()).unwrap(),
    )
    .unwrap()
    .with_policy(RetryPolicy::fast())
}

fn recorder(fake: &FakeGithub) -> DeploymentRecorder {
    DeploymentRecorder::new(client(fake)).with_log_url(Some(RUN_URL.into()))
}

fn release(env: &str, id: &str) -> NewDeployment {
    NewDeployment {
        environment: env.into(),
        git_ref: "main".into(),
        sha: SHA.into(),
        release_id: id.into(),
        image: "ghcr.io/davit-dev/app:1.2.3".into(),
        digest: format!("sha256:{}", "b".repeat(64)),
        strategy: "blue-green".into(),
        ..Default::default()
    }
}

fn states(fake: &FakeGithub, id: DeploymentId) -> Vec<String> {
    fake.statuses(id.0).into_iter().map(|s| s.state).collect()
}

#[tokio::test]
async fn deployment_lifecycle_in_progress_then_success() {
    let fake = FakeGithub::start();
    let rec = recorder(&fake);
    let id = rec
        .start(&release("staging", "r-1"))
        .await
        .expect("created");
    rec.success(Some(id), Some("https://staging.example.com"), "r-1 is live")
        .await;

    let deps = fake.deployments();
    assert_eq!(deps.len(), 1);
    let d = &deps[0];
    assert_eq!(d.id, id.0);
    assert_eq!((d.environment.as_str(), d.sha.as_str()), ("staging", SHA));
    assert_eq!(d.task, "deploy:davit");
    assert!(!d.production_environment);
    let p = &d.payload["davit"];
    assert_eq!(p["release_id"], "r-1");
    assert_eq!(p["strategy"], "blue-green");
    assert_eq!(p["digest"], format!("sha256:{}", "b".repeat(64)));
    assert_eq!(p["ref"], "main");
    assert_eq!(p["kind"], "deploy");

    let st = fake.statuses(id.0);
    assert_eq!(
        st.iter().map(|s| s.state.as_str()).collect::<Vec<_>>(),
        ["in_progress", "success"]
    );
    assert!(st.iter().all(|s| s.log_url == RUN_URL));
    assert_eq!(st[1].environment_url, "https://staging.example.com");
    assert!(rec.warnings().is_empty());

    // The typed reads agree with what was written.
    let c = client(&fake);
    let listed = c
        .list_deployments(Some(SHA), Some("staging"))
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].davit().unwrap().release_id, "r-1");
    assert_eq!(
        c.live_deployment("staging").await.unwrap().map(|d| d.id),
        Some(id)
    );
}

#[tokio::test]
async fn a_failed_deploy_ends_in_failure_and_production_is_flagged() {
    let fake = FakeGithub::start();
    let rec = recorder(&fake);
    let mut d = release("production", "r-2");
    d.approval = Some(serde_json::json!({"provider": "github-issue", "approved_by": ["alice"]}));
    let id = rec.start(&d).await.unwrap();
    rec.failure(Some(id), "health check never passed").await;
    assert_eq!(states(&fake, id), ["in_progress", "failure"]);
    let dep = &fake.deployments()[0];
    assert!(dep.production_environment);
    assert_eq!(dep.payload["davit"]["approval"]["approved_by"][0], "alice");
    assert_eq!(
        client(&fake).live_deployment("production").await.unwrap(),
        None
    );
}

#[tokio::test]
async fn rollback_marks_the_bad_deployment_and_records_the_restored_release() {
    let fake = FakeGithub::start();
    let rec = recorder(&fake);
    let good = rec.start(&release("production", "r-1")).await.unwrap();
    rec.success(Some(good), None, "live").await;
    let bad = rec.start(&release("production", "r-2")).await.unwrap();
    rec.success(Some(bad), None, "live").await;

    let restored = rec
        .rollback(
            Some(bad),
            RolledBack::Failure,
            &release("production", "r-1"),
        )
        .await
        .unwrap();
    rec.success(Some(restored), None, "r-1 restored").await;

    assert_eq!(states(&fake, bad), ["in_progress", "success", "failure"]);
    assert_ne!(restored, good, "the restored release is a new deployment");
    assert_eq!(states(&fake, restored), ["in_progress", "success"]);
    let deps = fake.deployments();
    assert_eq!(deps.len(), 3);
    let p = &deps[2].payload["davit"];
    assert_eq!(p["kind"], "rollback");
    assert_eq!(p["release_id"], "r-1");
    assert_eq!(p["rollback_of"], bad.0);
    assert_eq!(
        client(&fake)
            .live_deployment("production")
            .await
            .unwrap()
            .map(|d| d.id),
        Some(restored)
    );

    // A manual rollback greys the replaced one out instead.
    let again = rec
        .rollback(
            Some(restored),
            RolledBack::Inactive,
            &release("production", "r-0"),
        )
        .await
        .unwrap();
    assert_eq!(states(&fake, restored).last().unwrap(), "inactive");
    assert_eq!(fake.deployments().len(), 4);
    assert_eq!(fake.deployments()[3].id, again.0);
}

#[tokio::test]
async fn t34_502_twice_then_success_creates_one_deployment() {
    let fake = FakeGithub::start();
    fake.inject(Fault::status("POST", DEPLOYMENTS, 502).times(2));
    let d = client(&fake)
        .create_deployment(&release("staging", "r-1"))
        .await
        .unwrap();
    assert_eq!(fake.deployments().len(), 1);
    assert_eq!(fake.deployments()[0].id, d.id.0);
    let posts = fake.requests_to("POST", DEPLOYMENTS);
    assert_eq!(
        posts.iter().map(|r| r.status).collect::<Vec<_>>(),
        [502, 502, 201]
    );
}

#[tokio::test]
async fn t34_lost_502_response_is_found_not_duplicated() {
    let fake = FakeGithub::start();
    // The create lands, then the proxy answers 502.
    fake.inject(Fault::status("POST", DEPLOYMENTS, 502).landing());
    let d = client(&fake)
        .create_deployment(&release("staging", "r-1"))
        .await
        .unwrap();
    assert_eq!(fake.deployments().len(), 1, "no duplicate");
    assert_eq!(fake.deployments()[0].id, d.id.0);
    assert_eq!(fake.requests_to("POST", DEPLOYMENTS).len(), 1);
}

#[tokio::test]
async fn t34_timeout_on_a_create_that_landed_does_not_duplicate() {
    let fake = FakeGithub::start();
    fake.inject(Fault::delay("POST", DEPLOYMENTS, 3_000).landing());
    let c = client(&fake).with_policy(RetryPolicy {
        request_timeout: Duration::from_millis(300),
        ..RetryPolicy::fast()
    });
    let d = c
        .create_deployment(&release("staging", "r-1"))
        .await
        .unwrap();
    assert_eq!(fake.deployments().len(), 1, "no duplicate");
    assert_eq!(fake.deployments()[0].id, d.id.0);
}

#[tokio::test]
async fn t34_timeout_before_landing_retries_and_creates_once() {
    let fake = FakeGithub::start();
    // The answer is held before the handler runs: the request is dropped with the connection,
    // so the lookup finds nothing and the retry creates it.
    fake.inject(Fault {
        status: 504,
        ..Fault::delay("POST", DEPLOYMENTS, 2_000)
    });
    let c = client(&fake).with_policy(RetryPolicy {
        request_timeout: Duration::from_millis(300),
        ..RetryPolicy::fast()
    });
    c.create_deployment(&release("staging", "r-1"))
        .await
        .unwrap();
    assert_eq!(fake.deployments().len(), 1);
}

#[tokio::test]
async fn t34_secondary_rate_limit_retry_after_is_honoured() {
    let fake = FakeGithub::start();
    fake.inject(Fault::secondary_rate_limit("POST", DEPLOYMENTS, 1));
    let started = Instant::now();
    client(&fake)
        .create_deployment(&release("staging", "r-1"))
        .await
        .unwrap();
    // A lower bound only: the client slept at least what the server asked.
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(fake.deployments().len(), 1);
    let posts = fake.requests_to("POST", DEPLOYMENTS);
    assert_eq!(
        posts.iter().map(|r| r.status).collect::<Vec<_>>(),
        [403, 201]
    );
    // A rate limit is a refusal, not an ambiguous answer: no lookup was needed.
    assert!(fake.requests_to("GET", DEPLOYMENTS).is_empty());
}

#[tokio::test]
async fn t34_primary_rate_limit_and_429_are_retried() {
    let fake = FakeGithub::start();
    fake.inject(Fault::primary_rate_limit("POST", DEPLOYMENTS, 0));
    fake.inject(Fault::status("POST", DEPLOYMENTS, 429));
    client(&fake)
        .create_deployment(&release("staging", "r-1"))
        .await
        .unwrap();
    assert_eq!(fake.deployments().len(), 1);
    assert_eq!(fake.requests_to("POST", DEPLOYMENTS).len(), 3);
}

#[tokio::test]
async fn t34_a_rate_limit_longer_than_the_policy_fails_at_once() {
    let fake = FakeGithub::start();
    fake.inject(Fault::secondary_rate_limit("POST", DEPLOYMENTS, 3600));
    let e = client(&fake)
        .create_deployment(&release("staging", "r-1"))
        .await
        .unwrap_err();
    assert!(matches!(e, GithubError::RateLimited { .. }), "{e}");
    assert_eq!(fake.requests_to("POST", DEPLOYMENTS).len(), 1);
}

#[tokio::test]
async fn t34_retries_are_bounded_and_end_in_a_warning_not_a_failure() {
    let fake = FakeGithub::start();
    fake.inject(Fault::status("POST", "/repos/*", 502).times(1000));
    let rec = recorder(&fake);
    let id = rec.start(&release("production", "r-1")).await;
    assert_eq!(id, None);
    // Later calls with no id are no-ops, not panics.
    rec.success(id, None, "live").await;
    rec.failure(id, "x").await;
    assert!(fake.deployments().is_empty());
    // Exactly max_attempts creates: bounded, and each retry after an ambiguous 502 first
    // checked that nothing had landed.
    assert_eq!(fake.requests_to("POST", DEPLOYMENTS).len(), 4);
    assert_eq!(fake.requests_to("GET", DEPLOYMENTS).len(), 3);
    let w = rec.warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("gave up after 4 attempts"), "{w:?}");
}

#[tokio::test]
async fn t34_a_failed_status_write_is_a_warning_and_later_writes_still_happen() {
    let fake = FakeGithub::start();
    let rec = recorder(&fake);
    let id = rec.start(&release("staging", "r-1")).await;
    let path = format!("{DEPLOYMENTS}/{}/statuses", id.unwrap());
    fake.inject(Fault::status("POST", &path, 500).times(4));
    rec.success(id, None, "live").await;
    assert_eq!(rec.warnings().len(), 1);
    rec.inactive(id, "replaced").await;
    assert_eq!(states(&fake, id.unwrap()), ["in_progress", "inactive"]);
}

#[tokio::test]
async fn t34_lost_status_response_does_not_stutter_the_history() {
    let fake = FakeGithub::start();
    let c = client(&fake);
    let d = c
        .create_deployment(&release("staging", "r-1"))
        .await
        .unwrap();
    let path = format!("{DEPLOYMENTS}/{}/statuses", d.id);
    fake.inject(Fault::status("POST", &path, 502).landing());
    c.set_status(
        d.id,
        &StatusUpdate {
            state: DeploymentState::InProgress,
            description: "deploying".into(),
            environment_url: None,
            log_url: Some(RUN_URL.into()),
        },
    )
    .await
    .unwrap();
    assert_eq!(states(&fake, d.id), ["in_progress"]);
}

#[tokio::test]
async fn t06_403_names_the_missing_permission_and_is_not_retried() {
    let fake = FakeGithub::start();
    let mut f = Fault::status("POST", DEPLOYMENTS, 403);
    f.message = Some("Resource not accessible by integration".into());
    fake.inject(f);
    let e = client(&fake)
        .create_deployment(&release("staging", "r-1"))
        .await
        .unwrap_err();
    assert!(matches!(e, GithubError::PermissionDenied { .. }), "{e}");
    assert!(e.to_string().contains("deployments: write"), "{e}");
    assert!(e.hint().unwrap().contains("permissions:"), "{:?}", e.hint());
    assert_eq!(e.to_failure().exit, davit_core::Exit::BadInput);
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn other_client_errors_are_not_retried() {
    let fake = FakeGithub::start();
    fake.inject(Fault::status("POST", DEPLOYMENTS, 422));
    let e = client(&fake)
        .create_deployment(&release("staging", "r-1"))
        .await
        .unwrap_err();
    assert!(matches!(e, GithubError::Status { status: 422, .. }), "{e}");
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn a_wrong_token_is_unauthorized() {
    let fake = FakeGithub::start();
    fake.set_expected_token("the-right-one");
    let e = client(&fake)
        .list_deployments(None, None)
        .await
        .unwrap_err();
    assert!(matches!(e, GithubError::Unauthorized { .. }), "{e}");
    assert!(!e.to_string().contains(TOKEN_CANARY));
}

#[tokio::test]
async fn requests_carry_the_token_as_bearer_and_json_bodies() {
    let fake = FakeGithub::start();
    fake.set_expected_token(TOKEN_CANARY);
    recorder(&fake)
        .start(&release("staging", "r-1"))
        .await
        .unwrap();
    for r in fake.requests() {
        assert_eq!(r.auth_scheme.as_deref(), Some("Bearer"));
        if r.method == "POST" {
            assert_eq!(r.headers["content-type"], "application/json");
        }
        assert_eq!(r.headers["x-github-api-version"], "2022-11-28");
    }
}

#[derive(Clone, Default)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn t08_canaries_never_reach_payloads_statuses_or_logs() {
    let logs = LogBuf::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let fake = FakeGithub::start();
    let rec = recorder(&fake);
    let mut d = release("production", "r-1");
    d.image = format!("deployer:{REGISTRY_CANARY}@registry.example.com/app:1.2.3");
    // Faults on every path so the error and warning paths run too.
    fake.inject(Fault::status("POST", DEPLOYMENTS, 502).landing());
    fake.inject(Fault::secondary_rate_limit("POST", "/repos/*", 0));
    let id = rec.start(&d).await.unwrap();
    fake.inject(Fault::status("POST", "/repos/*", 500).times(100));
    rec.failure(Some(id), "unhealthy").await;
    let restored = rec.rollback(Some(id), RolledBack::Failure, &d).await;
    assert_eq!(restored, None);
    fake.clear_faults();
    let _ = client(&fake)
        .set_status(
            id,
            &StatusUpdate {
                state: DeploymentState::Error,
                description: "x".into(),
                environment_url: None,
                log_url: None,
            },
        )
        .await;

    assert!(!rec.warnings().is_empty());
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("WARN"), "the warning paths ran:\n{logs}");
    let mut hits = Vec::new();
    for r in fake.requests() {
        let all = format!(
            "{} {} {} {:?} {}",
            r.method, r.path, r.query, r.headers, r.body
        );
        for canary in [TOKEN_CANARY, REGISTRY_CANARY] {
            if all.contains(canary) {
                hits.push(format!("{canary} in {} {}", r.method, r.path));
            }
        }
    }
    for canary in [TOKEN_CANARY, REGISTRY_CANARY] {
        if logs.contains(canary) {
            hits.push(format!("{canary} in logs"));
        }
        if rec.warnings().iter().any(|w| w.contains(canary)) {
            hits.push(format!("{canary} in warnings"));
        }
    }
    assert!(hits.is_empty(), "canary hits: {hits:?}");
    assert_eq!(
        fake.deployments()[0].payload["davit"]["image"],
        "registry.example.com/app:1.2.3"
    );
    assert_eq!(fake.deployments().len(), 1);
}

#[tokio::test]
async fn a_disabled_recorder_does_nothing() {
    let rec = DeploymentRecorder::disabled();
    assert!(!rec.is_enabled());
    assert_eq!(rec.start(&release("staging", "r-1")).await, None);
    rec.success(Some(DeploymentId(1)), None, "x").await;
    assert!(rec.warnings().is_empty());
}
