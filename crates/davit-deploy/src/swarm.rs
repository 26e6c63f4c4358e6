//! The swarm strategy: a Docker stack of the app service and a proxy, across the swarm's
//! nodes, that Swarm updates start-first and rolls back on its own when new tasks fail.
//!
//! Routing without the mesh: the app service sits on the stack's attachable overlay network
//! with `endpoint_mode: dnsrr`, and a global HAProxy service ([`proxy`]) publishes the app's
//! port on every node in `mode: host` and follows the tasks through Swarm's DNS. Neither needs
//! IPVS, which the routing mesh does and which many kernels lack. Zero dropped requests during
//! an update come from three things together: the app's container health check (Swarm lists a
//! task in DNS, and moves on in the update, only once it passes), Swarm removing a task's DNS
//! record before it sends SIGTERM (then `stop_grace_period` for in-flight requests), and the
//! proxy resending a request that met a task in that moment to another task.
//!
//! Why a stack and not `docker service update`: a release carries an env file (plain settings and
//! secrets), and `docker service update` can only change environment through `--env-add K=V`,
//! which would put secrets in argv. `docker stack deploy` reads `env_file:` on the client and
//! sends the values in the service spec, like `docker run --env-file`. Each release keeps its
//! stack file next to its env file, so undoing a failed deploy or rolling back to any recorded
//! release is "apply that release's stack file again".
//!
//! Why davit checks `UpdateStatus` itself: with Docker 20.10, `docker stack deploy
//! --detach=false` and `docker service update --detach=false` both wait for the service to
//! converge and then exit 0 *even when Swarm rolled the update back*. A deploy that Swarm
//! reverted must never be reported as a success, so after the wait the plan reads
//! `.UpdateStatus.State` and fails unless it is `completed` (or absent, for a service that was
//! just created). The check is an ordinary plan step, so `--dry-run` shows it; it is marked as a
//! check of the release ([`davit_core::Plan::push_check`]) so `deploy` reports a release Swarm
//! reverted as rejected (exit 1) rather than an infrastructure error, and its failure message
//! names the rollback ([`ROLLED_BACK`]) for the user.
//!
//! Why davit checks every node ([`NODES_DIFFER`]): Swarm counts an update complete when the
//! tasks it can see run the new spec. A node that was cut off is `Down` to the manager and
//! its tasks are rescheduled elsewhere, but what it really runs is unknown until it returns. So
//! after the update the plan lists each node with its state and the versions of its tasks, and
//! fails (undoing the update, so the reachable nodes return to the previous release) unless
//! every node is ready and runs only the new release: never a plain success with mixed
//! versions.

mod proxy;

use crate::docker;
use crate::target::Target;
use crate::{NewRelease, Observed};
use davit_config::{PullPolicy, Swarm};
use davit_core::{Action, Cmd, Failure, FileBody, Plan, Probe, Step};
use davit_exec::Executor;
use std::path::PathBuf;
use std::time::Duration;

/// The words in the status check's failure that say Swarm reverted the release.
pub const ROLLED_BACK: &str = "Swarm did not complete the update (it rolled back or paused)";

/// The service inside the stack: davit's stacks have exactly one, `app`.
pub fn service_name(t: &Target) -> String {
    format!("{}_app", t.prefix())
}

pub fn stack_file_path(t: &Target, release: &str) -> PathBuf {
    crate::release_dir(t, release).join("swarm.yaml")
}

/// The proxy's config, next to the stack file that names it.
fn proxy_config_path(t: &Target, release: &str) -> PathBuf {
    crate::release_dir(t, release).join("haproxy.cfg")
}

/// The words in the node check's failure that say the nodes do not all run the release.
pub const NODES_DIFFER: &str = "not every swarm node runs the release";

/// What davit saw of Swarm before planning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SwarmState {
    /// `docker info` `.Swarm.LocalNodeState` (`active`, `inactive`, ...), `ControlAvailable`.
    pub node_state: String,
    pub manager: bool,
    /// The service, when it exists.
    pub service: Option<ServiceState>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceState {
    /// `davit.release` of the current spec.
    pub release: String,
    /// `davit.release` of the spec `docker service rollback` would return to (empty if none).
    pub previous_release: String,
    /// `.UpdateStatus.State` (empty when the service was never updated).
    pub update_state: String,
}

