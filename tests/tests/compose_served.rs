//! A compose deploy replaces the running container before its health gate: when the new release
//! fails, users were served by it until the previous release came back, and the error says so,
//! with how long, instead of "traffic stays on the previous release".

use davit_deploy::Options;
use davit_exec::{Local, runner::Quiet};
use davit_tests::*;

#[test]
fn a_failed_compose_deploy_says_how_long_the_failing_release_served() {
    if !require_all(&["docker"]) {
        return;
    }
    let repo = "davit-test-compose-served";
    demo_image(repo, "v1", &[]);
    demo_image(repo, "v2-sick", &[("FAULT_NEVER_HEALTHY", "1")]);
    let sb = Sandbox::new("t-cserved");
    let t = sb.target(
        repo,
        "staging",
        "[environments.staging.health]\ninterval_ms = 100\nconsecutive = 1\ndeadline_secs = 2\n",
    );
    let url = format!("http://127.0.0.1:{}/", sb.staging);
    block_on(async {
        let exec = Local::new();
        davit_deploy::deploy(&exec, &t, "v1", &Options::default(), &Quiet)
            .await
            .unwrap();
        let e = davit_deploy::deploy(&exec, &t, "v2-sick", &Options::default(), &Quiet)
            .await
            .unwrap_err();
        let m = e.message.clone();
        assert!(!m.contains("traffic stays"), "{m}");
        assert!(m.contains("the failing release served for "), "{m}");
        assert!(
            m.contains("before the previous release's compose file was applied again"),
            "{m}"
        );
        let secs: f32 = m
            .split("served for ")
            .nth(1)
            .and_then(|r| r.split('s').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{m}"));
        assert!(secs >= 2.0, "at least the health deadline: {m}");
        assert_eq!(version_at(&url).await, "v1");
    });
}
