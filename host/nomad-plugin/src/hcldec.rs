//! A small `hcldec` work-alike: applies a [`Spec`] to a configuration body and
//! yields the cty-shaped msgpack value Nomad would send.
//!
//! Nomad turns agent and job configuration into a plain JSON-like value, parses that with
//! HCL's *JSON syntax* and decodes it with `hcldec` against the plugin's schema (protocol
//! reference §8.1). A driver can repeat that pipeline offline (to validate configuration files
//! without an agent): its file front end builds a [`Node`] tree the way Nomad builds its JSON,
//! this module applies the spec, and the result, encoded to msgpack, can be decoded by the
//! very same code that handles `SetConfig` and `StartTask`. The rules implemented are the
//! JSON-syntax ones:
//!
//! * unknown keys are errors ("Invalid label"), at every body level;
//! * a `Block` accepts one object or a list of one object; a `BlockList` an object or a list;
//!   an absent `BlockList` is an empty list, an absent attribute or block is `nil`;
//! * attribute values are converted to the attribute type as go-cty converts (numbers and
//!   bools to strings, numeric strings to numbers, an object is **not** a list of maps);
//! * a `Default` uses its literal, unconverted, when the primary is `nil`.
//!
//! Values that cannot be known offline (variables, `${…}` interpolation resolved by the Nomad
//! client) are carried as [`Input::Unknown`] and reported as warnings instead of errors.

use std::collections::BTreeMap;

use rmpv::Value;

use crate::cty::Path;
use crate::cty_type::CtyType;
use crate::hclspec::Spec;

/// A configuration value before the schema is applied, with the source line when known.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The value.
    pub value: Input,
    /// 1-based source line, when the input format provides one.
    pub line: Option<usize>,
}

/// The JSON-like value kinds Nomad's pipeline produces.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// `null`
    Null,
    /// A bool.
    Bool(bool),
    /// A number, as decimal text.
    Number(String),
    /// A string.
    String(String),
    /// A list (JSON array, HCL tuple, or repeated blocks).
    List(Vec<Node>),
    /// An object with its keys in source order.
    Object(Vec<(String, Node)>),
    /// An expression only Nomad can evaluate (variables, interpolation); its source text.
    Unknown(String),
}

impl Node {
    /// A node without line information.
    pub fn new(value: Input) -> Node {
        Node { value, line: None }
    }

    fn kind(&self) -> &'static str {
        match self.value {
            Input::Null => "null",
            Input::Bool(_) => "bool",
            Input::Number(_) => "number",
            Input::String(_) => "string",
            Input::List(_) => "list",
            Input::Object(_) => "object",
            Input::Unknown(_) => "unknown value",
        }
    }
}

/// Severity of a [`Diagnostic`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The configuration would be rejected.
    Error,
    /// Accepted, but worth a look (unknown values, ignored keys).
    Warning,
}

/// One problem found while applying the schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Where in the configuration.
    pub path: Path,
    /// 1-based source line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
    /// The value is only known when Nomad evaluates the job (a variable, a template with
    /// `${…}`): checks that depend on it cannot be made offline.
    pub unknown: bool,
}

/// Apply `spec` to `body` (an object node). Returns the cty-shaped value and every problem.
pub fn apply(spec: &Spec, body: &Node) -> (Value, Vec<Diagnostic>) {
    let mut applier = Applier { diags: Vec::new() };
    let entries = match &body.value {
        Input::Object(entries) => entries.as_slice(),
        Input::Null => &[],
        _ => {
            applier.error(
                &Path::root(),
                body.line,
                format!("expected a configuration body, found {}", body.kind()),
            );
            &[]
        }
    };
    let value = applier.body(spec, entries, body.line, &Path::root());
    (value, applier.diags)
}

/// Evaluate an hclspec `Literal` expression (no variables), as Nomad does for defaults.
pub fn eval_literal(expr: &str) -> Result<Value, String> {
    let parsed = hcl::edit::parser::parse_expr(expr).map_err(|e| e.to_string())?;
    let expr: hcl::Expression = parsed.into();
    let ctx = hcl::eval::Context::new();
    let value = hcl::eval::Evaluate::evaluate(&expr, &ctx).map_err(|e| e.to_string())?;
    Ok(hcl_value_to_msgpack(&value))
}

struct Applier {
    diags: Vec<Diagnostic>,
}

/// A block body (its entries) and the line it starts on.
type BlockBody<'a> = (&'a [(String, Node)], Option<usize>);

