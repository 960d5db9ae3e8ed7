//! `driver_state`: what Nomad stores for us and hands back to RecoverTask.
//!
//! Nomad persists the bytes verbatim and loses the task config across agent restarts, so the
//! record carries everything recovery needs. Encoding: MessagePack (rmp-serde) with named fields
//! inside a versioned envelope `{ "v": <u32>, "state": { … } }`. A record with an unknown version
//! or bytes that are not such a record are refused with a clear error rather than guessed at.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The schema version written by this build (also the `TaskHandle.version` to report).
pub const DRIVER_STATE_VERSION: u32 = 1;

/// Largest `driver_state` accepted, bytes. A real record is well under 4 KiB; the bound stops a
/// corrupted or hostile record from making the decoder allocate without limit.
pub const MAX_DRIVER_STATE_BYTES: usize = 64 * 1024;

/// The network Nomad was told about at start (`DriverNetwork`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriverNetwork {
    /// Port label → container port (`port_map`).
    pub port_map: BTreeMap<String, u16>,
    /// Container IP.
    pub ip: String,
    /// Whether Nomad should advertise the container IP.
    pub auto_advertise: bool,
}

/// The persisted task record (schema version 1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskState {
    /// Nomad task id.
    pub task_id: String,
    /// Task name.
    pub task_name: String,
    /// Allocation id.
    pub alloc_id: String,
    /// Container id.
    pub container_id: String,
    /// Container name.
    pub container_name: String,
    /// Image reference as configured.
    pub image: String,
    /// Image id the container was created from.
    pub image_id: String,
    /// Task stdout sink.
    pub stdout_path: Option<PathBuf>,
    /// Task stderr sink.
    pub stderr_path: Option<PathBuf>,
    /// Whether logs are forwarded to the sinks.
    pub log_collection: bool,
    /// Whether the container has a TTY (logs are then not multiplexed).
    pub tty: bool,
    /// When the container was started, Unix seconds.
    pub started_at_unix: i64,
    /// Whether the container was adopted from a name conflict rather than created.
    pub adopted: bool,
    /// The network reported at start, if any.
    pub network: Option<DriverNetwork>,
    /// Where the log forwarder keeps its last delivered position (in the task directory, so
    /// it survives plugin and agent restarts). Absent in records written before it existed.
    #[serde(default)]
    pub log_position_path: Option<PathBuf>,
}

#[derive(Serialize)]
struct EnvelopeOut<'a> {
    v: u32,
    state: &'a TaskState,
}

/// Just the version, read first so an unknown version is reported as such.
#[derive(Deserialize)]
struct EnvelopeVersion {
    v: u32,
}

#[derive(Deserialize)]
struct EnvelopeV1 {
    state: TaskState,
}

