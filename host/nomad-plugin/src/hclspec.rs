//! Builders for Nomad's `hclspec.Spec`: the HCL schema a plugin hands to Nomad.
//!
//! Nomad decodes plugin and task configuration with `hcldec` using the spec the plugin
//! returns from `ConfigSchema` / `TaskConfigSchema`. This module is a plain-Rust mirror of
//! `hashicorp.nomad.plugins.shared.hclspec.Spec` so that drivers can declare their schema
//! without touching generated protobuf types; [`Spec::to_proto`] lowers it to the wire form.
//!
//! Literal defaults are HCL *expressions*: a string default must carry its own quotes
//! (`"\"5m\""`). [`Spec::default_str`] does the quoting so that an unquoted `3m` (a real
//! Nomad bug, hashicorp/nomad#6246) cannot be written by accident.

use std::collections::BTreeMap;

use crate::proto::hclspec as proto;

/// One node of an HCL decoding spec, mirroring `hclspec.Spec`'s `oneof block`.
#[derive(Debug, Clone, PartialEq)]
pub enum Spec {
    /// `Object`: keys are the msgpack output keys.
    Object(BTreeMap<String, Spec>),
    /// `Array`: a tuple of specs, decoded in order.
    Array(Vec<Spec>),
    /// `Attr`: an attribute with an HCL type expression (`string`, `list(map(string))`, …).
    Attr {
        name: String,
        r#type: String,
        required: bool,
    },
    /// `Block`: a single nested block.
    Block {
        name: String,
        required: bool,
        nested: Box<Spec>,
    },
    /// `BlockAttrs`: a block whose attributes become a map of `element_type`.
    BlockAttrs {
        name: String,
        element_type: String,
        required: bool,
    },
    /// `BlockList`: repeated blocks in order; `0` means unlimited.
    BlockList {
        name: String,
        min_items: u64,
        max_items: u64,
        nested: Box<Spec>,
    },
    /// `BlockSet`: repeated blocks, unordered.
    BlockSet {
        name: String,
        min_items: u64,
        max_items: u64,
        nested: Box<Spec>,
    },
    /// `BlockMap`: labelled blocks.
    BlockMap {
        name: String,
        labels: Vec<String>,
        nested: Box<Spec>,
    },
    /// `Default`: `primary`, or `default` when the primary yields null.
    Default {
        primary: Box<Spec>,
        default: Box<Spec>,
    },
    /// `Literal`: an HCL native-syntax expression evaluated with no variables.
    Literal(String),
}

impl Spec {
    /// An object spec from `(key, spec)` pairs.
    pub fn object<K: Into<String>>(fields: impl IntoIterator<Item = (K, Spec)>) -> Spec {
        Spec::Object(fields.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// An optional attribute.
    pub fn attr(name: &str, ty: &str) -> Spec {
        Spec::Attr {
            name: name.to_owned(),
            r#type: ty.to_owned(),
            required: false,
        }
    }

    /// A required attribute.
    pub fn required_attr(name: &str, ty: &str) -> Spec {
        Spec::Attr {
            name: name.to_owned(),
            r#type: ty.to_owned(),
            required: true,
        }
    }

    /// A single optional block.
    pub fn block(name: &str, nested: Spec) -> Spec {
        Spec::Block {
            name: name.to_owned(),
            required: false,
            nested: Box::new(nested),
        }
    }

    /// An unlimited list of blocks.
    pub fn block_list(name: &str, nested: Spec) -> Spec {
        Spec::BlockList {
            name: name.to_owned(),
            min_items: 0,
            max_items: 0,
            nested: Box::new(nested),
        }
    }

    /// A block whose attributes form a map of `element_type`.
    pub fn block_attrs(name: &str, element_type: &str) -> Spec {
        Spec::BlockAttrs {
            name: name.to_owned(),
            element_type: element_type.to_owned(),
            required: false,
        }
    }

    /// `primary` with a literal HCL expression as default (the expression is used verbatim).
    pub fn with_default(self, literal_expr: &str) -> Spec {
        Spec::Default {
            primary: Box::new(self),
            default: Box::new(Spec::Literal(literal_expr.to_owned())),
        }
    }

    /// `primary` with a string default, quoted and escaped as an HCL string literal.
    pub fn default_str(self, value: &str) -> Spec {
        let quoted = quote_hcl_string(value);
        self.with_default(&quoted)
    }

    /// Every `Literal` expression in this spec, depth first (for conformance tests).
    pub fn literals(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_literals(&mut out);
        out
    }

    fn collect_literals<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Spec::Object(map) => map.values().for_each(|s| s.collect_literals(out)),
            Spec::Array(items) => items.iter().for_each(|s| s.collect_literals(out)),
            Spec::Attr { .. } | Spec::BlockAttrs { .. } => {}
            Spec::Block { nested, .. }
            | Spec::BlockList { nested, .. }
            | Spec::BlockSet { nested, .. }
            | Spec::BlockMap { nested, .. } => nested.collect_literals(out),
            Spec::Default { primary, default } => {
                primary.collect_literals(out);
                default.collect_literals(out);
            }
            Spec::Literal(v) => out.push(v),
        }
    }
}