/// Names a spec reads from the body it is applied to (not from nested block bodies).
fn body_names<'s>(spec: &'s Spec, implied: Option<&'s str>, out: &mut Vec<&'s str>) {
    let name_or = |name: &'s str| if name.is_empty() { implied } else { Some(name) };
    match spec {
        Spec::Object(map) => map.iter().for_each(|(k, s)| body_names(s, Some(k), out)),
        Spec::Array(items) => items.iter().for_each(|s| body_names(s, None, out)),
        Spec::Attr { name, .. }
        | Spec::Block { name, .. }
        | Spec::BlockAttrs { name, .. }
        | Spec::BlockList { name, .. }
        | Spec::BlockSet { name, .. }
        | Spec::BlockMap { name, .. } => out.extend(name_or(name)),
        Spec::Default { primary, default } => {
            body_names(primary, implied, out);
            body_names(default, implied, out);
        }
        Spec::Literal(_) => {}
    }
}

fn lookup<'a>(entries: &'a [(String, Node)], name: &str) -> Option<&'a Node> {
    entries
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, n)| n)
}

impl Applier {
    fn push(&mut self, severity: Severity, path: &Path, line: Option<usize>, message: String) {
        self.diags.push(Diagnostic {
            severity,
            path: path.clone(),
            line,
            message,
            unknown: false,
        });
    }

    /// A warning that the value at `path` is only known when Nomad evaluates the job.
    fn unknown(&mut self, path: &Path, line: Option<usize>, source: &str) {
        // A heredoc's first line says enough.
        let mut shown: String = source
            .lines()
            .next()
            .unwrap_or_default()
            .chars()
            .take(60)
            .collect();
        if shown.len() < source.len() {
            shown.push('…');
        }
        let source = shown;
        self.diags.push(Diagnostic {
            severity: Severity::Warning,
            path: path.clone(),
            line,
            message: format!(
                "value `{source}` is only known when Nomad evaluates the job; not checked"
            ),
            unknown: true,
        });
    }

    fn error(&mut self, path: &Path, line: Option<usize>, message: String) {
        self.push(Severity::Error, path, line, message);
    }

    /// Apply `spec` to a body, first rejecting keys the spec does not read.
    fn body(
        &mut self,
        spec: &Spec,
        entries: &[(String, Node)],
        line: Option<usize>,
        path: &Path,
    ) -> Value {
        let mut names = Vec::new();
        body_names(spec, None, &mut names);
        for (key, node) in entries {
            if !names.contains(&key.as_str()) {
                self.error(
                    &path.key(key),
                    node.line.or(line),
                    format!("Invalid label: no argument or block type is named {key:?}"),
                );
            }
        }
        self.spec(spec, None, entries, line, path)
    }

