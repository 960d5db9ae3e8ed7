//! go-cty MessagePack decoding helpers.
//!
//! Nomad decodes plugin and task configuration with `hcldec`, then encodes the resulting
//! `cty.Value` with go-cty's msgpack encoder and sends the bytes in
//! `SetConfigRequest.msgpack_config` / `TaskConfig.msgpack_driver_config`. The encoding has a
//! few properties a decoder must respect (see go-cty `cty/msgpack/marshal.go`):
//!
//! * every key of an `Object` spec is present; an absent optional value is `nil`, so `nil`
//!   here means "absent" and decodes to `None`;
//! * a `number` may arrive as any msgpack integer, as a float64, or as a **string** holding
//!   the decimal text (`"0.1"`, `"18446744073709551616"`) when float64 cannot hold it exactly;
//! * maps and objects are msgpack maps; lists, sets and tuples are arrays.
//!
//! The helpers here are generic: a [`Cursor`] walks a decoded [`rmpv::Value`] and remembers
//! the path it took, so that every error names the field (`gc.dangling_containers.period:
//! expected string, found map`). The path is kept as a shared trail — each container visited
//! adds one small node, each element only its key (borrowed) or index — and spelled out as a
//! [`Path`] only when an error is reported: a list of a million elements costs no path per
//! element while it decodes. Keys a driver does not ask for are ignored, because Nomad's
//! schema already rejected unknown keys before encoding.
//!
//! `list(map(T))` attributes are Nomad's compatibility trick for user maps (`labels`,
//! `port_map`, …): the list of maps is folded, in order, into one map where a later duplicate
//! key overwrites an earlier one, exactly like `hclutils.MapStrStr` / `MapStrInt`. A plain map
//! where the list is expected is an error, as it is in Nomad.
//!
//! Input is bounded: at most [`MAX_CONFIG_BYTES`] bytes, [`MAX_VALUES`] values and
//! [`MAX_DEPTH`] levels of nesting, checked by a scan of the bytes before anything is built,
//! so a hostile or corrupted payload cannot exhaust the stack or memory.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use rmpv::Value;

/// Largest configuration payload accepted, in bytes. Real configurations are a few KiB; the
/// limit stops a corrupted length prefix or a hostile peer from making us buffer gigabytes.
pub const MAX_CONFIG_BYTES: usize = 4 * 1024 * 1024;

/// Maximum msgpack nesting depth (as counted by `rmpv`, where a container and its elements
/// each use one level). Nomad configurations nest about six containers deep; the limit keeps
/// recursive decoding of malformed input far away from a stack overflow.
pub const MAX_DEPTH: usize = 64;

/// Most msgpack values (scalars, strings, lists, maps, keys included) in one payload. A real
/// configuration has a few hundred; each decoded value costs tens of bytes, so without this
/// bound a 4 MiB payload of one-byte list elements would decode into hundreds of MiB.
pub const MAX_VALUES: usize = 256 * 1024;

/// One step of a [`Path`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// An object or map key.
    Key(String),
    /// A list index.
    Index(usize),
}

/// Where in a configuration a value sits, e.g. `mount[0].volume_options.labels`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Path(Vec<Segment>);

impl Path {
    /// The root path.
    pub fn root() -> Path {
        Path(Vec::new())
    }

    /// A path with `key` appended.
    pub fn key(&self, key: &str) -> Path {
        let mut p = self.clone();
        p.0.push(Segment::Key(key.to_owned()));
        p
    }

    /// A path with `index` appended.
    pub fn index(&self, index: usize) -> Path {
        let mut p = self.clone();
        p.0.push(Segment::Index(index));
        p
    }

