//! Protobuf bytes of the generated types against the test vectors of the protocol notes
//! (`nomad-protocol.md` §14): if a field number, type or enum value drifts from Nomad's
//! `.proto` files, these fail.

use nomad_plugin::PluginError;
use nomad_plugin::hclspec::Spec;
use nomad_plugin::proto::base::{PluginInfoResponse, PluginType};
use nomad_plugin::proto::drivers::driver_capabilities::{FsIsolation, MountConfigs};
use nomad_plugin::proto::drivers::fingerprint_response::HealthState;
use nomad_plugin::proto::drivers::network_isolation_spec::NetworkIsolationMode;
use nomad_plugin::proto::drivers::{
    CapabilitiesResponse, DriverCapabilities, FingerprintResponse, StopTaskRequest,
    TaskConfigSchemaResponse, TaskState,
};
use nomad_plugin::proto::hclspec;
use nomad_plugin::proto::structs::{Attribute, attribute};
use prost::Message as _;

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn unhex(text: &str) -> Vec<u8> {
    text.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("hex byte"))
        .collect()
}

#[track_caller]
fn assert_bytes(actual: &[u8], expected_hex: &str) {
    assert_eq!(hex(actual), hex(&unhex(expected_hex)));
}

#[test]
fn vector_10_plugin_info_response() {
    let msg = PluginInfoResponse {
        r#type: PluginType::Driver.into(),
        plugin_api_versions: vec!["v0.1.0".into()],
        plugin_version: "0.1.0".into(),
        name: "mydriver".into(),
    };
    assert_bytes(
        &msg.encode_to_vec(),
        "08 02 12 06 76 30 2e 31 2e 30 1a 05 30 2e 31 2e 30 22 08 6d 79 64 72 69 76 65 72",
    );
}

#[test]
fn vector_11_plugin_type_values() {
    assert_eq!(PluginType::Unknown as i32, 0);
    assert_eq!(PluginType::Driver as i32, 2);
    assert_eq!(PluginType::Device as i32, 3);
}

const VECTOR_14: &str = "0a 22 0a 20 0a 07 63 6f 6d 6d 61 6e 64 12 15 1a 13 0a 07 63 6f 6d 6d 61 6e 64 12 06 73 74 72 69 6e 67 18 01";

#[test]
fn vector_14_object_spec_from_generated_types() {
    let attr = hclspec::Spec {
        block: Some(hclspec::spec::Block::Attr(hclspec::Attr {
            name: "command".into(),
            r#type: "string".into(),
            required: true,
        })),
    };
    let spec = hclspec::Spec {
        block: Some(hclspec::spec::Block::Object(hclspec::Object {
            attributes: [("command".to_owned(), attr)].into_iter().collect(),
        })),
    };
    assert_bytes(&spec.encode_to_vec(), VECTOR_14);
    let wrapped = TaskConfigSchemaResponse { spec: Some(spec) };
    assert_bytes(&wrapped.encode_to_vec(), &format!("0a 24 {VECTOR_14}"));
}

#[test]
fn vector_14_object_spec_from_the_builder() {
    let spec = Spec::object([("command", Spec::required_attr("command", "string"))]);
    assert_bytes(&spec.to_proto().encode_to_vec(), VECTOR_14);
}

#[test]
fn vector_15_default_with_quoted_literal() {
    let spec = Spec::attr("image_delay", "string").default_str("3m");
    assert_bytes(
        &spec.to_proto().encode_to_vec(),
        "4a 23 0a 17 1a 15 0a 0b 69 6d 61 67 65 5f 64 65 6c 61 79 12 06 73 74 72 69 6e 67 12 08 52 06 0a 04 22 33 6d 22",
    );
}

#[test]
fn vector_18_capabilities_with_packed_network_modes() {
    let caps = DriverCapabilities {
        send_signals: true,
        exec: true,
        fs_isolation: FsIsolation::None.into(),
        network_isolation_modes: vec![
            NetworkIsolationMode::Host.into(),
            NetworkIsolationMode::Group.into(),
        ],
        ..DriverCapabilities::default()
    };
    assert_bytes(&caps.encode_to_vec(), "08 01 10 01 22 02 00 01");
    let resp = CapabilitiesResponse {
        capabilities: Some(caps),
    };
    assert_bytes(&resp.encode_to_vec(), "0a 08 08 01 10 01 22 02 00 01");
}