    fn spec(
        &mut self,
        spec: &Spec,
        implied: Option<&str>,
        entries: &[(String, Node)],
        line: Option<usize>,
        path: &Path,
    ) -> Value {
        let resolve = |name: &str| -> String {
            if name.is_empty() {
                implied.unwrap_or_default().to_owned()
            } else {
                name.to_owned()
            }
        };
        match spec {
            Spec::Object(map) => Value::Map(
                map.iter()
                    .map(|(k, s)| {
                        (
                            Value::from(k.as_str()),
                            self.spec(s, Some(k), entries, line, path),
                        )
                    })
                    .collect(),
            ),
            Spec::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|s| self.spec(s, None, entries, line, path))
                    .collect(),
            ),
            Spec::Attr {
                name,
                r#type,
                required,
            } => {
                let name = resolve(name);
                let ty = match r#type.parse::<CtyType>() {
                    Ok(ty) => ty,
                    Err(e) => {
                        self.error(&path.key(&name), line, format!("schema error: {e}"));
                        return Value::Nil;
                    }
                };
                match lookup(entries, &name) {
                    Some(node) => self.convert(node, &ty, &path.key(&name)),
                    None => {
                        if *required {
                            self.error(
                                &path.key(&name),
                                line,
                                format!("Missing required argument: the argument {name:?} is required, but no definition was found"),
                            );
                        }
                        Value::Nil
                    }
                }
            }
            Spec::Block {
                name,
                required,
                nested,
            } => {
                let name = resolve(name);
                let block_path = path.key(&name);
                match self.single_block(entries, &name, &block_path) {
                    Some((body, body_line)) => self.body(nested, body, body_line, &block_path),
                    None => {
                        if *required {
                            self.error(
                                &block_path,
                                line,
                                format!(
                                    "Missing {name} block: a block of type {name:?} is required"
                                ),
                            );
                        }
                        Value::Nil
                    }
                }
            }
            Spec::BlockAttrs {
                name,
                element_type,
                required,
            } => {
                let name = resolve(name);
                let block_path = path.key(&name);
                let ty = match element_type.parse::<CtyType>() {
                    Ok(ty) => ty,
                    Err(e) => {
                        self.error(&block_path, line, format!("schema error: {e}"));
                        return Value::Nil;
                    }
                };
                match self.single_block(entries, &name, &block_path) {
                    Some((body, _)) => Value::Map(self.map_entries(body, &ty, &block_path)),
                    None => {
                        if *required {
                            self.error(
                                &block_path,
                                line,
                                format!(
                                    "Missing {name} block: a block of type {name:?} is required"
                                ),
                            );
                        }
                        Value::Nil
                    }
                }
            }
            Spec::BlockList {
                name,
                min_items,
                max_items,
                nested,
            }
            | Spec::BlockSet {
                name,
                min_items,
                max_items,
                nested,
            } => {
                let name = resolve(name);
                let list_path = path.key(&name);
                let blocks = self.block_bodies(entries, &name, &list_path);
                let count = blocks.len() as u64;
                if count < *min_items {
                    self.error(
                        &list_path,
                        line,
                        format!("Insufficient {name} blocks: at least {min_items} required"),
                    );
                }
                if *max_items > 0 && count > *max_items {
                    self.error(
                        &list_path,
                        line,
                        format!("Too many {name} blocks: no more than {max_items} allowed"),
                    );
                }
                Value::Array(
                    blocks
                        .into_iter()
                        .enumerate()
                        .map(|(i, (body, l))| self.body(nested, body, l, &list_path.index(i)))
                        .collect(),
                )
            }
            Spec::BlockMap {
                name,
                labels,
                nested,
            } => {
                let name = resolve(name);
                let map_path = path.key(&name);
                match lookup(entries, &name) {
                    None => Value::Map(Vec::new()),
                    Some(node) => self.block_map(node, labels.len(), nested, &map_path),
                }
            }
            Spec::Default { primary, default } => {
                let value = self.spec(primary, implied, entries, line, path);
                if value.is_nil() {
                    self.spec(default, implied, entries, line, path)
                } else {
                    value
                }
            }
            Spec::Literal(expr) => eval_literal(expr).unwrap_or_else(|e| {
                self.error(
                    path,
                    line,
                    format!("schema error: default {expr:?} is not a valid HCL expression: {e}"),
                );
                Value::Nil
            }),
        }
    }

    fn block_map(&mut self, node: &Node, labels: usize, nested: &Spec, path: &Path) -> Value {
        let Input::Object(entries) = &node.value else {
            self.error(
                path,
                node.line,
                format!(
                    "expected an object keyed by block label, found {}",
                    node.kind()
                ),
            );
            return Value::Map(Vec::new());
        };
        let mut out = BTreeMap::new();
        for (label, child) in entries {
            let child_path = path.key(label);
            let value = if labels > 1 {
                self.block_map(child, labels - 1, nested, &child_path)
            } else {
                let wrapper = [(label.clone(), child.clone())];
                match self.single_block(&wrapper, label, &child_path) {
                    Some((body, l)) => self.body(nested, body, l, &child_path),
                    None => Value::Nil,
                }
            };
            out.insert(label.clone(), value);
        }
        Value::Map(out.into_iter().map(|(k, v)| (Value::from(k), v)).collect())
    }

    /// The bodies of the blocks named `name`: an object is one block, a list holds several.
    fn block_bodies<'a>(
        &mut self,
        entries: &'a [(String, Node)],
        name: &str,
        path: &Path,
    ) -> Vec<BlockBody<'a>> {
        let Some(node) = lookup(entries, name) else {
            return Vec::new();
        };
        match &node.value {
            Input::Null => Vec::new(),
            Input::Object(body) => vec![(body.as_slice(), node.line)],
            Input::List(items) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match &item.value {
                        Input::Object(body) => out.push((body.as_slice(), item.line.or(node.line))),
                        _ => self.error(
                            &path.index(i),
                            item.line.or(node.line),
                            format!(
                                "Incorrect {name} block: expected an object, found {}",
                                item.kind()
                            ),
                        ),
                    }
                }
                out
            }
            _ => {
                self.error(
                    path,
                    node.line,
                    format!(
                        "Incorrect {name} block: expected an object, found {}",
                        node.kind()
                    ),
                );
                Vec::new()
            }
        }
    }

    fn single_block<'a>(
        &mut self,
        entries: &'a [(String, Node)],
        name: &str,
        path: &Path,
    ) -> Option<BlockBody<'a>> {
        let mut blocks = self.block_bodies(entries, name, path);
        if blocks.len() > 1 {
            let line = blocks[1].1;
            self.error(
                path,
                line,
                format!("Duplicate {name} block: only one {name:?} block is allowed"),
            );
        }
        if blocks.is_empty() {
            None
        } else {
            Some(blocks.swap_remove(0))
        }
    }

    fn map_entries(
        &mut self,
        entries: &[(String, Node)],
        ty: &CtyType,
        path: &Path,
    ) -> Vec<(Value, Value)> {
        let mut out = BTreeMap::new();
        for (k, v) in entries {
            let value = self.convert(v, ty, &path.key(k));
            out.insert(k.clone(), value);
        }
        out.into_iter().map(|(k, v)| (Value::from(k), v)).collect()
    }
}

mod convert;
#[cfg(test)]
mod tests;

pub use convert::{hcl_value_to_msgpack, hcl_value_to_node, number_to_msgpack};