    /// The segments of this path.
    pub fn segments(&self) -> &[Segment] {
        &self.0
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("<root>");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Segment::Key(k) if i == 0 => write!(f, "{k}")?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A decoding error; every variant that concerns a value names its path.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CtyError {
    /// The bytes are not one well-formed MessagePack value.
    #[error("malformed MessagePack: {0}")]
    Malformed(String),
    /// The payload is larger than [`MAX_CONFIG_BYTES`].
    #[error("configuration is {size} bytes, more than the limit of {limit} bytes")]
    TooLarge {
        /// Payload size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Bytes follow the single top-level value.
    #[error("malformed MessagePack: {0} trailing bytes after the configuration value")]
    Trailing(usize),
    /// The payload holds more than [`MAX_VALUES`] values.
    #[error("configuration holds more than {limit} values")]
    TooManyValues {
        /// The limit.
        limit: usize,
    },
    /// A value has the wrong msgpack kind.
    #[error("{path}: expected {expected}, found {found}")]
    Type {
        /// Where.
        path: Path,
        /// The expected kind, e.g. `string` or `list of maps`.
        expected: &'static str,
        /// The kind found, e.g. `map`.
        found: &'static str,
    },
    /// A value has the right kind but an unusable content.
    #[error("{path}: {message}")]
    Invalid {
        /// Where.
        path: Path,
        /// What is wrong.
        message: String,
    },
}

/// Decode `bytes` as exactly one MessagePack value, within [`MAX_CONFIG_BYTES`] and
/// [`MAX_DEPTH`]. An empty payload decodes to `nil` (Nomad sends nothing when a plugin has no
/// schema).
pub fn decode(bytes: &[u8]) -> Result<Value, CtyError> {
    if bytes.len() > MAX_CONFIG_BYTES {
        return Err(CtyError::TooLarge {
            size: bytes.len(),
            limit: MAX_CONFIG_BYTES,
        });
    }
    if bytes.is_empty() {
        return Ok(Value::Nil);
    }
    scan::scan(bytes)?;
    let mut rd = bytes;
    let value = rmpv::decode::read_value_with_max_depth(&mut rd, MAX_DEPTH)
        .map_err(|e| CtyError::Malformed(e.to_string()))?;
    if !rd.is_empty() {
        return Err(CtyError::Trailing(rd.len()));
    }
    Ok(value)
}

/// A short name for the kind of a msgpack value, for error messages.
pub fn kind_name(value: &Value) -> &'static str {
    match value {
        Value::Nil => "null",
        Value::Boolean(_) => "bool",
        Value::Integer(_) => "integer",
        Value::F32(_) | Value::F64(_) => "float",
        Value::String(_) => "string",
        Value::Binary(_) => "binary",
        Value::Array(_) => "list",
        Value::Map(_) => "map",
        Value::Ext(..) => "extension (unknown value)",
    }
}

/// A cty `number` as it arrived on the wire.
#[derive(Debug, Clone, PartialEq)]
pub enum CtyNumber {
    /// A signed integer.
    Int(i64),
    /// An unsigned integer above `i64::MAX`.
    UInt(u64),
    /// A float64.
    Float(f64),
    /// Decimal text that float64 cannot hold exactly.
    Decimal(String),
}

impl fmt::Display for CtyNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CtyNumber::Int(v) => write!(f, "{v}"),
            CtyNumber::UInt(v) => write!(f, "{v}"),
            CtyNumber::Float(v) => write!(f, "{v}"),
            CtyNumber::Decimal(v) => f.write_str(v),
        }
    }
}

impl CtyNumber {
    /// The value as an `i64`, if it is an integer in range.
    pub fn to_i64(&self) -> Option<i64> {
        match self {
            CtyNumber::Int(v) => Some(*v),
            CtyNumber::UInt(v) => i64::try_from(*v).ok(),
            CtyNumber::Float(v) => {
                // Exclusive upper bound: 2^63 itself is not an i64.
                let in_range =
                    *v >= -9_223_372_036_854_775_808.0 && *v < 9_223_372_036_854_775_808.0;
                (v.fract() == 0.0 && in_range).then_some(*v as i64)
            }
            CtyNumber::Decimal(s) => s.parse::<i64>().ok(),
        }
    }

    /// The value as an `f64` (possibly rounded).
    pub fn to_f64(&self) -> Option<f64> {
        match self {
            CtyNumber::Int(v) => Some(*v as f64),
            CtyNumber::UInt(v) => Some(*v as f64),
            CtyNumber::Float(v) => Some(*v),
            CtyNumber::Decimal(s) => s.parse::<f64>().ok().filter(|f| f.is_finite()),
        }
    }
}