/// Read the node and service state. Read-only.
pub async fn observe(exec: &dyn Executor, t: &Target) -> SwarmState {
    let mut s = SwarmState::default();
    let info = Cmd::new("docker")
        .args([
            "info",
            "--format",
            "{{.Swarm.LocalNodeState}}|{{.Swarm.ControlAvailable}}",
        ])
        .timeout(Duration::from_secs(20));
    if let Ok(o) = exec.run(&info).await
        && o.success()
    {
        let text = o.stdout.trim().to_string();
        let (state, manager) = text.split_once('|').unwrap_or((&text, "false"));
        s.node_state = state.to_string();
        s.manager = manager == "true";
    }
    let inspect = Cmd::new("docker")
        .args([
            "service",
            "inspect",
            "--format",
            "{{index .Spec.Labels \"davit.release\"}}|{{with .PreviousSpec}}{{index .Labels \"davit.release\"}}{{end}}|{{with .UpdateStatus}}{{.State}}{{end}}",
        ])
        .arg(service_name(t))
        .timeout(Duration::from_secs(20));
    if let Ok(o) = exec.run(&inspect).await
        && o.success()
    {
        let text = o.stdout.trim().to_string();
        let mut parts = text.splitn(3, '|');
        s.service = Some(ServiceState {
            release: parts.next().unwrap_or_default().to_string(),
            previous_release: parts.next().unwrap_or_default().to_string(),
            update_state: parts.next().unwrap_or_default().to_string(),
        });
    }
    s
}

/// Refuse before changing anything when this engine cannot run the strategy.
pub fn ready(obs: &Observed, dry_run: bool, warnings: &mut Vec<String>) -> Result<(), Failure> {
    let Some(s) = obs.seen.swarm() else {
        return Ok(());
    };
    let problem = if s.node_state != "active" {
        Some((
            format!(
                "this Docker engine is not in a swarm (state: {})",
                if s.node_state.is_empty() {
                    "unknown"
                } else {
                    &s.node_state
                }
            ),
            "run `docker swarm init --advertise-addr <this host's address>` once on the host (a one-node swarm is fine)",
        ))
    } else if !s.manager {
        Some((
            "this Docker engine is a swarm worker; services can only be changed on a manager"
                .into(),
            "point davit at a manager node (environments.<name>.host)",
        ))
    } else {
        None
    };
    match problem {
        Some((what, hint)) if dry_run => {
            warnings.push(format!("{what} (hint: {hint})"));
            Ok(())
        }
        Some((what, hint)) => Err(Failure::infra(format!(
            "swarm deploy refused before changing anything: {what}"
        ))
        .with_hint(hint)),
        None => Ok(()),
    }
}

