//! JSON agent configs and API-form jobs.

use serde_json::Value as Json;

use super::{DRIVER_NAMES, FileError, ParsedFile, PluginStanza, TaskStanza};
use nomad_plugin::hcldec::{Input, Node};

/// A JSON value as an input node (JSON carries no per-value line numbers).
pub fn json_to_node(value: &Json) -> Node {
    let value = match value {
        Json::Null => Input::Null,
        Json::Bool(b) => Input::Bool(*b),
        Json::Number(n) => Input::Number(n.to_string()),
        Json::String(s) => Input::String(s.clone()),
        Json::Array(items) => Input::List(items.iter().map(json_to_node).collect()),
        Json::Object(map) => Input::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), json_to_node(v)))
                .collect(),
        ),
    };
    Node::new(value)
}

/// HCL1 JSON wraps each level in a list; look through one-element lists.
fn unwrap(value: &Json) -> &Json {
    match value {
        Json::Array(items) if items.len() == 1 => unwrap(&items[0]),
        other => other,
    }
}

fn str_field<'a>(obj: &'a Json, key: &str) -> &'a str {
    obj.get(key).and_then(Json::as_str).unwrap_or_default()
}

pub(super) fn parse_json(text: &str) -> Result<ParsedFile, FileError> {
    let root: Json = serde_json::from_str(text).map_err(|e| FileError::Json {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    let mut out = ParsedFile::default();
    let job = root
        .get("Job")
        .filter(|j| j.is_object())
        .or_else(|| root.get("TaskGroups").map(|_| &root));
    if let Some(job) = job {
        let job_name = job
            .get("ID")
            .or_else(|| job.get("Name"))
            .and_then(Json::as_str)
            .unwrap_or_default();
        let groups = job
            .get("TaskGroups")
            .and_then(Json::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for (gi, group) in groups.iter().enumerate() {
            let tasks = group
                .get("Tasks")
                .and_then(Json::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            for (ti, task) in tasks.iter().enumerate() {
                let name = format!(
                    "{job_name}/{}/{}",
                    str_field(group, "Name"),
                    str_field(task, "Name")
                );
                let driver = str_field(task, "Driver").to_owned();
                if !DRIVER_NAMES.contains(&driver.as_str()) {
                    out.skipped
                        .push(format!("task {name:?} (driver {driver:?})"));
                    continue;
                }
                out.tasks.push(TaskStanza {
                    name,
                    driver,
                    location: format!("TaskGroups[{gi}].Tasks[{ti}]"),
                    config: task
                        .get("Config")
                        .map_or(Node::new(Input::Null), json_to_node),
                });
            }
        }
        return Ok(out);
    }
    if let Some(plugins) = root.get("plugin") {
        let entries: Vec<&Json> = match plugins {
            Json::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for entry in entries {
            let Some(map) = entry.as_object() else {
                out.problems.push((
                    None,
                    "plugin: expected an object keyed by plugin name".to_owned(),
                ));
                continue;
            };
            for (name, body) in map {
                if !DRIVER_NAMES.contains(&name.as_str()) {
                    out.skipped
                        .push(format!("plugin {name:?} (not a docker-compatible driver)"));
                    continue;
                }
                let config = unwrap(body).get("config").map(unwrap);
                out.plugins.push(PluginStanza {
                    name: name.clone(),
                    location: format!("plugin.{name}"),
                    config: config.map_or(Node::new(Input::Null), json_to_node),
                });
            }
        }
        return Ok(out);
    }
    Err(FileError::Unrecognized(
        "JSON is neither a Nomad agent config (\"plugin\") nor a job (\"Job\" / \"TaskGroups\")"
            .to_owned(),
    ))
}
