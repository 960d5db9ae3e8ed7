//! Reading Nomad agent configs and jobspecs from disk, the way Nomad shapes them.
//!
//! Two front ends produce [`Node`] trees for the schema applier ([`nomad_plugin::hcldec`]):
//!
//! * **HCL** (parsed with hcl-rs's span-keeping `hcl-edit` parser, so problems carry line
//!   numbers). Inside a `config` body every nested block becomes a list of objects (repeated
//!   blocks of one name form one list) and, for jobspecs, an attribute whose value is an object
//!   literal is wrapped into a one-element list — Nomad's `jobspec2/hclutil/blockattrs.go`.
//!   Agent files are HCL1 in Nomad, where *every* object value becomes a list of maps; the
//!   [`Dialect::Hcl1`] rule reproduces that.
//! * **JSON**: the API job form (`{"Job": {"TaskGroups": [{"Tasks": [{"Driver", "Config"}]}]}}`)
//!   whose `Config` reaches the driver verbatim, and JSON agent configs (`{"plugin": …}`, with
//!   or without HCL1's list wrapping).
//!
//! Expressions only Nomad can evaluate (variables, locals, functions over them, templates and
//! heredocs with `${…}`) become [`Input::Unknown`], carrying their source text.

use std::ops::Range;

use hcl::edit::Span;
use hcl::edit::expr::{Expression, ObjectKey};
use hcl::edit::structure::{Body, Structure};

use nomad_plugin::hcldec::{Input, Node, hcl_value_to_node};

#[cfg(test)]
mod applied;
pub mod json;
#[cfg(test)]
mod tests;

/// Drivers whose task config dockhand validates.
pub const DRIVER_NAMES: [&str; 3] = ["docker", "dockhand", "nomad-driver-dockhand"];

/// How nested objects are shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Agent config (HCL1): every object value becomes a one-element list of maps.
    Hcl1,
    /// Jobspec (HCL2 `BlocksAsAttrs`): blocks and object-literal attributes become lists.
    Hcl2,
}

/// A `plugin "<name>" { config { … } }` stanza.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginStanza {
    /// The plugin label.
    pub name: String,
    /// Where the stanza starts (line, or a JSON path).
    pub location: String,
    /// The `config` body (an object; `Null` when absent).
    pub config: Node,
}

/// A task using a docker-compatible driver.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskStanza {
    /// `job/group/task`.
    pub name: String,
    /// The driver name.
    pub driver: String,
    /// Where the task starts (line, or a JSON path).
    pub location: String,
    /// The `config` body.
    pub config: Node,
}

/// What a file contained.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedFile {
    /// Plugin stanzas for docker-compatible drivers.
    pub plugins: Vec<PluginStanza>,
    /// Tasks using docker-compatible drivers.
    pub tasks: Vec<TaskStanza>,
    /// Structural problems (e.g. `config = {…}` in a task), as `(line, message)`.
    pub problems: Vec<(Option<usize>, String)>,
    /// Stanzas skipped because they belong to other drivers.
    pub skipped: Vec<String>,
}

/// A file that cannot be read as a Nomad config at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// HCL syntax error.
    #[error("line {line}, column {column}: HCL syntax error: {message}")]
    Hcl {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// Parser message.
        message: String,
    },
    /// JSON syntax error.
    #[error("line {line}, column {column}: JSON syntax error: {message}")]
    Json {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// Parser message.
        message: String,
    },
    /// Valid syntax, but neither an agent config nor a job.
    #[error("{0}")]
    Unrecognized(String),
}

/// Parse `text` (HCL or JSON, detected by the first non-blank character).
pub fn parse_file(text: &str) -> Result<ParsedFile, FileError> {
    if text.trim_start().starts_with('{') {
        json::parse_json(text)
    } else {
        parse_hcl(text)
    }
}