/// The stack file of a release: the app service (dnsrr on the stack's overlay, health-checked,
/// start-first) and the proxy (global, host-mode port). Values are JSON strings, which YAML
/// reads verbatim.
pub fn stack_yaml(t: &Target, s: &Swarm, rel: &NewRelease) -> String {
    let q = |v: &str| serde_json::to_string(v).expect("strings serialize");
    let list = |items: &[String]| items.iter().map(|i| q(i)).collect::<Vec<_>>().join(", ");
    let labels = list(&docker::labels(t, &rel.id, &rel.version, None));
    let (_, _, deadline) = t.health_timing();
    let mut y = format!(
        "# Written by davit for release {id}; undo and rollback apply it again.\n\
         version: \"3.8\"\n\
         services:\n\
         \x20 app:\n\
         \x20   image: {image}\n\
         \x20   env_file: [\"app.env\"]\n\
         \x20   networks: [\"net\"]\n\
         \x20   # Swarm removes a task from DNS (so from the proxy) before SIGTERM; the app then\n\
         \x20   # finishes what is in flight.\n\
         \x20   stop_grace_period: 10s\n\
         \x20   labels: [{labels}]\n",
        id = rel.id,
        image = q(&rel.image),
    );
    if !s.health_cmd.is_empty() {
        let mut test = vec!["CMD".to_string()];
        test.extend(s.health_cmd.iter().cloned());
        // A task joins DNS, and the update moves on, only once this passes.
        y.push_str(&format!(
            "    healthcheck:\n\
             \x20     test: [{test}]\n\
             \x20     interval: 1s\n\
             \x20     timeout: 3s\n\
             \x20     retries: 3\n\
             \x20     start_period: {start}s\n",
            test = list(&test),
            start = deadline.as_secs(),
        ));
    }
    if let Some(cmd) = &t.command {
        y.push_str(&format!("    command: [{}]\n", list(cmd)));
    }
    let proxy_config = proxy::config(t, s, &service_name(t));
    y.push_str(&format!(
        "    deploy:\n\
         \x20     endpoint_mode: dnsrr\n\
         \x20     replicas: {replicas}\n\
         \x20     labels: [{labels}]\n\
         \x20     update_config:\n\
         \x20       parallelism: {parallelism}\n\
         \x20       order: start-first\n\
         \x20       failure_action: rollback\n\
         \x20       monitor: {monitor}s\n\
         \x20       max_failure_ratio: 0\n\
         \x20     rollback_config:\n\
         \x20       parallelism: {parallelism}\n\
         \x20       order: start-first\n\
         \x20       failure_action: pause\n\
         \x20       monitor: {monitor}s\n\
         \x20 proxy:\n\
         \x20   image: {proxy_image}\n\
         \x20   command: [\"haproxy\", \"-W\", \"-db\", \"-f\", \"{config_path}\"]\n\
         \x20   # HAProxy's graceful stop: it finishes open requests before exiting.\n\
         \x20   stop_signal: SIGUSR1\n\
         \x20   stop_grace_period: 10s\n\
         \x20   networks: [\"net\"]\n\
         \x20   ports:\n\
         \x20     - {{ target: {listen}, published: {published}, protocol: tcp, mode: host }}\n\
         \x20   configs:\n\
         \x20     - {{ source: haproxy, target: \"{config_path}\" }}\n\
         \x20   deploy:\n\
         \x20     # One per node, each publishing the port on its own node: no routing mesh.\n\
         \x20     mode: global\n\
         \x20     endpoint_mode: dnsrr\n\
         \x20     labels: [\"davit.role=proxy\"]\n\
         networks:\n\
         \x20 net:\n\
         \x20   driver: overlay\n\
         \x20   attachable: true\n\
         configs:\n\
         \x20 haproxy:\n\
         \x20   # Swarm configs are immutable: a changed config gets a new name.\n\
         \x20   name: {config_name}\n\
         \x20   file: ./haproxy.cfg\n",
        replicas = s.replicas,
        parallelism = s.parallelism,
        monitor = s.monitor_secs,
        proxy_image = q(&s.proxy_image),
        config_path = proxy::CONFIG_PATH,
        listen = proxy::LISTEN_PORT,
        published = s.published_port,
        config_name = q(&format!(
            "{}-haproxy-{}",
            t.prefix(),
            proxy::digest(&proxy_config)
        )),
    ));
    y
}

/// The proxy's config for a target (written next to each release's stack file).
pub fn proxy_config(t: &Target, s: &Swarm) -> String {
    proxy::config(t, s, &service_name(t))
}

/// `docker stack deploy` of a release's stack file; [`settle`] then waits for the app service.
///
/// Not `--detach=false`: the CLI then waits for every service of the stack, including the
/// global proxy's task on a node that is down, which never comes (T52), so it would hang until
/// the timeout even though Swarm finished the update on the other nodes.
///
/// Images are resolved against a registry only when the pull policy allows it: with
/// `pull = "never"` the image exists only on the nodes (loaded there), and a registry
/// lookup would fail or, worse, pin a different digest.
fn stack_deploy(t: &Target, s: &Swarm, release: &str) -> Cmd {
    let resolve = match t.pull {
        PullPolicy::Never => "never",
        PullPolicy::Missing | PullPolicy::Always => "changed",
    };
    let _ = s;
    Cmd::new("docker")
        .args(["stack", "deploy", "--detach=true", "--quiet"])
        .args(["--resolve-image", resolve, "--compose-file"])
        .arg(stack_file_path(t, release).display().to_string())
        .arg(t.prefix())
        .timeout(Duration::from_secs(120))
}

