//! go-cty value conversion: input nodes to a cty type, and evaluated HCL values to msgpack.

use std::collections::BTreeMap;

use rmpv::Value;

use super::{Applier, Input, Node, lookup};
use crate::cty::Path;
use crate::cty_type::CtyType;

/// An `hcl::Value` as msgpack, keeping its own type (as `DefaultSpec` does).
pub fn hcl_value_to_msgpack(value: &hcl::Value) -> Value {
    match value {
        hcl::Value::Null => Value::Nil,
        hcl::Value::Bool(b) => Value::Boolean(*b),
        hcl::Value::Number(n) => number_to_msgpack(&n.to_string()),
        hcl::Value::String(s) => Value::from(s.as_str()),
        hcl::Value::Array(items) => Value::Array(items.iter().map(hcl_value_to_msgpack).collect()),
        hcl::Value::Object(map) => {
            let sorted: BTreeMap<&str, Value> = map
                .iter()
                .map(|(k, v)| (k.as_str(), hcl_value_to_msgpack(v)))
                .collect();
            Value::Map(
                sorted
                    .into_iter()
                    .map(|(k, v)| (Value::from(k), v))
                    .collect(),
            )
        }
    }
}

/// An evaluated `hcl::Value` as an input node (all parts on `line`).
pub fn hcl_value_to_node(value: &hcl::Value, line: Option<usize>) -> Node {
    let value = match value {
        hcl::Value::Null => Input::Null,
        hcl::Value::Bool(b) => Input::Bool(*b),
        hcl::Value::Number(n) => Input::Number(n.to_string()),
        hcl::Value::String(s) => Input::String(s.clone()),
        hcl::Value::Array(items) => {
            Input::List(items.iter().map(|v| hcl_value_to_node(v, line)).collect())
        }
        hcl::Value::Object(map) => Input::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), hcl_value_to_node(v, line)))
                .collect(),
        ),
    };
    Node { value, line }
}

/// Encode decimal text as go-cty would: an integer that fits 64 bits as an integer, anything
/// else as its decimal text (go-cty uses float64 only for exactly representable fractions; the
/// text form decodes identically).
pub fn number_to_msgpack(text: &str) -> Value {
    if let Ok(i) = text.parse::<i64>() {
        return Value::from(i);
    }
    if let Ok(u) = text.parse::<u64>() {
        return Value::from(u);
    }
    match text.parse::<f64>() {
        Ok(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.2e18 => Value::from(f as i64),
        Ok(f) if f.is_finite() => Value::from(format!("{f}")),
        _ => Value::from(text),
    }
}

impl Applier {
    fn type_error(&mut self, node: &Node, ty: &CtyType, path: &Path) -> Value {
        self.error(
            path,
            node.line,
            format!(
                "Incorrect attribute value type: {ty} required, found {}",
                node.kind()
            ),
        );
        Value::Nil
    }

    /// Convert `node` to `ty` following go-cty's conversion rules.
    pub(super) fn convert(&mut self, node: &Node, ty: &CtyType, path: &Path) -> Value {
        match (&node.value, ty) {
            (Input::Unknown(src), ty) => {
                self.unknown(path, node.line, src);
                // A string stands in for an unknown string, so that a list or map holding
                // it still decodes; checks of it are dropped by the caller.
                if *ty == CtyType::String {
                    Value::from(src.as_str())
                } else {
                    Value::Nil
                }
            }
            (Input::Null, _) => Value::Nil,
            (_, CtyType::Any) => self.dynamic(node),
            (Input::String(s), CtyType::String) => Value::from(s.as_str()),
            (Input::Number(n), CtyType::String) => Value::from(n.as_str()),
            (Input::Bool(b), CtyType::String) => Value::from(if *b { "true" } else { "false" }),
            (Input::Number(n), CtyType::Number) => number_to_msgpack(n),
            (Input::String(s), CtyType::Number) => {
                if s.trim().parse::<f64>().is_ok_and(f64::is_finite) {
                    number_to_msgpack(s.trim())
                } else {
                    self.error(
                        path,
                        node.line,
                        format!(
                            "Incorrect attribute value type: a number is required, found {s:?}"
                        ),
                    );
                    Value::Nil
                }
            }
            (Input::Bool(b), CtyType::Bool) => Value::Boolean(*b),
            (Input::String(s), CtyType::Bool) if s == "true" || s == "false" => {
                Value::Boolean(s == "true")
            }
            (Input::List(items), CtyType::List(elem) | CtyType::Set(elem)) => {
                let mut out: Vec<Value> = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let v = self.convert(item, elem, &path.index(i));
                    if matches!(ty, CtyType::Set(_)) && out.contains(&v) {
                        continue;
                    }
                    out.push(v);
                }
                Value::Array(out)
            }
            (Input::Object(entries), CtyType::Map(elem)) => {
                Value::Map(self.map_entries(entries, elem, path))
            }
            (Input::List(items), CtyType::Tuple(types)) if items.len() == types.len() => {
                Value::Array(
                    items
                        .iter()
                        .zip(types)
                        .enumerate()
                        .map(|(i, (item, t))| self.convert(item, t, &path.index(i)))
                        .collect(),
                )
            }
            (Input::Object(entries), CtyType::Object(attrs)) => {
                for (k, v) in entries {
                    if !attrs.contains_key(k) {
                        self.error(
                            &path.key(k),
                            v.line.or(node.line),
                            format!("Unsupported attribute {k:?}"),
                        );
                    }
                }
                Value::Map(
                    attrs
                        .iter()
                        .map(|(k, t)| {
                            let v = lookup(entries, k)
                                .map_or(Value::Nil, |n| self.convert(n, t, &path.key(k)));
                            (Value::from(k.as_str()), v)
                        })
                        .collect(),
                )
            }
            _ => self.type_error(node, ty, path),
        }
    }

    fn dynamic(&mut self, node: &Node) -> Value {
        match &node.value {
            Input::Null | Input::Unknown(_) => Value::Nil,
            Input::Bool(b) => Value::Boolean(*b),
            Input::Number(n) => number_to_msgpack(n),
            Input::String(s) => Value::from(s.as_str()),
            Input::List(items) => Value::Array(items.iter().map(|n| self.dynamic(n)).collect()),
            Input::Object(entries) => {
                let sorted: BTreeMap<&str, &Node> =
                    entries.iter().map(|(k, v)| (k.as_str(), v)).collect();
                Value::Map(
                    sorted
                        .into_iter()
                        .map(|(k, v)| (Value::from(k), self.dynamic(v)))
                        .collect(),
                )
            }
        }
    }
}
