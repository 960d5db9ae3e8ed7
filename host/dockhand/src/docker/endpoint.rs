//! Where the daemon is and how long each call may take.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::DockerError;

/// The default endpoint on Unix hosts.
pub const DEFAULT_ENDPOINT: &str = "unix:///var/run/docker.sock";

/// TLS client material for a `tcp://` endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Client certificate (PEM).
    pub cert: PathBuf,
    /// Client key (PEM).
    pub key: PathBuf,
    /// CA bundle (PEM) that signed the daemon's certificate.
    pub ca: PathBuf,
}

/// Per-call deadlines. Defaults are deliberately generous: a slow but live daemon must not be
/// mistaken for a dead one, while a wedged one must not hang the caller forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DockerTimeouts {
    /// Deadline of ordinary request/response calls (inspect, list, kill, …).
    pub request: Duration,
    /// Deadline of container create and start: Nomad's client timeout (5 minutes), since a
    /// busy daemon (large volumes, slow storage drivers) may take that long.
    pub create_start: Duration,
    /// Added to a stop's grace period to get the stop call's deadline.
    pub stop_margin: Duration,
    /// Deadline of `docker load` and `docker import`.
    pub image_transfer: Duration,
    /// Deadline of attaching to an exec (`exec start`). Log, stats and pull streams are
    /// bounded by their consumers (log re-follow, stats sampling, the pull watchdog).
    pub exec_attach: Duration,
}

impl Default for DockerTimeouts {
    fn default() -> Self {
        Self {
            request: Duration::from_secs(60),
            create_start: Duration::from_secs(300),
            stop_margin: Duration::from_secs(30),
            image_transfer: Duration::from_secs(600),
            exec_attach: Duration::from_secs(60),
        }
    }
}

/// How to reach the daemon: the plugin's `endpoint` and `tls` settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerConnection {
    /// `unix:///path`, `tcp://host:port`, `http://…` or `https://…`. `None` means `DOCKER_HOST`,
    /// or [`DEFAULT_ENDPOINT`] when that is unset.
    pub endpoint: Option<String>,
    /// TLS material; used only for `tcp://`/`https://` endpoints.
    pub tls: Option<TlsFiles>,
    /// Per-call deadlines.
    pub timeouts: DockerTimeouts,
}

/// A connection with the environment applied: the concrete transport to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolvedEndpoint {
    /// A Unix socket path.
    Unix(PathBuf),
    /// Plain HTTP to `host:port`.
    Http(String),
    /// HTTPS with client certificates to `host:port`.
    Https(String, TlsFiles),
}

impl DockerConnection {
    /// A connection to an explicit endpoint.
    pub fn to_endpoint(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: Some(endpoint.into()),
            ..Self::default()
        }
    }

    /// Resolves the endpoint against `DOCKER_HOST`, `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH`.
    pub fn resolve(&self) -> Result<ResolvedEndpoint, DockerError> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let (endpoint, tls) = match &self.endpoint {
            Some(e) => (e.clone(), self.tls.clone()),
            None => {
                let endpoint = env("DOCKER_HOST").unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
                let tls = if env("DOCKER_TLS_VERIFY").is_some() {
                    let dir = env("DOCKER_CERT_PATH")
                        .map(PathBuf::from)
                        .or_else(|| env("HOME").map(|h| Path::new(&h).join(".docker")));
                    dir.map(|d| TlsFiles {
                        cert: d.join("cert.pem"),
                        key: d.join("key.pem"),
                        ca: d.join("ca.pem"),
                    })
                } else {
                    None
                };
                (endpoint, tls)
            }
        };
        resolve_endpoint(&endpoint, tls)
    }
}

fn resolve_endpoint(
    endpoint: &str,
    tls: Option<TlsFiles>,
) -> Result<ResolvedEndpoint, DockerError> {
    let invalid = |reason: &str| DockerError::InvalidEndpoint {
        endpoint: endpoint.to_owned(),
        reason: reason.to_owned(),
    };
    if let Some(path) = endpoint.strip_prefix("unix://") {
        if path.is_empty() {
            return Err(invalid("the unix socket path is empty"));
        }
        return Ok(ResolvedEndpoint::Unix(PathBuf::from(path)));
    }
    let (addr, wants_tls) = if let Some(a) = endpoint.strip_prefix("tcp://") {
        (a, tls.is_some())
    } else if let Some(a) = endpoint.strip_prefix("http://") {
        (a, false)
    } else if let Some(a) = endpoint.strip_prefix("https://") {
        (a, true)
    } else {
        return Err(invalid(
            "unsupported scheme; expected unix://, tcp://, http:// or https://",
        ));
    };
    if addr.is_empty() {
        return Err(invalid("the address is empty"));
    }
    if wants_tls {
        let tls = tls.ok_or_else(|| invalid("https:// needs tls cert, key and ca files"))?;
        Ok(ResolvedEndpoint::Https(addr.to_owned(), tls))
    } else {
        Ok(ResolvedEndpoint::Http(addr.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_endpoint_resolves_to_its_path() {
        let c = DockerConnection::to_endpoint("unix:///tmp/d.sock");
        assert_eq!(
            c.resolve().unwrap(),
            ResolvedEndpoint::Unix(PathBuf::from("/tmp/d.sock"))
        );
    }

    #[test]
    fn tcp_with_tls_files_is_https() {
        let tls = TlsFiles {
            cert: "c".into(),
            key: "k".into(),
            ca: "a".into(),
        };
        let c = DockerConnection {
            endpoint: Some("tcp://127.0.0.1:2376".into()),
            tls: Some(tls.clone()),
            ..DockerConnection::default()
        };
        assert_eq!(
            c.resolve().unwrap(),
            ResolvedEndpoint::Https("127.0.0.1:2376".into(), tls)
        );
        let plain = DockerConnection::to_endpoint("tcp://127.0.0.1:2375");
        assert_eq!(
            plain.resolve().unwrap(),
            ResolvedEndpoint::Http("127.0.0.1:2375".into())
        );
    }

    #[test]
    fn bad_endpoints_are_rejected_with_the_reason() {
        let err = DockerConnection::to_endpoint("ftp://x")
            .resolve()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid docker endpoint \"ftp://x\": unsupported scheme; expected unix://, tcp://, http:// or https://"
        );
        let err = DockerConnection::to_endpoint("https://h:1")
            .resolve()
            .unwrap_err();
        assert!(
            err.to_string().contains("needs tls cert, key and ca"),
            "{err}"
        );
        assert!(DockerConnection::to_endpoint("unix://").resolve().is_err());
    }
}
