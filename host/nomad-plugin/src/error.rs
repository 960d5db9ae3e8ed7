//! The error type drivers return from [`DriverPlugin`](crate::DriverPlugin) methods, and its
//! single mapping to a gRPC status.
//!
//! Nomad treats plugin errors as plain gRPC statuses whose message it shows to operators, so
//! the status message is the error's full `Display` chain. The one thing the agent inspects is
//! the first status detail: a [`RecoverableError`](crate::proto::structs::RecoverableError)
//! there (status code `FAILED_PRECONDITION`, like Nomad's Go server) marks a failed
//! `StartTask` as worth retrying; without it the task fails for good.

use std::error::Error as StdError;

use prost::Message as _;

use crate::proto::{RECOVERABLE_ERROR_TYPE_URL, RpcStatus, structs};

/// A boxed error used as the source of [`PluginError::Internal`].
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// An error a driver reports to the Nomad agent.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The request (or configuration) is malformed; the message names what is wrong.
    #[error("{0}")]
    InvalidArgument(String),
    /// The named task, network or other object does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The object to create exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// The request is valid but cannot be served in the current state.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The driver does not implement this RPC. The agent tolerates this for `Init`/`Shutdown`.
    #[error("{method} is not implemented by this driver")]
    Unimplemented {
        /// The gRPC method name, e.g. `"StartTask"`.
        method: &'static str,
    },
    /// A dependency (e.g. the container runtime) is not reachable right now.
    #[error("{0}")]
    Unavailable(String),
    /// A failure that Nomad may retry (`recoverable = true`) or must not retry
    /// (`recoverable = false`), carried as a `RecoverableError` status detail.
    #[error("{message}")]
    Recoverable {
        /// What went wrong.
        message: String,
        /// Whether retrying may succeed.
        recoverable: bool,
    },
    /// Any other failure, with its cause.
    #[error("{context}")]
    Internal {
        /// What the driver was doing.
        context: String,
        /// Why it failed.
        #[source]
        source: Option<BoxError>,
    },
}

impl PluginError {
    /// A transient failure: Nomad retries the operation (e.g. restarts the task).
    pub fn recoverable(message: impl Into<String>) -> Self {
        PluginError::Recoverable {
            message: message.into(),
            recoverable: true,
        }
    }

    /// An internal error with a cause.
    pub fn internal(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        PluginError::Internal {
            context: context.into(),
            source: Some(source.into()),
        }
    }

    /// The "not implemented" error for `method`.
    pub fn unimplemented(method: &'static str) -> Self {
        PluginError::Unimplemented { method }
    }

    /// The gRPC status code this error maps to.
    pub fn code(&self) -> tonic::Code {
        match self {
            PluginError::InvalidArgument(_) => tonic::Code::InvalidArgument,
            PluginError::NotFound(_) => tonic::Code::NotFound,
            PluginError::AlreadyExists(_) => tonic::Code::AlreadyExists,
            PluginError::FailedPrecondition(_) | PluginError::Recoverable { .. } => {
                tonic::Code::FailedPrecondition
            }
            PluginError::Unimplemented { .. } => tonic::Code::Unimplemented,
            PluginError::Unavailable(_) => tonic::Code::Unavailable,
            PluginError::Internal { .. } => tonic::Code::Internal,
        }
    }
}

/// `err` followed by every cause, `": "`-separated: the one rendering of an error chain (what an
/// operator sees in Nomad, the CLI and the log). A cause whose text already ends the rendering so
/// far is skipped, for foreign errors (hyper, io) that repeat their source in their own text.
pub fn error_chain(err: &dyn StdError) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The `google.rpc.Status` bytes Nomad decodes from `grpc-status-details-bin`: `details[0]` is
/// an `Any` holding a [`structs::RecoverableError`].
pub fn recoverable_status_details(code: tonic::Code, message: &str, recoverable: bool) -> Vec<u8> {
    let detail = prost_types::Any {
        type_url: RECOVERABLE_ERROR_TYPE_URL.to_owned(),
        value: structs::RecoverableError { recoverable }.encode_to_vec(),
    };
    RpcStatus {
        code: code as i32,
        message: message.to_owned(),
        details: vec![detail],
    }
    .encode_to_vec()
}

impl From<PluginError> for tonic::Status {
    fn from(err: PluginError) -> Self {
        let code = err.code();
        let message = error_chain(&err);
        match err {
            PluginError::Recoverable { recoverable, .. } => {
                let details = recoverable_status_details(code, &message, recoverable);
                tonic::Status::with_details(code, message, details.into())
            }
            _ => tonic::Status::new(code, message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_show_their_cause() {
        let io = std::io::Error::other("disk on fire");
        let status = tonic::Status::from(PluginError::internal("writing state", io));
        assert_eq!(status.code(), tonic::Code::Internal);
        assert_eq!(status.message(), "writing state: disk on fire");
    }

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct Layer {
        text: &'static str,
        #[source]
        source: Option<Box<Layer>>,
    }

    fn layers(texts: &[&'static str]) -> Layer {
        texts
            .iter()
            .rev()
            .fold(None, |source, text| {
                Some(Layer {
                    text,
                    source: source.map(Box::new),
                })
            })
            .expect("at least one layer")
    }

    #[test]
    fn error_chain_joins_every_cause_once() {
        assert_eq!(error_chain(&layers(&["a"])), "a");
        assert_eq!(error_chain(&layers(&["a", "b", "c"])), "a: b: c");
        // A foreign error that repeats its source in its own text: the repeat is not shown twice.
        assert_eq!(
            error_chain(&layers(&["connect: refused", "refused"])),
            "connect: refused"
        );
    }

    #[test]
    fn unimplemented_names_the_method() {
        let status = tonic::Status::from(PluginError::unimplemented("StartTask"));
        assert_eq!(status.code(), tonic::Code::Unimplemented);
        assert_eq!(
            status.message(),
            "StartTask is not implemented by this driver"
        );
        assert!(status.details().is_empty());
    }

    #[test]
    fn recoverable_errors_carry_the_nomad_detail() {
        let status = tonic::Status::from(PluginError::recoverable("boom"));
        assert_eq!(status.code(), tonic::Code::FailedPrecondition);
        let decoded = RpcStatus::decode(status.details()).expect("details decode");
        assert_eq!(decoded.code, 9);
        assert_eq!(decoded.message, "boom");
        assert_eq!(decoded.details[0].type_url, RECOVERABLE_ERROR_TYPE_URL);
        let inner = structs::RecoverableError::decode(decoded.details[0].value.as_slice())
            .expect("detail decodes");
        assert!(inner.recoverable);
    }
}