#[test]
fn vector_19_fingerprint_response() {
    let resp = FingerprintResponse {
        attributes: [(
            "driver.mydriver".to_owned(),
            Attribute {
                value: Some(attribute::Value::BoolVal(true)),
                unit: String::new(),
            },
        )]
        .into_iter()
        .collect(),
        health: HealthState::Healthy.into(),
        health_description: "Healthy".into(),
        err: String::new(),
    };
    assert_bytes(
        &resp.encode_to_vec(),
        "0a 15 0a 0f 64 72 69 76 65 72 2e 6d 79 64 72 69 76 65 72 12 02 20 01 10 02 1a 07 48 65 61 6c 74 68 79",
    );
}

#[test]
fn vector_21_enum_values() {
    assert_eq!(HealthState::Undetected as i32, 0);
    assert_eq!(HealthState::Unhealthy as i32, 1);
    assert_eq!(HealthState::Healthy as i32, 2);
    assert_eq!(FsIsolation::None as i32, 0);
    assert_eq!(FsIsolation::Chroot as i32, 1);
    assert_eq!(FsIsolation::Image as i32, 2);
    assert_eq!(FsIsolation::Unveil as i32, 3);
    assert_eq!(NetworkIsolationMode::Host as i32, 0);
    assert_eq!(NetworkIsolationMode::Group as i32, 1);
    assert_eq!(NetworkIsolationMode::Task as i32, 2);
    assert_eq!(NetworkIsolationMode::None as i32, 3);
    assert_eq!(MountConfigs::ANY_MOUNTS as i32, 0);
    assert_eq!(MountConfigs::NoMounts as i32, 1);
    assert_eq!(TaskState::Unknown as i32, 0);
    assert_eq!(TaskState::Running as i32, 1);
    assert_eq!(TaskState::Exited as i32, 2);
}

#[test]
fn vector_22_stop_task_request() {
    let req = StopTaskRequest {
        task_id: "a/b/c".into(),
        timeout: Some(prost_types::Duration {
            seconds: 5,
            nanos: 0,
        }),
        signal: "SIGINT".into(),
    };
    assert_bytes(
        &req.encode_to_vec(),
        "0a 05 61 2f 62 2f 63 12 02 08 05 1a 06 53 49 47 49 4e 54",
    );
}

#[test]
fn vector_28_recoverable_error_status_details() {
    let status = tonic::Status::from(PluginError::recoverable("boom"));
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert_eq!(status.message(), "boom");
    let mut expected = unhex("08 09 12 04 62 6f 6f 6d 1a 51 0a 4b");
    let type_url = b"type.googleapis.com/hashicorp.nomad.plugins.shared.structs.RecoverableError";
    assert_eq!(type_url.len(), 75);
    expected.extend_from_slice(type_url);
    expected.extend_from_slice(&unhex("12 02 08 01"));
    assert_eq!(hex(status.details()), hex(&expected));
}

#[test]
fn vector_13_service_names() {
    use nomad_plugin::proto::{base, drivers, plugin};
    assert_eq!(
        base::base_plugin_server::SERVICE_NAME,
        "hashicorp.nomad.plugins.base.proto.BasePlugin"
    );
    assert_eq!(
        drivers::driver_server::SERVICE_NAME,
        "hashicorp.nomad.plugins.drivers.proto.Driver"
    );
    assert_eq!(
        plugin::grpc_controller_server::SERVICE_NAME,
        "plugin.GRPCController"
    );
    assert_eq!(plugin::grpc_stdio_server::SERVICE_NAME, "plugin.GRPCStdio");
    assert_eq!(
        plugin::grpc_broker_server::SERVICE_NAME,
        "plugin.GRPCBroker"
    );
}