struct Source<'a> {
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> Source<'a> {
    fn new(text: &'a str) -> Source<'a> {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Source { text, line_starts }
    }

    fn line(&self, span: Option<Range<usize>>) -> Option<usize> {
        let start = span?.start;
        Some(self.line_starts.partition_point(|&s| s <= start))
    }

    fn slice(&self, span: Option<Range<usize>>) -> Option<&'a str> {
        span.and_then(|r| self.text.get(r))
    }
}

fn parse_hcl(text: &str) -> Result<ParsedFile, FileError> {
    let body = hcl::edit::parser::parse_body(text).map_err(|e| FileError::Hcl {
        line: e.location().line(),
        column: e.location().column(),
        message: e.message().to_owned(),
    })?;
    let src = Source::new(text);
    let mut out = ParsedFile::default();
    let mut recognized = false;
    for block in body.get_blocks("plugin") {
        recognized = true;
        let name = block
            .labels
            .first()
            .map(|l| l.as_str().to_owned())
            .unwrap_or_default();
        let line = src.line(block.span());
        if !DRIVER_NAMES.contains(&name.as_str()) {
            out.skipped
                .push(format!("plugin {name:?} (not a docker-compatible driver)"));
            continue;
        }
        let mut config = Node {
            value: Input::Null,
            line,
        };
        for s in block.body.iter() {
            match s {
                Structure::Block(b) if b.ident.as_str() == "config" => {
                    config = body_node(&src, &b.body, Dialect::Hcl1, src.line(b.span()));
                }
                Structure::Attribute(a) if a.key.as_str() == "config" => {
                    config = expr_node(&src, &a.value, Dialect::Hcl1, false);
                }
                _ => {}
            }
        }
        out.plugins.push(PluginStanza {
            name,
            location: line.map_or_else(String::new, |l| format!("line {l}")),
            config,
        });
    }
    for job in body.get_blocks("job") {
        recognized = true;
        let job_name = job.labels.first().map(|l| l.as_str()).unwrap_or_default();
        let mut visit = |group: &str, body: &Body| {
            for task in body.get_blocks("task") {
                let task_name = task.labels.first().map(|l| l.as_str()).unwrap_or_default();
                collect_task(
                    &src,
                    &mut out,
                    &format!("{job_name}/{group}/{task_name}"),
                    task,
                );
            }
        };
        visit("", &job.body);
        for group in job.body.get_blocks("group") {
            let group_name = group.labels.first().map(|l| l.as_str()).unwrap_or_default();
            visit(group_name, &group.body);
        }
    }
    if !recognized {
        return Err(FileError::Unrecognized(
            "no `plugin` stanza and no `job` block found; expected a Nomad agent config or a jobspec"
                .to_owned(),
        ));
    }
    Ok(out)
}

fn collect_task(
    src: &Source<'_>,
    out: &mut ParsedFile,
    name: &str,
    task: &hcl::edit::structure::Block,
) {
    let line = src.line(task.span());
    let driver = task
        .body
        .get_attribute("driver")
        .and_then(|a| match &a.value {
            Expression::String(s) => Some(s.value().clone()),
            _ => None,
        })
        .unwrap_or_default();
    if !DRIVER_NAMES.contains(&driver.as_str()) {
        out.skipped
            .push(format!("task {name:?} (driver {driver:?})"));
        return;
    }
    let mut config = Node {
        value: Input::Null,
        line,
    };
    let mut seen = 0;
    for s in task.body.iter() {
        match s {
            Structure::Block(b) if b.ident.as_str() == "config" => {
                seen += 1;
                if seen > 1 {
                    out.problems.push((src.line(b.span()), format!("task {name:?}: duplicate config block")));
                }
                config = body_node(src, &b.body, Dialect::Hcl2, src.line(b.span()));
            }
            Structure::Attribute(a) if a.key.as_str() == "config" => out.problems.push((
                src.line(a.span()),
                format!("task {name:?}: unsupported argument \"config\"; did you mean to define a block of type \"config\"?"),
            )),
            _ => {}
        }
    }
    out.tasks.push(TaskStanza {
        name: name.to_owned(),
        driver,
        location: line.map_or_else(String::new, |l| format!("line {l}")),
        config,
    });
}

