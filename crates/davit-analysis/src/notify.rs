//! Tell people what the analysis decided: a Slack incoming webhook and a generic JSON webhook.
//!
//! A rollback at 3 a.m. should reach a channel, not only a workflow log. Two rules shape this
//! module: the webhook URLs are credentials (anyone holding a Slack webhook URL can post to the
//! channel), so they live in [`Secret`]s, come from the environment and are stripped from every
//! error; and a notification is a courtesy, so a failed or slow one becomes a warning with a
//! bounded timeout, never a failed deploy.

use crate::run::{Action, Status, Verdict, fmt_value};
use crate::spec::NotifySpec;
use davit_core::Secret;
use serde::Serialize;
use std::time::Duration;

/// Environment variable with the Slack incoming webhook URL (action input `slack-webhook`).
pub const SLACK_ENV: &str = "DAVIT_SLACK_WEBHOOK_URL";
/// Environment variable with the generic JSON webhook URL (action input `notify-webhook`).
pub const WEBHOOK_ENV: &str = "DAVIT_NOTIFY_WEBHOOK_URL";

/// Where to send notifications. Build with [`Notifier::from_env`] or [`Notifier::new`].
pub struct Notifier {
    slack: Option<Secret<String>>,
    webhook: Option<Secret<String>>,
    timeout: Duration,
    when: NotifySpec,
    client: reqwest::Client,
}

/// What happened, beyond the verdict itself.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Context {
    pub environment: String,
    pub version: String,
    /// The version now serving after a rollback.
    pub rolled_back_to: Option<String>,
    /// Whether the rollback was verified through the public path.
    pub rollback_verified: Option<bool>,
    /// Link to the workflow run, e.g. `$GITHUB_SERVER_URL/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID`.
    pub run_url: Option<String>,
}

/// The body of the generic webhook.
#[derive(Debug, Serialize)]
pub struct WebhookBody<'a> {
    /// `success`, `rollback`, `hold` or `fail`.
    pub event: &'static str,
    #[serde(flatten)]
    pub context: &'a Context,
    pub verdict: &'a Verdict,
}

impl Notifier {
    pub fn new(
        slack: Option<Secret<String>>,
        webhook: Option<Secret<String>>,
        when: NotifySpec,
    ) -> Self {
        Notifier {
            slack,
            webhook,
            timeout: Duration::from_secs(10),
            when,
            client: reqwest::Client::new(),
        }
    }

    /// Read [`SLACK_ENV`] and [`WEBHOOK_ENV`] from `env` (empty counts as unset).
    pub fn from_env(env: impl Fn(&str) -> Option<String>, when: NotifySpec) -> Self {
        let get = |k: &str| env(k).filter(|v| !v.trim().is_empty()).map(Secret::new);
        Notifier::new(get(SLACK_ENV), get(WEBHOOK_ENV), when)
    }

    /// Per-request timeout (default 10 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Whether any destination is configured.
    pub fn is_configured(&self) -> bool {
        self.slack.is_some() || self.webhook.is_some()
    }

    /// Send the verdict to every configured destination that wants this event. Returns
    /// warnings for the ones that failed; the caller prints them (`::warning::`) and carries on.
    pub async fn send(&self, ctx: &Context, verdict: &Verdict) -> Vec<String> {
        // A failed rollback is an alert whatever the analysis said.
        let wanted = match verdict.action {
            _ if ctx.rollback_verified == Some(false) => self.when.on_rollback,
            Action::Keep => self.when.on_success,
            _ => self.when.on_rollback,
        };
        let mut warnings = Vec::new();
        if !wanted {
            return warnings;
        }
        if let Some(url) = &self.slack {
            let body = serde_json::json!({ "text": slack_text(ctx, verdict) });
            if let Err(e) = self.post(url, &body).await {
                warnings.push(format!("Slack notification failed: {e}"));
            }
        }
        if let Some(url) = &self.webhook {
            let body = WebhookBody {
                event: event_name(ctx, verdict),
                context: ctx,
                verdict,
            };
            if let Err(e) = self.post(url, &body).await {
                warnings.push(format!("webhook notification failed: {e}"));
            }
        }
        for w in &warnings {
            tracing::warn!("{w}");
        }
        warnings
    }

    async fn post(&self, url: &Secret<String>, body: &impl Serialize) -> Result<(), String> {
        let resp = self
            .client
            .post(url.expose())
            .timeout(self.timeout)
            .json(body)
            .send()
            .await
            // describe_error never includes the URL: it is the secret.
            .map_err(|e| crate::prometheus::describe_error(&e))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {}", resp.status().as_u16()))
        }
    }
}

fn event_name(ctx: &Context, v: &Verdict) -> &'static str {
    if ctx.rollback_verified == Some(false) {
        return "rollback_failed";
    }
    match v.action {
        Action::Keep => "success",
        Action::Rollback => "rollback",
        Action::Hold => "hold",
        Action::Fail => "fail",
    }
}

/// One Slack message: what happened, why, and the deciding figures.
pub fn slack_text(ctx: &Context, v: &Verdict) -> String {
    let what = match (v.status, v.action) {
        _ if ctx.rollback_verified == Some(false) => format!(
            ":rotating_light: {} {} is bad and the ROLLBACK FAILED: {} still serves; act now",
            ctx.environment, ctx.version, ctx.version
        ),
        (Status::Successful, _) => format!(
            ":white_check_mark: {} {} passed metric analysis",
            ctx.environment, ctx.version
        ),
        (_, Action::Rollback) => format!(
            ":rotating_light: {} {} was rolled back{}",
            ctx.environment,
            ctx.version,
            match (&ctx.rolled_back_to, ctx.rollback_verified) {
                (Some(to), Some(true)) => format!(" to {to} (verified)"),
                (Some(to), _) => format!(" to {to}"),
                _ => String::new(),
            }
        ),
        (_, Action::Hold) => format!(
            ":warning: {} {} is on hold: analysis inconclusive, previous release kept running",
            ctx.environment, ctx.version
        ),
        (_, _) => format!(
            ":x: {} {}: analysis could not run",
            ctx.environment, ctx.version
        ),
    };
    let mut text = format!("{what}\n*Reason:* {}", v.reason);
    for m in &v.metrics {
        let last = v.measurements.iter().rev().find(|x| x.metric == m.name);
        if let Some(last) = last {
            text.push_str(&format!(
                "\n• {}: {} ({})",
                m.name,
                last.value.map_or("no value".to_string(), fmt_value),
                m.threshold
            ));
        }
    }
    if let Some(url) = &ctx.run_url {
        text.push_str(&format!("\n<{url}|workflow run>"));
    }
    text
}
