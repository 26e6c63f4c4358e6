//! Blue-green behind davit's nginx as a [`Strategy`]: the planners are in [`crate::bluegreen`].

use super::{Rollback, Strategy};
use crate::bluegreen as bg;
use crate::observe::{Observed, Seen};
use crate::target::{BluGreenPorts, Target, url_host};
use crate::{NewRelease, docker, journal, nginx, truth};
use async_trait::async_trait;
use davit_core::{Failure, Plan, Probe};
use davit_exec::Executor;

pub(super) struct BlueGreen {
    pub ports: BluGreenPorts,
}

#[async_trait]
impl Strategy for BlueGreen {
    fn name(&self) -> &'static str {
        "blue-green"
    }

    fn managed_proxy(&self) -> Option<BluGreenPorts> {
        Some(self.ports)
    }

    /// What nginx serves (asked through the public path: its headers name the color and
    /// release of the configuration it has loaded), the live site file, and whether nginx
    /// runs. What serves decides; a site file that disagrees is noted (see [`crate::truth`]).
    async fn observe(
        &self,
        exec: &dyn Executor,
        t: &Target,
        obs: &mut Observed,
    ) -> Result<(), Failure> {
        let files = nginx::Files::of(t);
        let file = exec
            .read_file(&files.site())
            .await
            .map_err(|e| Failure::infra(e.to_string()))?
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        obs.live = file.as_deref().and_then(nginx::parse_live);
        let running = crate::supervise::pid_alive(exec, &files.pid()).await;
        obs.seen = Seen::Proxy {
            nginx_running: running,
        };
        obs.volumes = nginx::volume_dirs(exec, t, false).await?;
        obs.switch_cut_short = journal::read_interrupted(exec, t).await?;
        if running {
            let mut serving = truth::served(exec, t, self.ports).await;
            // A reload still in flight (a run killed right after `nginx -s reload`) answers
            // from the old workers for a moment: only a disagreement that lasts is one.
            for _ in 0..40 {
                if serving.is_none() || serving == obs.live {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                serving = truth::served(exec, t, self.ports).await;
            }
            truth::reconcile_view(obs, file.as_deref(), serving);
        }
        Ok(())
    }

    async fn repair(
        &self,
        exec: &dyn Executor,
        t: &Target,
        obs: &mut Observed,
        warnings: &mut Vec<String>,
    ) -> Result<(), Failure> {
        truth::repair(exec, t, self.ports, obs, warnings).await?;
        if let Some(e) = obs.switch_cut_short.take() {
            journal::settle(exec, t, &e, obs.live.as_ref(), warnings).await?;
        }
        Ok(())
    }

    fn pulls_image(&self) -> bool {
        true
    }

    fn moves_processes(&self) -> bool {
        true
    }

    fn plan_deploy(&self, t: &Target, rel: &NewRelease, obs: &Observed) -> Plan {
        bg::plan_deploy(t, self.ports, rel, obs)
    }

    fn deploy_color(&self, obs: &Observed) -> Option<String> {
        Some(bg::idle_color(obs).to_string())
    }

    /// Switch back to the color that still runs the release (started again if stopped), or
    /// re-create it from its image when its container is gone.
    async fn plan_rollback(
        &self,
        exec: &dyn Executor,
        t: &Target,
        rb: &Rollback<'_>,
        obs: &Observed,
        _warnings: &mut Vec<String>,
    ) -> Result<(Plan, Option<String>), Failure> {
        let rel = &rb.rel;
        let bad_color = rb.live.and_then(|r| r.color.clone());
        let image_present = docker::image_id(exec, &rel.image).await.is_some();
        let color = rb.to.color.clone().unwrap_or_else(|| "blue".into());
        let state = docker::container(exec, &bg::container_name(t, &color)).await;
        match state {
            Some(s) if s.release == rel.id && (s.running || image_present) => Ok((
                bg::plan_switch_back(
                    t,
                    self.ports,
                    &color,
                    rel,
                    !s.running,
                    bad_color.as_deref(),
                    obs,
                ),
                Some(color),
            )),
            _ if image_present => {
                // Re-creating the release writes its env file again.
                t.require_secrets()?;
                let new_color = bg::idle_color(obs).to_string();
                Ok((
                    bg::plan_redeploy(t, self.ports, rel, bad_color.as_deref(), obs),
                    Some(new_color),
                ))
            }
            _ => Err(rb.refuse(format!(
                "its container ({}) and its image ({}) are both gone",
                bg::container_name(t, &color),
                rel.image
            ))),
        }
    }

    fn probes(&self, t: &Target, live_color: Option<&str>, version: &str) -> Vec<(String, Probe)> {
        let mut v = Vec::new();
        if let Some(c) = live_color {
            v.push((
                format!("{c} direct"),
                bg::direct_probe(t, self.ports, c, version),
            ));
        }
        v.push((
            "public path".into(),
            bg::proxy_probe(t, self.ports, version),
        ));
        v
    }

    fn metrics_instance(&self, t: &Target, live_color: Option<&str>) -> Option<String> {
        live_color.map(|c| format!("{}:{}", url_host(&t.bind), bg::port_of(self.ports, c)))
    }

    fn public_url(&self, t: &Target) -> Option<String> {
        Some(format!(
            "http://{}:{}",
            url_host(&t.proxy.listen),
            self.ports.public
        ))
    }
}