/// A block body as an object node: attributes, then blocks grouped by type into lists.
fn body_node(src: &Source<'_>, body: &Body, dialect: Dialect, line: Option<usize>) -> Node {
    let mut entries: Vec<(String, Node)> = Vec::new();
    for s in body.iter() {
        match s {
            Structure::Attribute(a) => {
                let node = expr_node(src, &a.value, dialect, true);
                entries.push((
                    a.key.as_str().to_owned(),
                    Node {
                        line: src.line(a.span()),
                        ..node
                    },
                ));
            }
            Structure::Block(b) => {
                let mut node = body_node(src, &b.body, dialect, src.line(b.span()));
                // Labels nest as objects: `a "x" { … }` → a = [{ x = [{ … }] }].
                for label in b.labels.iter().rev() {
                    let l = node.line;
                    node = Node {
                        value: Input::Object(vec![(
                            label.as_str().to_owned(),
                            Node {
                                value: Input::List(vec![node]),
                                line: l,
                            },
                        )]),
                        line: l,
                    };
                }
                let key = b.ident.as_str();
                match entries
                    .iter_mut()
                    .find(|(k, n)| k == key && matches!(n.value, Input::List(_)))
                {
                    Some((
                        _,
                        Node {
                            value: Input::List(items),
                            ..
                        },
                    )) => items.push(node),
                    _ => {
                        let l = node.line;
                        entries.push((
                            key.to_owned(),
                            Node {
                                value: Input::List(vec![node]),
                                line: l,
                            },
                        ));
                    }
                }
            }
        }
    }
    Node {
        value: Input::Object(entries),
        line,
    }
}

/// An expression as a node. `attr_value`: the expression is directly an attribute's value
/// (where jobspec object literals get wrapped).
fn expr_node(src: &Source<'_>, expr: &Expression, dialect: Dialect, attr_value: bool) -> Node {
    let line = src.line(expr.span());
    let value = match expr {
        Expression::Null(_) => Input::Null,
        Expression::Bool(b) => Input::Bool(*b.value()),
        Expression::Number(n) => Input::Number(n.value().to_string()),
        Expression::String(s) => Input::String(s.value().clone()),
        Expression::Array(items) => Input::List(
            items
                .iter()
                .map(|e| expr_node(src, e, dialect, false))
                .collect(),
        ),
        Expression::Object(obj) => {
            let entries = obj
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        ObjectKey::Ident(i) => i.as_str().to_owned(),
                        ObjectKey::Expression(Expression::String(s)) => s.value().clone(),
                        ObjectKey::Expression(e) => src.slice(e.span()).unwrap_or("?").to_owned(),
                    };
                    (
                        key,
                        expr_node(src, v.expr(), dialect, dialect == Dialect::Hcl1),
                    )
                })
                .collect();
            let object = Node {
                value: Input::Object(entries),
                line,
            };
            if attr_value {
                return Node {
                    value: Input::List(vec![object]),
                    line,
                };
            }
            return object;
        }
        Expression::Parenthesis(p) => return expr_node(src, p.inner(), dialect, attr_value),
        other => {
            let converted: hcl::Expression = other.clone().into();
            match hcl::eval::Evaluate::evaluate(&converted, &hcl::eval::Context::new()) {
                Ok(v) => return hcl_value_to_node(&v, line),
                // Variables, locals, functions over them, templates and heredocs with
                // `${…}`: known only when Nomad evaluates the job.
                Err(_) => {
                    let text = src.slice(other.span()).unwrap_or("<expression>").trim();
                    let text = match other {
                        Expression::StringTemplate(_) => text.trim_matches('"'),
                        _ => text,
                    };
                    Input::Unknown(text.to_owned())
                }
            }
        }
    };
    Node { value, line }
}
