//! Arbitrary bytes and values into both decoders: errors, never panics.

use proptest::prelude::*;
use rmpv::Value;

use super::*;

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("gc".to_owned()),
        Just("dangling_containers".to_owned()),
        Just("period".to_owned()),
        Just("image".to_owned()),
        Just("port_map".to_owned()),
        Just("labels".to_owned()),
        Just("mount".to_owned()),
        Just("devices".to_owned()),
        Just("dockhand".to_owned()),
        Just("admin".to_owned()),
        Just("allowed_uids".to_owned()),
        Just("ulimit".to_owned()),
        Just("volume_options".to_owned()),
        Just("logging".to_owned()),
        Just("config".to_owned()),
        "[a-z_]{1,12}",
    ]
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
        prop::collection::vec(any::<u8>(), 0..8).prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key().prop_map(Value::from), inner), 0..8).prop_map(Value::Map),
        ]
    })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = PluginConfig::from_msgpack(&bytes);
        let _ = TaskConfig::from_msgpack(&bytes);
    }

    #[test]
    fn arbitrary_values_never_panic(v in value()) {
        let bytes = encode(&v);
        let plugin = PluginConfig::from_msgpack(&bytes);
        if let Ok(task) = TaskConfig::from_msgpack(&bytes) {
            let _ = task.validate_against(&plugin.unwrap_or_default());
        }
    }
}
