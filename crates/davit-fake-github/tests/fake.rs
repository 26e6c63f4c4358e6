//! The fake itself: GitHub's validation rules, the control API over HTTP (what `act` runs use),
//! fault injection, and the standalone binary.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use davit_fake_github::{FakeGithub, Fault};
use serde_json::{Value, json};

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

async fn post(fake: &FakeGithub, path: &str, body: Value) -> (u16, Value) {
    let r = http()
        .post(format!("{}{path}", fake.url()))
        .bearer_auth("t")
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

const GOOD: fn() -> Value = || json!({"ref": "main", "environment": "staging", "auto_merge": false, "required_contexts": [], "payload": {"a": 1}});

#[tokio::test]
async fn deployments_are_validated_like_github() {
    let fake = FakeGithub::start();
    let p = "/repos/o/r/deployments";
    assert_eq!(post(&fake, p, GOOD()).await.0, 201);
    let mut no_ref = GOOD();
    no_ref.as_object_mut().unwrap().remove("ref");
    assert_eq!(post(&fake, p, no_ref).await.0, 422);
    let mut merge = GOOD();
    merge["auto_merge"] = json!(true);
    assert_eq!(post(&fake, p, merge).await.0, 409);
    let mut contexts = GOOD();
    contexts
        .as_object_mut()
        .unwrap()
        .remove("required_contexts");
    assert_eq!(post(&fake, p, contexts).await.0, 409);
    let mut payload = GOOD();
    payload["payload"] = json!([1]);
    assert_eq!(post(&fake, p, payload).await.0, 422);

    let id = fake.deployments()[0].id;
    let sp = format!("{p}/{id}/statuses");
    assert_eq!(post(&fake, &sp, json!({"state": "bogus"})).await.0, 422);
    assert_eq!(
        post(
            &fake,
            &sp,
            json!({"state": "success", "description": "x".repeat(141)})
        )
        .await
        .0,
        422
    );
    assert_eq!(
        post(
            &fake,
            &sp,
            json!({"state": "success", "log_url": "ftp://x"})
        )
        .await
        .0,
        422
    );
    assert_eq!(
        post(
            &fake,
            "/repos/o/r/deployments/999/statuses",
            json!({"state": "success"})
        )
        .await
        .0,
        404
    );
    let (s, body) = post(
        &fake,
        &sp,
        json!({"state": "in_progress", "log_url": "https://x/runs/1"}),
    )
    .await;
    assert_eq!((s, body["state"].as_str()), (201, Some("in_progress")));
}

#[tokio::test]
async fn requests_need_a_token_and_json() {
    let fake = FakeGithub::start();
    let url = format!("{}/repos/o/r/issues", fake.url());
    let r = http().get(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = http()
        .post(&url)
        .bearer_auth("t")
        .body(r#"{"title":"x"}"#)
        .header("content-type", "text/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    assert_eq!(
        post(&fake, "/repos/o/r/issues", json!({"title": ""}))
            .await
            .0,
        422
    );
    assert_eq!(fake.requests().len(), 3, "every request is recorded");
    assert!(
        fake.requests()
            .iter()
            .all(|r| !r.headers.contains_key("authorization"))
    );
}

#[tokio::test]
async fn faults_fire_the_given_number_of_times() {
    let fake = FakeGithub::start();
    fake.inject(Fault::status("POST", "/repos/o/*", 502).times(2));
    let p = "/repos/o/r/deployments";
    assert_eq!(post(&fake, p, GOOD()).await.0, 502);
    assert_eq!(post(&fake, p, GOOD()).await.0, 502);
    assert_eq!(post(&fake, p, GOOD()).await.0, 201);
    fake.inject(Fault::status("POST", p, 500).landing());
    assert_eq!(post(&fake, p, GOOD()).await.0, 500);
    assert_eq!(
        fake.deployments().len(),
        2,
        "the landing fault still created one"
    );
}

#[tokio::test]
async fn the_control_api_scripts_github_over_http() {
    let fake = FakeGithub::start();
    let (s, issue) = post(
        &fake,
        "/repos/davit-dev/app/issues",
        json!({"title": "t", "body": "b"}),
    )
    .await;
    assert_eq!(s, 201);
    assert_eq!(issue["user"]["login"], "github-actions[bot]");
    let base = fake.url().to_string();
    let c = http();
    let r = c
        .post(format!("{base}/_fake/comments"))
        .json(&json!({"repo": "davit-dev/app", "issue": 1, "user": "alice", "body": "approve"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let id = r.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
    c.patch(format!("{base}/_fake/comments/{id}"))
        .json(&json!({"body": "deny"}))
        .send()
        .await
        .unwrap();
    let comment = &fake.comments(1)[0];
    assert_eq!(comment.body, "deny");
    assert!(comment.updated_at > comment.created_at);
    c.post(format!("{base}/_fake/issues/davit-dev/app/1"))
        .json(&json!({"state": "closed", "locked": true}))
        .send()
        .await
        .unwrap();
    let i = fake.issue(1).unwrap();
    assert_eq!((i.state.as_str(), i.locked), ("closed", true));
    c.put(format!("{base}/_fake/teams/acme/release"))
        .json(&json!({"fail": 500}))
        .send()
        .await
        .unwrap();
    let r = c
        .get(format!("{base}/orgs/acme/teams/release/members"))
        .bearer_auth("t")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 500);
    c.post(format!("{base}/_fake/faults"))
        .json(&json!({"method": "GET", "path": "/repos/*", "status": 403, "headers": {"retry-after": "1"}}))
        .send()
        .await
        .unwrap();
    let r = c
        .get(format!("{base}/repos/davit-dev/app/issues/1"))
        .bearer_auth("t")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(r.headers()["retry-after"], "1");
    let recorded: Vec<Value> = c
        .get(format!("{base}/_fake/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(recorded.len(), 3, "control calls are not recorded");
}

#[test]
fn the_binary_prints_its_url_and_serves() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_davit-fake-github"))
        .args(["--port", "0", "--token", "secret-t"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (wrong, right) = rt.block_on(async {
        let get = |t: &'static str| {
            http()
                .get(format!("{url}/repos/o/r/deployments"))
                .bearer_auth(t)
                .send()
        };
        (
            get("nope").await.unwrap().status().as_u16(),
            get("secret-t").await.unwrap().status().as_u16(),
        )
    });
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!((wrong, right), (401, 200));
}
