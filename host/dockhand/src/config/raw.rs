//! Wire-form configuration: what Nomad sent, field by field, before any validation.
//!
//! Each `Raw*` struct is one object of a schema with every field optional (`nil` on the wire
//! means absent). It is declared **once**, as a table of keys and their kinds (the
//! `wire_objects!` macro below), and that one table yields three things that therefore cannot
//! drift apart:
//!
//! * the struct itself;
//! * its part of the hcldec schema handed to Nomad (`spec()`), with the key, the HCL type and
//!   any literal default;
//! * its decoder (`decode`), which reads the same key as the same type.
//!
//! Decoding only checks *types*; rules and defaults belong to the domain types in
//! [`super::plugin`] and [`super::task`]. Decoding collects every type error rather than
//! stopping at the first, so an operator sees all of them at once.
//!
//! The tables: [`plugin`] (`plugin "dockhand" { config { … } }`) and [`task`] (a task's
//! `config { … }`).

use nomad_plugin::cty::CtyError;

use super::ConfigError;

pub mod plugin;
pub mod task;

pub use plugin::{
    RawAdmin, RawAllowedModes, RawDangling, RawDockhand, RawGc, RawPluginAuth, RawPluginConfig,
    RawPluginLogging, RawPolicySource, RawTls, RawVolumes, plugin_config_spec,
};
pub use task::{
    RawBindOptions, RawDevice, RawDriverConfig, RawHealthchecks, RawMount, RawTaskAuth,
    RawTaskConfig, RawTaskLogging, RawTmpfsOptions, RawVolumeOptions, task_config_spec,
};

/// Collects decode errors while decoding continues.
#[derive(Debug, Default)]
pub(crate) struct Collector {
    pub(crate) errors: Vec<ConfigError>,
}

impl Collector {
    fn take<T>(&mut self, r: Result<Option<T>, CtyError>) -> Option<T> {
        r.unwrap_or_else(|e| {
            self.errors.push(ConfigError::Decode(e));
            None
        })
    }

    fn list<T>(&mut self, r: Result<Vec<T>, CtyError>) -> Vec<T> {
        r.unwrap_or_else(|e| {
            self.errors.push(ConfigError::Decode(e));
            Vec::new()
        })
    }
}