fn is_decimal_text(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let mut parts = digits.splitn(2, '.');
    let int = parts.next().unwrap_or("");
    let frac = parts.next();
    !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
}

/// One step of a [`Trail`]: a key borrowed from the decoded value, or an index.
#[derive(Debug, Clone)]
enum Step<'a> {
    /// Where a walk starts: the root, or a path given to [`Cursor::at`].
    Base(Option<Arc<Path>>),
    Key(&'a str),
    Index(usize),
}

/// The way to a value, spelled out as a [`Path`] only for an error: the step from its parent
/// and the parent's trail, shared by all its siblings.
#[derive(Debug, Clone)]
struct Trail<'a> {
    up: Option<Arc<Trail<'a>>>,
    step: Step<'a>,
}

impl<'a> Trail<'a> {
    fn base(path: Option<Path>) -> Self {
        Trail {
            up: None,
            step: Step::Base(path.map(Arc::new)),
        }
    }

    /// The trail of a child: one node for this container, shared by every child.
    fn shared(&self) -> Arc<Trail<'a>> {
        Arc::new(self.clone())
    }

    fn child(up: &Arc<Trail<'a>>, step: Step<'a>) -> Self {
        Trail {
            up: Some(Arc::clone(up)),
            step,
        }
    }

    fn path(&self) -> Path {
        let mut steps = vec![&self.step];
        let mut up = self.up.as_deref();
        while let Some(t) = up {
            steps.push(&t.step);
            up = t.up.as_deref();
        }
        let mut path = Path::root();
        for step in steps.into_iter().rev() {
            match step {
                Step::Base(Some(base)) => path.0.extend(base.0.iter().cloned()),
                Step::Base(None) => {}
                Step::Key(k) => path.0.push(Segment::Key((*k).to_owned())),
                Step::Index(i) => path.0.push(Segment::Index(*i)),
            }
        }
        path
    }
}

/// A position in a decoded configuration value.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    value: &'a Value,
    trail: Trail<'a>,
}

impl<'a> Cursor<'a> {
    /// A cursor at the root of `value`.
    pub fn root(value: &'a Value) -> Cursor<'a> {
        Cursor {
            value,
            trail: Trail::base(None),
        }
    }

    /// A cursor at `value`, reporting errors under `path`.
    pub fn at(value: &'a Value, path: Path) -> Cursor<'a> {
        Cursor {
            value,
            trail: Trail::base(Some(path)),
        }
    }

    /// The path of this value (spelled out on each call: meant for errors).
    pub fn path(&self) -> Path {
        self.trail.path()
    }

    /// The raw value.
    pub fn value(&self) -> &'a Value {
        self.value
    }

    /// Whether the value is `nil` (absent).
    pub fn is_null(&self) -> bool {
        self.value.is_nil()
    }

    fn type_error(&self, expected: &'static str) -> CtyError {
        CtyError::Type {
            path: self.path(),
            expected,
            found: kind_name(self.value),
        }
    }

    fn invalid(&self, message: String) -> CtyError {
        CtyError::Invalid {
            path: self.path(),
            message,
        }
    }

    /// The value as an object (a msgpack map with string keys).
    pub fn object(&self) -> Result<Object<'a>, CtyError> {
        let Value::Map(entries) = self.value else {
            return Err(self.type_error("object"));
        };
        for (k, _) in entries {
            if k.as_str().is_none() {
                return Err(self.invalid(format!("object key is a {}, not a string", kind_name(k))));
            }
        }
        Ok(Object {
            entries,
            trail: self.trail.shared(),
        })
    }