/// How long the settle wait lets Swarm keep an update `updating` while a node is not `Ready`
/// before it stops waiting. A node cut off mid-update can leave Swarm's updater waiting on it
/// until the update timeout; the outcome is known by then (the deploy fails, davit cannot vouch
/// for that node), so davit reports it per node at once instead.
const DOWN_WHILE_UPDATING_SECS: u64 = 20;

/// What the settle wait does once a node has been down for [`DOWN_WHILE_UPDATING_SECS`] while
/// Swarm is still updating.
#[derive(Clone, Copy)]
enum NodeDown {
    /// Stop and fail with the per-node report ([`NODES_DIFFER`]): the forward deploy or
    /// rollback cannot succeed with a node down, and this names what each node runs.
    Report,
    /// Stop waiting for Swarm's `completed` and settle on what the reachable nodes run: the
    /// undo of a failed deploy, which must return the reachable nodes to the previous release.
    Reachable,
}

/// Waits (up to `update_timeout_secs`) until Swarm has settled the app service: no update or
/// rollback in progress, and exactly the spec's replicas running (a recorded release's stack
/// file may have another count than davit.toml has now), all of the service's current
/// image (after a rollback by Swarm that is the previous image, which the status check then
/// reports), no task Swarm is stopping still running on a node that is up (until it has
/// stopped, a proxy may still send it requests: T52 saw an undone release answer after the
/// task list showed only the previous one), and the proxy running on every node that is up,
/// so each node answers once davit says the release is out. Tasks on a node that is down are
/// not counted: Swarm reschedules them. Comparing
/// with the spec's image also covers the moment right after `stack deploy`, when the last
/// update's `completed` is still shown. A node down while Swarm is still updating ends the
/// wait early ([`NodeDown`]).
fn settle(t: &Target, s: &Swarm, down: NodeDown) -> Cmd {
    let script = format!(
        r#"svc="$1"; proxy="$2"; on_down="$3"; since=""
{NODE_REPORT}
converged() {{
  tasks=$(docker service ps "$svc" --filter desired-state=running --format '{{{{.Image}}}} {{{{.CurrentState}}}}' | sed 's/@sha256:[0-9a-f]*//')
  running=$(printf '%s\n' "$tasks" | awk '$2 == "Running"' | wc -l)
  current=$(printf '%s\n' "$tasks" | awk -v i="$image" '$1 == i && $2 == "Running"' | wc -l)
  proxies=$(docker service ps "$proxy" --filter desired-state=running --format '{{{{.CurrentState}}}}' | grep -c '^Running')
  nodes=$(docker node ls --format '{{{{.Status}}}} {{{{.Availability}}}}' | grep -c '^Ready Active')
  ready=$(docker node ls --format '{{{{.Hostname}}}} {{{{.Status}}}}' | awk '$2 == "Ready" {{ printf " %s ", $1 }}')
  stopping=$(docker service ps "$svc" --format '{{{{.Node}}}} {{{{.DesiredState}}}} {{{{.CurrentState}}}}' \
    | awk -v r="$ready" '($2 == "Shutdown" || $2 == "Remove") && $3 == "Running" && index(r, " " $1 " ") {{ n++ }} END {{ print n + 0 }}')
  [ "$running" -eq "$replicas" ] && [ "$current" -eq "$replicas" ] && [ "$proxies" -ge "$nodes" ] && [ "$stopping" -eq 0 ]
}}
while :; do
  state=$(docker service inspect --format '{{{{with .UpdateStatus}}}}{{{{.State}}}}{{{{end}}}}' "$svc") || exit 3
  replicas=$(docker service inspect --format '{{{{.Spec.Mode.Replicated.Replicas}}}}' "$svc") || exit 3
  image=$(docker service inspect --format '{{{{.Spec.TaskTemplate.ContainerSpec.Image}}}}' "$svc" | sed 's/@sha256:[0-9a-f]*//')
  busy=""
  case "$state" in updating|rollback_started) busy=1 ;; esac
  if [ -n "$busy" ]; then
    down=$(docker node ls --format '{{{{.Status}}}}' | grep -vc '^Ready$')
    if [ "$down" -gt 0 ]; then since=${{since:-$(date +%s)}}; else since=""; fi
    if [ -n "$since" ] && [ $(($(date +%s) - since)) -ge {DOWN_WHILE_UPDATING_SECS} ]; then
      if [ "$on_down" = report ]; then
        echo "Swarm is still $state the service with $down node(s) not ready after {DOWN_WHILE_UPDATING_SECS}s: davit stops waiting" >&2
        node_report "$svc" "$image" >/dev/null
        exit 1
      fi
      busy=""
    fi
  fi
  if [ -z "$busy" ] && converged; then exit 0; fi
  sleep 1
done"#
    );
    let on_down = match down {
        NodeDown::Report => "report",
        NodeDown::Reachable => "reachable",
    };
    Cmd::new("sh")
        .args([
            "-c",
            &script,
            "settle",
            &service_name(t),
            &format!("{}_proxy", t.prefix()),
            on_down,
        ])
        .timeout(update_timeout(s))
}

