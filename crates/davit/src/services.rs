//! `davit services up|status|logs`: the services beside the app (see davit_deploy::services).

use crate::cli::{Global, ServicesAction, ServicesArgs};
use davit_config::{Config, Resolve};
use davit_core::{Exit, Failure, Plan};
use davit_deploy::{Target, processes, services};
use davit_exec::Timeline;

pub async fn run(global: &Global, a: ServicesArgs) -> Result<Exit, Failure> {
    let environment = match &a.action {
        ServicesAction::Up { environment, .. }
        | ServicesAction::Status { environment }
        | ServicesAction::Logs { environment, .. } => environment.clone(),
    };
    let bad = |e: davit_config::ConfigError| Failure::new(Exit::BadInput, e.to_string());
    let cfg = Config::load(&global.config).map_err(bad)?;
    let lookup = |k: &str| std::env::var(k).ok();
    let set = cfg
        .app_set(&Resolve {
            env_name: &environment,
            lookup: &lookup,
        })
        .map_err(bad)?;
    let t = Target::resolve(&cfg, &environment, &lookup)?;
    if set.services.is_empty() {
        println!(
            "{} has no services: add [services.<name>] to davit.toml or name your compose file with compose_file",
            t.environment
        );
        return Ok(Exit::Ok);
    }
    let exec = davit_deploy::target::connect(&t).await?;
    let seen = services::observe(&*exec, &t.app, &t.environment)
        .await
        .map_err(Failure::infra)?;
    match a.action {
        ServicesAction::Status { .. } => {
            for l in services::status_lines(&set, &t.app, &t.environment, &seen) {
                println!("{l}");
            }
        }
        ServicesAction::Logs { service, tail, .. } => {
            if !set.services.iter().any(|s| s.name == service) {
                return Err(Failure::bad_input(
                    format!("{service:?} is not a service of {}", t.environment),
                    format!(
                        "one of: {}",
                        set.services
                            .iter()
                            .map(|s| s.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            let o = exec
                .run(&services::logs_cmd(&t.app, &t.environment, &service, tail))
                .await
                .map_err(|e| Failure::infra(e.to_string()))?;
            print!("{}", o.stdout);
            eprint!("{}", o.stderr);
        }
        ServicesAction::Up { dry_run, .. } => {
            let network = processes::observe(&*exec, &t.app, &t.environment, &set.network)
                .await
                .map_err(Failure::infra)?
                .network_exists;
            let mut plan = Plan::new(format!("services up in {}", t.environment));
            services::plan_up(
                &mut plan,
                &set,
                services::Place {
                    app: &t.app,
                    environment: &t.environment,
                    state_dir: &t.state_dir,
                },
                &seen,
                network,
                &lookup,
            )
            .map_err(|e| {
                let (msg, hint) = e
                    .split_once("\nhint: ")
                    .unwrap_or((&e, "see the services section of README.md"));
                Failure::bad_input(msg.to_string(), hint.to_string())
            })?;
            if dry_run {
                print!("{}", plan.render());
                return Ok(Exit::Ok);
            }
            let timeline = Timeline::default();
            davit_exec::run_plan(&*exec, &plan, &timeline)
                .await
                .map_err(|e| Failure::infra(e.to_string()))?;
            let seen = services::observe(&*exec, &t.app, &t.environment)
                .await
                .map_err(Failure::infra)?;
            for l in services::status_lines(&set, &t.app, &t.environment, &seen) {
                println!("{l}");
            }
        }
    }
    Ok(Exit::Ok)
}