    /// The value as a string.
    pub fn string(&self) -> Result<String, CtyError> {
        match self.value {
            Value::String(s) => s
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| self.invalid("string is not valid UTF-8".to_owned())),
            _ => Err(self.type_error("string")),
        }
    }

    /// The value as a bool.
    pub fn bool(&self) -> Result<bool, CtyError> {
        self.value.as_bool().ok_or_else(|| self.type_error("bool"))
    }

    /// The value as a cty number in any of its wire forms.
    pub fn number(&self) -> Result<CtyNumber, CtyError> {
        match self.value {
            Value::Integer(i) => i
                .as_i64()
                .map(CtyNumber::Int)
                .or_else(|| i.as_u64().map(CtyNumber::UInt))
                .ok_or_else(|| self.invalid("integer out of range".to_owned())),
            Value::F64(f) => Ok(CtyNumber::Float(*f)),
            Value::F32(f) => Ok(CtyNumber::Float(f64::from(*f))),
            Value::String(s) => match s.as_str() {
                Some(text) if is_decimal_text(text) => Ok(CtyNumber::Decimal(text.to_owned())),
                Some(text) => Err(self.invalid(format!("{text:?} is not a decimal number"))),
                None => Err(self.invalid("number text is not valid UTF-8".to_owned())),
            },
            _ => Err(self.type_error("number")),
        }
    }

    /// The value as a whole number that fits an `i64`.
    pub fn i64(&self) -> Result<i64, CtyError> {
        let n = self.number()?;
        n.to_i64().ok_or_else(|| {
            self.invalid(format!(
                "expected a whole number within 64-bit range, found {n}"
            ))
        })
    }

    /// The value as a list.
    pub fn list(&self) -> Result<Vec<Cursor<'a>>, CtyError> {
        Ok(self.elements()?.collect())
    }

    /// The elements of a list, one cursor at a time.
    fn elements(&self) -> Result<impl Iterator<Item = Cursor<'a>>, CtyError> {
        let Value::Array(items) = self.value else {
            return Err(self.type_error("list"));
        };
        let up = self.trail.shared();
        Ok(items.iter().enumerate().map(move |(i, v)| Cursor {
            value: v,
            trail: Trail::child(&up, Step::Index(i)),
        }))
    }

    /// The value as a `list(string)`; a `nil` element is an error.
    pub fn string_list(&self) -> Result<Vec<String>, CtyError> {
        self.elements()?.map(|c| c.string()).collect()
    }

    /// The value as a `map(string)`; a `nil` element decodes to `""` as in Go.
    pub fn string_map(&self) -> Result<BTreeMap<String, String>, CtyError> {
        let Value::Map(entries) = self.value else {
            return Err(self.type_error("map of strings"));
        };
        let mut out = BTreeMap::new();
        fold_map(entries, &self.trail.shared(), &mut out, |c| {
            if c.is_null() {
                Ok(String::new())
            } else {
                c.string()
            }
        })?;
        Ok(out)
    }

    /// A `list(map(string))` folded into one map: later keys win (`hclutils.MapStrStr`).
    pub fn merged_string_map(&self) -> Result<BTreeMap<String, String>, CtyError> {
        self.merged_map("list of maps of strings", |c| {
            if c.is_null() {
                Ok(String::new())
            } else {
                c.string()
            }
        })
    }

    /// A `list(map(number))` folded into one map: later keys win (`hclutils.MapStrInt`).
    pub fn merged_int_map(&self) -> Result<BTreeMap<String, i64>, CtyError> {
        self.merged_map("list of maps of numbers", |c| {
            if c.is_null() { Ok(0) } else { c.i64() }
        })
    }

    fn merged_map<T>(
        &self,
        expected: &'static str,
        elem: impl Fn(&Cursor<'a>) -> Result<T, CtyError>,
    ) -> Result<BTreeMap<String, T>, CtyError> {
        if !matches!(self.value, Value::Array(_)) {
            return Err(self.type_error(expected));
        }
        let mut out = BTreeMap::new();
        for item in self.elements()? {
            match item.value {
                Value::Map(entries) => {
                    fold_map(entries, &item.trail.shared(), &mut out, &elem)?;
                }
                Value::Nil => {}
                other => {
                    return Err(CtyError::Type {
                        path: item.path(),
                        expected: "map",
                        found: kind_name(other),
                    });
                }
            }
        }
        Ok(out)
    }
}

