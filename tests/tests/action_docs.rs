//! docs/actions.md is generated from actions/*/action.yml, the one source of truth for inputs and
//! outputs. This test fails when the two drift; `DAVIT_UPDATE_DOCS=1` rewrites the file.

use davit_tests::repo_root;
use std::collections::BTreeMap;

#[derive(serde::Deserialize)]
struct Action {
    name: String,
    description: String,
    #[serde(default)]
    inputs: indexmap::IndexMap<String, Input>,
    #[serde(default)]
    outputs: indexmap::IndexMap<String, Output>,
}

#[derive(serde::Deserialize)]
struct Input {
    description: String,
    #[serde(default)]
    default: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    required: bool,
}

#[derive(serde::Deserialize)]
struct Output {
    description: String,
}

fn cell(s: &str) -> String {
    s.trim().replace('|', "\\|").replace('\n', " ")
}

fn render() -> String {
    let root = repo_root();
    let mut actions = BTreeMap::new();
    for entry in std::fs::read_dir(root.join("actions")).unwrap() {
        let dir = entry.unwrap().path();
        let file = dir.join("action.yml");
        if !file.exists() {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let action: Action =
            serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        // The header comment above `name:` documents the action (permissions and all).
        let header: Vec<String> = text
            .lines()
            .take_while(|l| l.starts_with('#'))
            .map(|l| l.trim_start_matches('#').trim().to_string())
            .collect();
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        actions.insert(name, (action, header.join("\n").trim().to_string()));
    }
    // Pipeline order first, setup last.
    let order = [
        "gate",
        "image",
        "deploy-staging",
        "deploy-production",
        "verify",
        "setup",
    ];
    let mut names: Vec<&String> = actions.keys().collect();
    names.sort_by_key(|n| order.iter().position(|o| o == n).unwrap_or(order.len()));
    let mut md = String::from(
        "# Action reference\n\n<!-- Generated from actions/*/action.yml. Do not edit: run\n     DAVIT_UPDATE_DOCS=1 cargo test -p davit-tests --test action_docs -->\n\n",
    );
    md.push_str(
        "Every input reaches the binary as an environment variable, never inside a script.\n",
    );
    for name in names {
        let (a, header) = &actions[name];
        md.push_str(&format!(
            "\n## {name}\n\n`uses: davit-dev/davit/actions/{name}@v1` — {}\n\n",
            a.description.trim()
        ));
        if !header.is_empty() {
            for para in header.split("\n\n") {
                md.push_str(&para.replace('\n', " "));
                md.push_str("\n\n");
            }
        }
        if !a.inputs.is_empty() {
            md.push_str("| input | required | default | description |\n|---|---|---|---|\n");
            for (k, i) in &a.inputs {
                let default = match &i.default {
                    Some(serde_yaml_ng::Value::String(s)) if s.is_empty() => String::new(),
                    Some(serde_yaml_ng::Value::String(s)) => format!("`{s}`"),
                    Some(v) => format!("`{}`", serde_yaml_ng::to_string(v).unwrap().trim()),
                    None => String::new(),
                };
                md.push_str(&format!(
                    "| `{k}` | {} | {} | {} |\n",
                    if i.required { "yes" } else { "" },
                    cell(&default),
                    cell(&i.description)
                ));
            }
            md.push('\n');
        }
        if !a.outputs.is_empty() {
            md.push_str("| output | description |\n|---|---|\n");
            for (k, o) in &a.outputs {
                md.push_str(&format!("| `{k}` | {} |\n", cell(&o.description)));
            }
        }
        let _ = &a.name;
    }
    md
}

#[test]
fn action_reference_matches_the_action_files() {
    let path = repo_root().join("docs/actions.md");
    let fresh = render();
    if std::env::var("DAVIT_UPDATE_DOCS").as_deref() == Ok("1") {
        std::fs::write(&path, &fresh).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "docs/actions.md is out of date with actions/*/action.yml; run DAVIT_UPDATE_DOCS=1 cargo test -p davit-tests --test action_docs"
    );
}

/// T05/T01: no action interpolates an expression into a script; inputs go through env.
#[test]
fn t01_no_action_interpolates_into_run_scripts() {
    for entry in std::fs::read_dir(repo_root().join("actions")).unwrap() {
        let file = entry.unwrap().path().join("action.yml");
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
        let steps = doc["runs"]["steps"]
            .as_sequence()
            .cloned()
            .unwrap_or_default();
        for step in steps {
            if let Some(run) = step["run"].as_str() {
                assert!(
                    !run.contains("${{"),
                    "{}: a run script interpolates an expression: {run}",
                    file.display()
                );
            }
        }
    }
}