/// The HCL key of a field: its name, without the raw-identifier prefix (`r#type` → `type`).
fn key(field: &'static str) -> &'static str {
    field.strip_prefix("r#").unwrap_or(field)
}

/// Declares wire-form objects from one table each: `field: kind [= default]`.
///
/// The key is the field's name. The kinds, with the Rust type, the HCL type and how the value
/// is read:
///
/// | kind | field type | schema |
/// |---|---|---|
/// | `string` / `required_string` | `Option<String>` | `string` attr (required: `Nomad refuses the config without it`) |
/// | `bool`, `number` | `Option<bool>`, `Option<i64>` | `bool`, `number` attr |
/// | `strings`, `numbers` | `Option<Vec<String>>`, `Option<Vec<i64>>` | `list(string)`, `list(number)` attr |
/// | `string_map`, `number_map` | `Option<BTreeMap<String, _>>` | `list(map(string))`, `list(map(number))` attr, merged (Nomad's map typing) |
/// | `attrs` | `Option<BTreeMap<String, String>>` | a `BlockAttrs` of strings |
/// | `block<T>` | `Option<T>` | one nested block of `T`'s table |
/// | `blocks<T>` | `Vec<T>` | a list of nested blocks of `T`'s table |
///
/// `= default` is the HCL literal expression Nomad fills in when the key is unset (a string
/// literal carries its own quotes; use [`super::defaults::hcl_str`]).
macro_rules! wire_objects {
    ($(
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $field:ident : $kind:ident $(<$inner:ty>)? $(= $default:expr)? ),* $(,)?
        }
    )*) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct $name {
            $( pub $field: wire_objects!(@type $kind $($inner)?), )*
        }

        impl $name {
            /// This object's hcldec schema, one entry per field.
            pub fn spec() -> nomad_plugin::hclspec::Spec {
                nomad_plugin::hclspec::Spec::object([$({
                    let key = $crate::config::raw::key(stringify!($field));
                    let spec = wire_objects!(@spec key, $kind $($inner)?);
                    $( let spec = spec.with_default(&$default); )?
                    (key, spec)
                }),*])
            }

            /// Decodes this object, collecting every type error in `c`.
            pub(crate) fn decode(
                o: &nomad_plugin::cty::Object<'_>,
                c: &mut $crate::config::raw::Collector,
            ) -> $name {
                $name {$(
                    $field: wire_objects!(
                        @decode o, c, $crate::config::raw::key(stringify!($field)),
                        $kind $($inner)?
                    ),
                )*}
            }
        }
    )*};

    (@type string) => { Option<String> };
    (@type required_string) => { Option<String> };
    (@type bool) => { Option<bool> };
    (@type number) => { Option<i64> };
    (@type strings) => { Option<Vec<String>> };
    (@type numbers) => { Option<Vec<i64>> };
    (@type string_map) => { Option<std::collections::BTreeMap<String, String>> };
    (@type number_map) => { Option<std::collections::BTreeMap<String, i64>> };
    (@type attrs) => { Option<std::collections::BTreeMap<String, String>> };
    (@type block $t:ty) => { Option<$t> };
    (@type blocks $t:ty) => { Vec<$t> };

    (@spec $k:ident, string) => { nomad_plugin::hclspec::Spec::attr($k, "string") };
    (@spec $k:ident, required_string) => {
        nomad_plugin::hclspec::Spec::required_attr($k, "string")
    };
    (@spec $k:ident, bool) => { nomad_plugin::hclspec::Spec::attr($k, "bool") };
    (@spec $k:ident, number) => { nomad_plugin::hclspec::Spec::attr($k, "number") };
    (@spec $k:ident, strings) => { nomad_plugin::hclspec::Spec::attr($k, "list(string)") };
    (@spec $k:ident, numbers) => { nomad_plugin::hclspec::Spec::attr($k, "list(number)") };
    (@spec $k:ident, string_map) => {
        nomad_plugin::hclspec::Spec::attr($k, "list(map(string))")
    };
    (@spec $k:ident, number_map) => {
        nomad_plugin::hclspec::Spec::attr($k, "list(map(number))")
    };
    (@spec $k:ident, attrs) => { nomad_plugin::hclspec::Spec::block_attrs($k, "string") };
    (@spec $k:ident, block $t:ty) => { nomad_plugin::hclspec::Spec::block($k, <$t>::spec()) };
    (@spec $k:ident, blocks $t:ty) => {
        nomad_plugin::hclspec::Spec::block_list($k, <$t>::spec())
    };

    (@decode $o:ident, $c:ident, $k:expr, string) => { $c.take($o.opt_string($k)) };
    (@decode $o:ident, $c:ident, $k:expr, required_string) => { $c.take($o.opt_string($k)) };
    (@decode $o:ident, $c:ident, $k:expr, bool) => { $c.take($o.opt_bool($k)) };
    (@decode $o:ident, $c:ident, $k:expr, number) => { $c.take($o.opt_i64($k)) };
    (@decode $o:ident, $c:ident, $k:expr, strings) => { $c.take($o.opt_string_list($k)) };
    (@decode $o:ident, $c:ident, $k:expr, numbers) => { $c.take($o.opt_i64_list($k)) };
    (@decode $o:ident, $c:ident, $k:expr, string_map) => {
        $c.take($o.opt_merged_string_map($k))
    };
    (@decode $o:ident, $c:ident, $k:expr, number_map) => {
        $c.take($o.opt_merged_int_map($k))
    };
    (@decode $o:ident, $c:ident, $k:expr, attrs) => { $c.take($o.opt_string_map($k)) };
    (@decode $o:ident, $c:ident, $k:expr, block $t:ty) => {
        $c.take($o.opt_object($k)).map(|b| <$t>::decode(&b, $c))
    };
    (@decode $o:ident, $c:ident, $k:expr, blocks $t:ty) => {{
        let list = $c.list($o.object_list($k));
        list.iter().map(|b| <$t>::decode(b, $c)).collect()
    }};
}
pub(crate) use wire_objects;