fn update_timeout(s: &Swarm) -> Duration {
    Duration::from_secs(s.update_timeout_secs)
}

/// Fails unless Swarm's last update of the service ended in `want` (none is fine for a service
/// that was just created). A missing template is how a Go template fails a command; its name is
/// the message users see.
fn status_check(t: &Target, want: &str) -> Cmd {
    let format = format!(
        "{{{{with .UpdateStatus}}}}{{{{.State}}}}: {{{{.Message}}}}{{{{if ne .State \"{want}\"}}}}{{{{template \"{ROLLED_BACK}; see docker service ps {svc}\"}}}}{{{{end}}}}{{{{end}}}}",
        svc = service_name(t)
    );
    Cmd::new("docker")
        .args(["service", "inspect", "--format"])
        .arg(format)
        .arg(service_name(t))
        .timeout(Duration::from_secs(30))
}

/// A shell function, `node_report SERVICE IMAGE`: lists every node with its state and the
/// images of its running tasks of the service (to stdout, and to stderr when it fails), and
/// fails ([`NODES_DIFFER`]) unless every node is `Ready` and every running task runs `IMAGE`.
/// A `Down` node's tasks are what Swarm last saw. Shared by [`node_check`] and [`settle`].
const NODE_REPORT: &str = concat!(
    r#"node_report() {
  tasks=$(docker service ps "$1" --filter desired-state=running --format '{{.Node}} {{.Image}}' | sed 's/@sha256:[0-9a-f]*//') || return 3
  nodes=$(docker node ls --format '{{.Hostname}} {{.Status}} {{.Availability}}') || return 3
  bad=0; report=""
  while read -r host status avail; do
    [ -n "$host" ] || continue
    mine=$(printf '%s\n' "$tasks" | awk -v h="$host" '$1 == h { print $2 }')
    runs=$(printf '%s\n' "$mine" | grep . | sort | uniq -c | awk '{ printf "%s%s x%s", sep, $2, $1; sep = ", " }')
    note=""
    if [ "$status" != Ready ]; then
      bad=1; note=" (unreachable: its tasks are what Swarm last saw; it converges to the service's spec when it returns)"
    fi
    for i in $mine; do [ "$i" = "$2" ] || bad=1; done
    report="$report
node $host: $status/$avail, runs: ${runs:-nothing}$note"
  done <<NODES
$nodes
NODES
  echo "$report"
  if [ "$bad" = 1 ]; then
    echo "$report" >&2
    echo ""#,
    "not every swarm node runs the release",
    r#" ($2); see docker node ls and docker service ps $1" >&2
    return 1
  fi
}"#
);

/// Runs [`NODE_REPORT`] for the service and `image`: the per-node report, failing unless every
/// node is ready and runs only `image`.
fn node_check(t: &Target, image: &str) -> Cmd {
    let script = format!("{NODE_REPORT}\nnode_report \"$1\" \"$2\"");
    Cmd::new("sh")
        .args(["-c", &script, "node-check", &service_name(t), image])
        .timeout(Duration::from_secs(30))
}