/// Why a `driver_state` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Empty bytes.
    #[error("driver_state is empty")]
    Empty,
    /// Over [`MAX_DRIVER_STATE_BYTES`].
    #[error("driver_state is {len} bytes, more than the limit of {MAX_DRIVER_STATE_BYTES}")]
    TooLarge {
        /// Actual size.
        len: usize,
    },
    /// Not a versioned dockhand record.
    #[error("driver_state is not a dockhand task record")]
    Malformed(#[source] rmp_serde::decode::Error),
    /// A version this build does not know.
    #[error(
        "driver_state has schema version {found}, this build reads version {DRIVER_STATE_VERSION}"
    )]
    UnknownVersion {
        /// The version found.
        found: u32,
    },
    /// The envelope was fine, the record inside was not.
    #[error("driver_state version {DRIVER_STATE_VERSION} record is invalid")]
    InvalidRecord(#[source] rmp_serde::decode::Error),
    /// A required field is empty.
    #[error("driver_state field `{0}` is empty")]
    MissingField(&'static str),
    /// Encoding failed.
    #[error("failed to encode driver_state")]
    Encode(#[source] rmp_serde::encode::Error),
}

impl TaskState {
    /// Encodes the record in the current schema.
    pub fn encode(&self) -> Result<Vec<u8>, StateError> {
        rmp_serde::to_vec_named(&EnvelopeOut {
            v: DRIVER_STATE_VERSION,
            state: self,
        })
        .map_err(StateError::Encode)
    }

    /// Decodes and validates a record.
    pub fn decode(bytes: &[u8]) -> Result<Self, StateError> {
        if bytes.is_empty() {
            return Err(StateError::Empty);
        }
        if bytes.len() > MAX_DRIVER_STATE_BYTES {
            return Err(StateError::TooLarge { len: bytes.len() });
        }
        let version: EnvelopeVersion =
            rmp_serde::from_slice(bytes).map_err(StateError::Malformed)?;
        if version.v != DRIVER_STATE_VERSION {
            return Err(StateError::UnknownVersion { found: version.v });
        }
        let EnvelopeV1 { state } =
            rmp_serde::from_slice(bytes).map_err(StateError::InvalidRecord)?;
        if state.task_id.is_empty() {
            return Err(StateError::MissingField("task_id"));
        }
        if state.container_id.is_empty() {
            return Err(StateError::MissingField("container_id"));
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> TaskState {
        TaskState {
            task_id: "a/t/1234abcd".into(),
            task_name: "t".into(),
            alloc_id: "a".into(),
            container_id: "c0ffee".into(),
            container_name: "t-a".into(),
            image: "busybox:1".into(),
            image_id: "sha256:x".into(),
            stdout_path: Some("/tmp/out".into()),
            stderr_path: None,
            log_collection: true,
            tty: false,
            started_at_unix: 1_700_000_000,
            adopted: false,
            network: Some(DriverNetwork {
                port_map: [("http".to_owned(), 8080)].into(),
                ip: "172.17.0.2".into(),
                auto_advertise: false,
            }),
            log_position_path: Some("/alloc/t/.dockhand-log-position".into()),
        }
    }

    #[test]
    fn round_trips() {
        let s = sample();
        assert_eq!(TaskState::decode(&s.encode().unwrap()).unwrap(), s);
    }

    #[test]
    fn records_without_a_log_position_path_still_decode() {
        let bytes = sample().encode().unwrap();
        let mut value = rmpv::decode::read_value(&mut bytes.as_slice()).unwrap();
        let rmpv::Value::Map(envelope) = &mut value else {
            panic!("envelope is a map")
        };
        let Some((_, rmpv::Value::Map(state))) = envelope
            .iter_mut()
            .find(|(k, _)| k.as_str() == Some("state"))
        else {
            panic!("state is a map")
        };
        state.retain(|(k, _)| k.as_str() != Some("log_position_path"));
        let mut old = Vec::new();
        rmpv::encode::write_value(&mut old, &value).unwrap();
        let decoded = TaskState::decode(&old).unwrap();
        assert_eq!(decoded.log_position_path, None);
        assert_eq!(decoded.container_id, "c0ffee");
    }

    #[test]
    fn unknown_version_is_named() {
        #[derive(Serialize)]
        struct Future<'a> {
            v: u32,
            state: &'a TaskState,
        }
        let bytes = rmp_serde::to_vec_named(&Future {
            v: 7,
            state: &sample(),
        })
        .unwrap();
        let err = TaskState::decode(&bytes).unwrap_err();
        assert_eq!(
            err.to_string(),
            "driver_state has schema version 7, this build reads version 1"
        );
    }

    #[test]
    fn garbage_and_empty_are_refused() {
        assert_eq!(
            TaskState::decode(b"").unwrap_err().to_string(),
            "driver_state is empty"
        );
        assert_eq!(
            TaskState::decode(b"\xc1garbage").unwrap_err().to_string(),
            "driver_state is not a dockhand task record"
        );
        let big = vec![0u8; MAX_DRIVER_STATE_BYTES + 1];
        assert!(matches!(
            TaskState::decode(&big),
            Err(StateError::TooLarge { .. })
        ));
    }

    #[test]
    fn missing_container_id_is_refused() {
        let mut s = sample();
        s.container_id.clear();
        let err = TaskState::decode(&s.encode().unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "driver_state field `container_id` is empty"
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = TaskState::decode(&bytes);
        }
    }
}