fn fold_map<'a, T>(
    entries: &'a [(Value, Value)],
    up: &Arc<Trail<'a>>,
    out: &mut BTreeMap<String, T>,
    elem: impl Fn(&Cursor<'a>) -> Result<T, CtyError>,
) -> Result<(), CtyError> {
    for (k, v) in entries {
        let Some(key) = k.as_str() else {
            return Err(CtyError::Invalid {
                path: up.path(),
                message: format!("map key is a {}, not a string", kind_name(k)),
            });
        };
        let value = elem(&Cursor {
            value: v,
            trail: Trail::child(up, Step::Key(key)),
        })?;
        out.insert(key.to_owned(), value);
    }
    Ok(())
}

/// An object (msgpack map with string keys) being decoded field by field.
#[derive(Debug, Clone)]
pub struct Object<'a> {
    entries: &'a [(Value, Value)],
    trail: Arc<Trail<'a>>,
}

impl<'a> Object<'a> {
    /// The path of this object (spelled out on each call: meant for errors).
    pub fn path(&self) -> Path {
        self.trail.path()
    }

    /// The keys present, in wire order.
    pub fn keys(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.entries.iter().filter_map(|(k, _)| k.as_str())
    }

    /// The field `key`, or `None` when absent or `nil`. With duplicate keys the last wins.
    pub fn get(&self, key: &str) -> Option<Cursor<'a>> {
        self.entries
            .iter()
            .rev()
            .find(|(k, _)| k.as_str() == Some(key))
            .filter(|(_, v)| !v.is_nil())
            .and_then(|(k, v)| {
                Some(Cursor {
                    value: v,
                    trail: Trail::child(&self.trail, Step::Key(k.as_str()?)),
                })
            })
    }

    fn opt<T>(
        &self,
        key: &str,
        f: impl FnOnce(&Cursor<'a>) -> Result<T, CtyError>,
    ) -> Result<Option<T>, CtyError> {
        self.get(key).map(|c| f(&c)).transpose()
    }

    /// An optional string field.
    pub fn opt_string(&self, key: &str) -> Result<Option<String>, CtyError> {
        self.opt(key, Cursor::string)
    }

    /// An optional bool field.
    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, CtyError> {
        self.opt(key, Cursor::bool)
    }

    /// An optional whole-number field.
    pub fn opt_i64(&self, key: &str) -> Result<Option<i64>, CtyError> {
        self.opt(key, Cursor::i64)
    }

    /// An optional `list(string)` field.
    pub fn opt_string_list(&self, key: &str) -> Result<Option<Vec<String>>, CtyError> {
        self.opt(key, Cursor::string_list)
    }

    /// An optional `list(number)` field of whole numbers.
    pub fn opt_i64_list(&self, key: &str) -> Result<Option<Vec<i64>>, CtyError> {
        self.opt(key, |c| c.list()?.iter().map(Cursor::i64).collect())
    }

    /// An optional `map(string)` field (e.g. a `BlockAttrs`).
    pub fn opt_string_map(&self, key: &str) -> Result<Option<BTreeMap<String, String>>, CtyError> {
        self.opt(key, Cursor::string_map)
    }

    /// An optional `list(map(string))` field, merged.
    pub fn opt_merged_string_map(
        &self,
        key: &str,
    ) -> Result<Option<BTreeMap<String, String>>, CtyError> {
        self.opt(key, Cursor::merged_string_map)
    }

    /// An optional `list(map(number))` field, merged.
    pub fn opt_merged_int_map(&self, key: &str) -> Result<Option<BTreeMap<String, i64>>, CtyError> {
        self.opt(key, Cursor::merged_int_map)
    }

    /// An optional nested object (a `Block`).
    pub fn opt_object(&self, key: &str) -> Result<Option<Object<'a>>, CtyError> {
        self.opt(key, Cursor::object)
    }

    /// A list of nested objects (a `BlockList`); absent means empty.
    pub fn object_list(&self, key: &str) -> Result<Vec<Object<'a>>, CtyError> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(c) => c.elements()?.map(|e| e.object()).collect(),
        }
    }
}

mod scan;

#[cfg(test)]
mod tests;