/// The health probe through the published port (the proxy on the node davit talks to): only
/// the new version may answer, `consecutive` times in a row, so tasks of the old version still
/// draining fail it.
pub fn probe(t: &Target, s: &Swarm, version: &str) -> Probe {
    let base = format!("http://{LOCAL}:{}", s.published_port);
    let p = crate::health::probe(t, &base, version);
    Probe {
        consecutive: p.consecutive.max(s.replicas),
        ..p
    }
}

/// Where the manager reaches its own proxy; [`probe_nodes`] puts each node's address here.
const LOCAL: &str = "127.0.0.1";

/// [`probe`] through every node's proxy, as a plan step: each node answers for the whole
/// service, so a release is out (or an undo done) only when every node that is up serves it.
fn gate(t: &Target, s: &Swarm, version: &str) -> Step {
    Step::Action(Action::ProbeSwarmNodes {
        probe: Box::new(probe(t, s, version)),
    })
}

/// `host address` of every ready node, the address its proxy answers on from the manager:
/// loopback for the manager itself (its proxy publishes there too), `.Status.Addr` for the
/// others (the address it joined the swarm with).
const READY_NODES: &str = r#"nodes=$(docker node ls --format '{{.ID}} {{.Self}} {{.Status}} {{.Hostname}}') || exit 3
printf '%s\n' "$nodes" | while read -r id self status host; do
  [ "$status" = Ready ] || continue
  if [ "$self" = true ]; then addr=127.0.0.1
  else addr=$(docker node inspect --format '{{.Status.Addr}}' "$id") || exit 3
  fi
  echo "$host $addr"
done"#;

/// Runs `probe` (on the manager's loopback) against the proxy of every node that is ready now,
/// one node after the other. Nodes that are down are left out: what they run is the node
/// check's report, and the undo of a failed deploy must still confirm the reachable ones.
pub async fn probe_nodes(exec: &dyn Executor, probe: &Probe) -> Result<(), Failure> {
    let out = exec
        .run_ok(
            &Cmd::new("sh")
                .args(["-c", READY_NODES])
                .timeout(Duration::from_secs(30)),
        )
        .await
        .map_err(|e| Failure::infra(format!("listing the swarm's ready nodes: {e}")))?;
    let nodes: Vec<(&str, &str)> = out
        .stdout
        .lines()
        .filter_map(|l| l.split_once(' '))
        .collect();
    if nodes.is_empty() {
        return Err(Failure::infra("no swarm node is ready".to_string()));
    }
    let path = probe
        .url
        .strip_prefix(&format!("http://{LOCAL}"))
        .ok_or_else(|| Failure::infra(format!("not a probe of the manager: {}", probe.url)))?;
    for (host, addr) in nodes {
        if addr.is_empty() || addr == "0.0.0.0" {
            return Err(Failure::infra(format!(
                "node {host}: Swarm does not say its address, so its proxy cannot be checked"
            )));
        }
        let p = Probe {
            url: format!("http://{addr}{path}"),
            ..probe.clone()
        };
        davit_exec::runner::wait_http(exec, &p)
            .await
            .map_err(|why| Failure::infra(format!("node {host}'s proxy: {why}")))?;
    }
    Ok(())
}