impl Spec {
    /// Lowers this spec to the wire form (`hashicorp.nomad.plugins.shared.hclspec.Spec`).
    pub fn to_proto(&self) -> proto::Spec {
        use proto::spec::Block as B;
        let nested = |s: &Spec| Some(Box::new(s.to_proto()));
        let block = match self {
            Spec::Object(fields) => B::Object(proto::Object {
                attributes: fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_proto()))
                    .collect(),
            }),
            Spec::Array(items) => B::Array(proto::Array {
                values: items.iter().map(Spec::to_proto).collect(),
            }),
            Spec::Attr {
                name,
                r#type,
                required,
            } => B::Attr(proto::Attr {
                name: name.clone(),
                r#type: r#type.clone(),
                required: *required,
            }),
            Spec::Block {
                name,
                required,
                nested: n,
            } => B::BlockValue(Box::new(proto::Block {
                name: name.clone(),
                required: *required,
                nested: nested(n),
            })),
            Spec::BlockAttrs {
                name,
                element_type,
                required,
            } => B::BlockAttrs(proto::BlockAttrs {
                name: name.clone(),
                r#type: element_type.clone(),
                required: *required,
            }),
            Spec::BlockList {
                name,
                min_items,
                max_items,
                nested: n,
            } => B::BlockList(Box::new(proto::BlockList {
                name: name.clone(),
                min_items: *min_items,
                max_items: *max_items,
                nested: nested(n),
            })),
            Spec::BlockSet {
                name,
                min_items,
                max_items,
                nested: n,
            } => B::BlockSet(Box::new(proto::BlockSet {
                name: name.clone(),
                min_items: *min_items,
                max_items: *max_items,
                nested: nested(n),
            })),
            Spec::BlockMap {
                name,
                labels,
                nested: n,
            } => B::BlockMap(Box::new(proto::BlockMap {
                name: name.clone(),
                labels: labels.clone(),
                nested: nested(n),
            })),
            Spec::Default { primary, default } => B::Default(Box::new(proto::Default {
                primary: nested(primary),
                default: nested(default),
            })),
            Spec::Literal(value) => B::Literal(proto::Literal {
                value: value.clone(),
            }),
        };
        proto::Spec { block: Some(block) }
    }
}

impl From<&Spec> for proto::Spec {
    fn from(spec: &Spec) -> Self {
        spec.to_proto()
    }
}

impl From<Spec> for proto::Spec {
    fn from(spec: Spec) -> Self {
        spec.to_proto()
    }
}

/// Quote `value` as an HCL string literal, escaping what HCL would otherwise interpret.
pub fn quote_hcl_string(value: &str) -> String {
    let mut s = String::with_capacity(value.len() + 2);
    s.push('"');
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                s.push(c);
                s.push(c);
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_defaults_are_quoted() {
        let spec = Spec::attr("image_delay", "string").default_str("3m");
        assert_eq!(spec.literals(), vec!["\"3m\""]);
    }

    #[test]
    fn lowering_keeps_structure() {
        use prost::Message as _;
        let spec = Spec::object([("command", Spec::required_attr("command", "string"))]);
        // Test vector 14 of the protocol notes.
        assert_eq!(
            spec.to_proto().encode_to_vec(),
            [
                0x0a, 0x22, 0x0a, 0x20, 0x0a, 0x07, b'c', b'o', b'm', b'm', b'a', b'n', b'd', 0x12,
                0x15, 0x1a, 0x13, 0x0a, 0x07, b'c', b'o', b'm', b'm', b'a', b'n', b'd', 0x12, 0x06,
                b's', b't', b'r', b'i', b'n', b'g', 0x18, 0x01
            ]
        );
    }

    #[test]
    fn quoting_escapes_interpolation_and_quotes() {
        assert_eq!(quote_hcl_string("a\"b${c}"), "\"a\\\"b$${c}\"");
    }
}
