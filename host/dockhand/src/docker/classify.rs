//! Turning bollard's errors into [`DockerError`] classes callers can act on.

use std::time::Duration;

use bollard::errors::Error as BollardError;

use super::DockerError;

/// The deadline reported when bollard's own (effectively disabled) timeout fires.
pub(super) const BOLLARD_TIMEOUT: Duration =
    Duration::from_secs(super::client::BOLLARD_TIMEOUT_SECS);

/// Classifies a bollard error.
pub(super) fn map_error(err: BollardError) -> DockerError {
    match err {
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => match status_code {
            404 => DockerError::NotFound { message },
            409 => DockerError::Conflict { message },
            status => DockerError::Api { status, message },
        },
        BollardError::RequestTimeoutError => DockerError::Timeout {
            operation: "http request",
            after: BOLLARD_TIMEOUT,
        },
        BollardError::SocketNotFoundError(path) => DockerError::Unavailable {
            message: format!("socket {path} does not exist"),
        },
        BollardError::DockerStreamError { error } => DockerError::Stream { message: error },
        e @ (BollardError::JsonDataError { .. } | BollardError::JsonSerdeError { .. }) => {
            DockerError::Decode {
                message: e.to_string(),
            }
        }
        e @ (BollardError::HyperLegacyError { .. }
        | BollardError::HyperResponseError { .. }
        | BollardError::IOError { .. }) => DockerError::Unavailable {
            message: nomad_plugin::error_chain(&e),
        },
        e @ (BollardError::CertPathError { .. }
        | BollardError::CertParseError { .. }
        | BollardError::CertMultipleKeys { .. }
        | BollardError::UnsupportedURISchemeError { .. }) => DockerError::InvalidEndpoint {
            // The caller knows the endpoint and fills it in.
            endpoint: String::new(),
            reason: e.to_string(),
        },
        other => DockerError::Api {
            status: 0,
            message: nomad_plugin::error_chain(&other),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_are_classified_by_status() {
        let e = |status_code| BollardError::DockerResponseServerError {
            status_code,
            message: "m".into(),
        };
        assert!(map_error(e(404)).is_not_found());
        assert!(map_error(e(409)).is_conflict());
        assert_eq!(
            map_error(e(500)),
            DockerError::Api {
                status: 500,
                message: "m".into()
            }
        );
        assert!(map_error(e(500)).is_transient());
        assert!(!map_error(e(400)).is_transient());
    }

    #[test]
    fn missing_socket_is_unavailable() {
        let e = map_error(BollardError::SocketNotFoundError("/nope".into()));
        assert_eq!(
            e.to_string(),
            "docker daemon unavailable: socket /nope does not exist"
        );
        assert!(e.is_transient());
    }
}