/// Deploy a release: write its stack file, let Swarm roll it out start-first, check Swarm kept
/// it, probe it. A failure re-applies the previous release's stack file (or removes a stack that
/// was just created).
pub fn plan_deploy(t: &Target, s: &Swarm, rel: &NewRelease, obs: &Observed) -> Plan {
    let mut plan = Plan::new(format!(
        "swarm deploy of {} ({}) to {} ({} replica(s), start-first)",
        rel.version, rel.image, t.environment, s.replicas
    ));
    crate::push_env_and_pre_hooks(&mut plan, t, rel, obs);
    plan.push(
        "write the release's stack file",
        Step::WriteFile {
            path: stack_file_path(t, &rel.id),
            body: FileBody::Plain(stack_yaml(t, s, rel)),
            mode: 0o644,
        },
    );
    plan.push(
        "write the proxy's config (HAProxy following tasks.<service>)",
        Step::WriteFile {
            path: proxy_config_path(t, &rel.id),
            body: FileBody::Plain(proxy_config(t, s)),
            mode: 0o644,
        },
    );
    let exists = obs.seen.swarm().is_some_and(|s| s.service.is_some());
    let previous = crate::ledger::live(&obs.ledger).filter(|r| r.strategy == "swarm");
    let undo = match (&previous, exists) {
        // Done when every reachable node's proxy answers with the previous release again.
        (Some(prev), true) => vec![
            Step::Exec(stack_deploy(t, s, &prev.id)),
            Step::Exec(settle(t, s, NodeDown::Reachable)),
            gate(t, s, &prev.version),
        ],
        (_, false) => vec![Step::ExecIgnoringFailure(
            Cmd::new("docker")
                .args(["stack", "rm"])
                .arg(t.prefix())
                .timeout(Duration::from_secs(60)),
        )],
        // A service davit has no record of: leave it to Swarm's own rollback.
        (None, true) => Vec::new(),
    };
    plan.push_with_undo(
        if exists {
            "docker stack deploy: Swarm updates the service start-first"
        } else {
            "docker stack deploy: create the network, the proxy and the service"
        },
        Step::Exec(stack_deploy(t, s, &rel.id)),
        undo,
    );
    plan.push(
        format!(
            "wait for Swarm to settle the service (all tasks of one image; at most {}s)",
            s.update_timeout_secs
        ),
        Step::Exec(settle(t, s, NodeDown::Report)),
    );
    plan.push_check(
        format!(
            "check Swarm completed the update (a rollback by Swarm fails the deploy; monitor {}s)",
            s.monitor_secs
        ),
        Step::Exec(status_check(t, "completed")),
    );
    plan.push(
        "check every node is ready and runs only this release (a node cut off fails the deploy)",
        Step::Exec(node_check(t, &rel.image)),
    );
    plan.push_check(
        format!(
            "health gate: {} must answer through every ready node's proxy",
            rel.version
        ),
        gate(t, s, &rel.version),
    );
    crate::push_post_hooks(&mut plan, t, rel);
    plan
}

/// Roll back to a recorded release. When it is exactly the spec Swarm kept as the previous one,
/// use Swarm's own `docker service rollback`; otherwise apply that release's stack file again,
/// which Swarm rolls out start-first like any update.
pub fn plan_rollback(t: &Target, s: &Swarm, to: &NewRelease, obs: &Observed) -> Plan {
    let mut plan = Plan::new(format!(
        "swarm rollback of {} to {}",
        t.environment, to.version
    ));
    let native = obs
        .seen
        .swarm()
        .and_then(|s| s.service.as_ref())
        .is_some_and(|s| s.previous_release == to.id);
    if native {
        plan.push(
            format!(
                "docker service rollback: Swarm returns to its previous spec ({})",
                to.version
            ),
            Step::Exec(
                Cmd::new("docker")
                    .args(["service", "rollback", "--detach=true", "--quiet"])
                    .arg(service_name(t))
                    .timeout(Duration::from_secs(60).min(update_timeout(s))),
            ),
        );
        plan.push(
            "wait for Swarm to settle the service",
            Step::Exec(settle(t, s, NodeDown::Report)),
        );
        plan.push(
            "check Swarm completed the rollback",
            Step::Exec(status_check(t, "rollback_completed")),
        );
    } else {
        plan.push(
            format!("docker stack deploy with {}'s stack file", to.version),
            Step::Exec(stack_deploy(t, s, &to.id)),
        );
        plan.push(
            "wait for Swarm to settle the service",
            Step::Exec(settle(t, s, NodeDown::Report)),
        );
        plan.push(
            "check Swarm completed the update",
            Step::Exec(status_check(t, "completed")),
        );
    }
    plan.push(
        "check every node is ready and runs only this release",
        Step::Exec(node_check(t, &to.image)),
    );
    plan.push(
        format!(
            "health gate: {} must answer through every ready node's proxy",
            to.version
        ),
        gate(t, s, &to.version),
    );
    plan
}

#[cfg(test)]
mod tests;
