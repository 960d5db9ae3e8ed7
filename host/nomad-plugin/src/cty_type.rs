//! cty type expressions as written in `hclspec` `Attr.type` (`string`, `list(map(number))`, …).
//!
//! Nomad evaluates the `type` string of an attribute spec as an HCL *type expression*. The
//! same grammar is parsed here so that the schema applier ([`crate::hcldec`]) converts values
//! exactly as `hcldec` would, and so that a driver's tests can check every default literal
//! against the type of the attribute it defaults.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Deepest type nesting accepted; real types nest two or three levels.
const MAX_TYPE_DEPTH: usize = 16;

/// A cty type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CtyType {
    /// `string`
    String,
    /// `number`
    Number,
    /// `bool`
    Bool,
    /// `any` (dynamic: the value keeps whatever type it has)
    Any,
    /// `list(T)`
    List(Box<CtyType>),
    /// `set(T)`
    Set(Box<CtyType>),
    /// `map(T)`
    Map(Box<CtyType>),
    /// `tuple([T, …])`
    Tuple(Vec<CtyType>),
    /// `object({k = T, …})`
    Object(BTreeMap<String, CtyType>),
}

/// A type expression that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid type expression {input:?}: {reason}")]
pub struct TypeExprError {
    input: String,
    reason: String,
}

impl fmt::Display for CtyType {
    /// The friendly name go-cty uses in messages: `list of map of string`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CtyType::String => f.write_str("string"),
            CtyType::Number => f.write_str("number"),
            CtyType::Bool => f.write_str("bool"),
            CtyType::Any => f.write_str("any value"),
            CtyType::List(t) => write!(f, "list of {t}"),
            CtyType::Set(t) => write!(f, "set of {t}"),
            CtyType::Map(t) => write!(f, "map of {t}"),
            CtyType::Tuple(_) => f.write_str("tuple"),
            CtyType::Object(_) => f.write_str("object"),
        }
    }
}

impl FromStr for CtyType {
    type Err = TypeExprError;

    fn from_str(input: &str) -> Result<CtyType, TypeExprError> {
        let mut p = TypeParser { input, pos: 0 };
        let ty = p.parse(0)?;
        p.skip_ws();
        if p.pos != input.len() {
            return Err(p.error("unexpected trailing characters"));
        }
        Ok(ty)
    }
}

struct TypeParser<'a> {
    input: &'a str,
    pos: usize,
}

impl TypeParser<'_> {
    fn error(&self, reason: &str) -> TypeExprError {
        TypeExprError {
            input: self.input.to_owned(),
            reason: format!("{reason} at offset {}", self.pos),
        }
    }

    fn skip_ws(&mut self) {
        let rest = &self.input[self.pos..];
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.input[self.pos..].starts_with(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<(), TypeExprError> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.error(&format!("expected '{c}'")))
        }
    }

    fn ident(&mut self) -> Result<&str, TypeExprError> {
        self.skip_ws();
        let rest = &self.input[self.pos..];
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(rest.len());
        if len == 0 {
            return Err(self.error("expected a type name"));
        }
        self.pos += len;
        Ok(&rest[..len])
    }

    fn parse(&mut self, depth: usize) -> Result<CtyType, TypeExprError> {
        if depth > MAX_TYPE_DEPTH {
            return Err(self.error("type nests too deeply"));
        }
        let name = self.ident()?.to_owned();
        let ty = match name.as_str() {
            "string" => CtyType::String,
            "number" => CtyType::Number,
            "bool" => CtyType::Bool,
            "any" => CtyType::Any,
            "list" | "set" | "map" => {
                self.expect('(')?;
                let inner = Box::new(self.parse(depth + 1)?);
                self.expect(')')?;
                match name.as_str() {
                    "list" => CtyType::List(inner),
                    "set" => CtyType::Set(inner),
                    _ => CtyType::Map(inner),
                }
            }
            "tuple" => {
                self.expect('(')?;
                self.expect('[')?;
                let mut items = Vec::new();
                while !self.eat(']') {
                    items.push(self.parse(depth + 1)?);
                    if !self.eat(',') {
                        self.expect(']')?;
                        break;
                    }
                }
                self.expect(')')?;
                CtyType::Tuple(items)
            }
            "object" => {
                self.expect('(')?;
                self.expect('{')?;
                let mut attrs = BTreeMap::new();
                while !self.eat('}') {
                    let key = self.ident()?.to_owned();
                    if !self.eat('=') {
                        self.expect(':')?;
                    }
                    attrs.insert(key, self.parse(depth + 1)?);
                    if !self.eat(',') {
                        self.expect('}')?;
                        break;
                    }
                }
                self.expect(')')?;
                CtyType::Object(attrs)
            }
            other => return Err(self.error(&format!("unknown type {other:?}"))),
        };
        Ok(ty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_types_nomad_drivers_use() {
        let cases = [
            ("string", CtyType::String),
            ("list(string)", CtyType::List(Box::new(CtyType::String))),
            (
                "list(map(number))",
                CtyType::List(Box::new(CtyType::Map(Box::new(CtyType::Number)))),
            ),
            (" set( bool ) ", CtyType::Set(Box::new(CtyType::Bool))),
            (
                "tuple([string, number])",
                CtyType::Tuple(vec![CtyType::String, CtyType::Number]),
            ),
        ];
        for (text, ty) in cases {
            assert_eq!(text.parse::<CtyType>(), Ok(ty), "{text}");
        }
        let obj: CtyType = "object({a = string, b = list(number)})".parse().unwrap();
        assert!(matches!(obj, CtyType::Object(ref m) if m.len() == 2));
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        for bad in [
            "",
            "3m",
            "list(",
            "map(string",
            "strin",
            "list(string))",
            "object({a})",
        ] {
            assert!(bad.parse::<CtyType>().is_err(), "{bad:?}");
        }
        let deep = "list(".repeat(100) + "string" + &")".repeat(100);
        assert!(deep.parse::<CtyType>().is_err());
    }

    #[test]
    fn friendly_names_match_go_cty() {
        let t: CtyType = "list(map(string))".parse().unwrap();
        assert_eq!(t.to_string(), "list of map of string");
    }
}
