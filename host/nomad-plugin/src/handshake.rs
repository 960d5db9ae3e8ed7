//! The go-plugin handshake, as a Nomad agent expects it from a plugin process.
//!
//! The agent starts the plugin with its whole environment plus a few `PLUGIN_*` variables and
//! the magic cookie, then waits (up to a minute) for one line on stdout:
//! `CORE|APP|NETWORK|ADDRESS|PROTOCOL|SERVERCERT`, e.g. `1|2|unix|/tmp/plugin0Ab3/plugin.sock|grpc|`.
//! It dials that address at once, so the line is printed only after the listener is bound.
//!
//! Deliberate choices:
//! * The socket lives in a private directory (mode 0700) created under
//!   `PLUGIN_UNIX_SOCKET_DIR`, else `$TMPDIR`, else `/tmp`. Dropping [`PluginListener`]
//!   removes the socket and the directory.
//! * `PLUGIN_UNIX_SOCKET_GROUP` (numeric gid) makes the socket and directory group-accessible,
//!   as go-plugin does.
//! * Automatic mTLS (`PLUGIN_CLIENT_CERT`) and broker multiplexing (`PLUGIN_MULTIPLEX_GRPC`)
//!   are not implemented; Nomad enables neither. A host asking for mTLS is refused with a clear
//!   error rather than left to fail a TLS handshake.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

/// Name of the environment variable carrying the magic cookie.
pub const MAGIC_COOKIE_KEY: &str = "NOMAD_PLUGIN_MAGIC_COOKIE";
/// Nomad's magic cookie value (unchanged since Nomad 0.9).
pub const MAGIC_COOKIE_VALUE: &str =
    "e4327c2e01eabfd75a8a67adb114fb34a757d57eee7728d857a8cec6e91a7255";
/// go-plugin's core protocol version (field 1 of the handshake line).
pub const CORE_PROTOCOL_VERSION: u32 = 1;
/// Nomad's application protocol version for gRPC plugins (field 2 of the handshake line).
pub const APP_PROTOCOL_VERSION: u32 = 2;

/// Comma-separated app protocol versions the host accepts.
pub const ENV_PROTOCOL_VERSIONS: &str = "PLUGIN_PROTOCOL_VERSIONS";
/// Directory in which to create the socket (go-plugin's `RunnerFunc` sets it).
pub const ENV_UNIX_SOCKET_DIR: &str = "PLUGIN_UNIX_SOCKET_DIR";
/// Group (numeric gid) that should be able to connect to the socket.
pub const ENV_UNIX_SOCKET_GROUP: &str = "PLUGIN_UNIX_SOCKET_GROUP";
/// Set by hosts that want automatic mTLS (not supported).
pub const ENV_CLIENT_CERT: &str = "PLUGIN_CLIENT_CERT";

/// File name of the socket inside the private directory.
const SOCKET_FILE_NAME: &str = "plugin.sock";

/// Why the plugin refuses to start or cannot listen.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// Started by hand (or by something other than a Nomad agent).
    #[error(
        "This binary is a Nomad plugin. It is not meant to be run directly: \
         configure it in a Nomad agent's plugin_dir and the agent will start it \
         ({MAGIC_COOKIE_KEY} is missing or wrong)."
    )]
    NotLaunchedByNomad,
    /// The host offers no protocol version this plugin speaks.
    #[error(
        "{ENV_PROTOCOL_VERSIONS}={offered:?} does not include protocol version \
         {APP_PROTOCOL_VERSION}, the only one this plugin speaks (Nomad 0.9 or newer uses it)"
    )]
    UnsupportedProtocol {
        /// The value of `PLUGIN_PROTOCOL_VERSIONS`.
        offered: String,
    },
    /// The host asked for automatic mTLS.
    #[error("{ENV_CLIENT_CERT} is set: automatic mTLS is not supported by this plugin")]
    MtlsUnsupported,
    /// `PLUGIN_UNIX_SOCKET_GROUP` is not a numeric group id.
    #[error("{ENV_UNIX_SOCKET_GROUP}={value:?} is not a numeric group id")]
    BadSocketGroup {
        /// The offending value.
        value: String,
    },
    /// An environment variable is not valid UTF-8.
    #[error("environment variable {name} is not valid UTF-8")]
    NotUnicode {
        /// The variable.
        name: &'static str,
    },
    /// The private socket directory could not be created.
    #[error("cannot create the plugin socket directory in {dir}")]
    SocketDir {
        /// The parent directory.
        dir: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The socket could not be bound or prepared.
    #[error("cannot listen on {path}")]
    Listen {
        /// The socket path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// What the host asked for, read from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRequest {
    /// The negotiated app protocol version (always [`APP_PROTOCOL_VERSION`]).
    pub app_version: u32,
    /// The parent directory of the private socket directory.
    pub socket_parent: PathBuf,
    /// Group to grant access to the socket.
    pub socket_group: Option<u32>,
}

impl HostRequest {
    /// Checks the process environment.
    pub fn from_env() -> Result<Self, HandshakeError> {
        Self::from_lookup(|name| std::env::var_os(name))
    }

    /// Checks an environment given as a lookup function (for tests and embedding).
    ///
    /// The cookie is checked first, so a human starting the binary by hand gets the friendly
    /// explanation rather than a protocol error.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<OsString>) -> Result<Self, HandshakeError> {
        let text = |name: &'static str| -> Result<Option<String>, HandshakeError> {
            lookup(name)
                .map(|v| {
                    v.into_string()
                        .map_err(|_| HandshakeError::NotUnicode { name })
                })
                .transpose()
        };

        if lookup(MAGIC_COOKIE_KEY).as_deref() != Some(std::ffi::OsStr::new(MAGIC_COOKIE_VALUE)) {
            return Err(HandshakeError::NotLaunchedByNomad);
        }

        // Without the variable (very old hosts) go-plugin falls back to the configured
        // version, which for Nomad is 2.
        if let Some(offered) = text(ENV_PROTOCOL_VERSIONS)? {
            let speaks = offered
                .split(',')
                .filter_map(|v| v.trim().parse::<u32>().ok())
                .any(|v| v == APP_PROTOCOL_VERSION);
            if !speaks {
                return Err(HandshakeError::UnsupportedProtocol { offered });
            }
        }

        if lookup(ENV_CLIENT_CERT).is_some_and(|v| !v.is_empty()) {
            return Err(HandshakeError::MtlsUnsupported);
        }

        let socket_group = match text(ENV_UNIX_SOCKET_GROUP)?.filter(|v| !v.is_empty()) {
            None => None,
            Some(value) => Some(
                value
                    .trim()
                    .parse::<u32>()
                    .map_err(|_| HandshakeError::BadSocketGroup { value })?,
            ),
        };

        let socket_parent = lookup(ENV_UNIX_SOCKET_DIR)
            .filter(|v| !v.is_empty())
            .or_else(|| lookup("TMPDIR").filter(|v| !v.is_empty()))
            .map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);

        Ok(HostRequest {
            app_version: APP_PROTOCOL_VERSION,
            socket_parent,
            socket_group,
        })
    }
}

/// A bound unix listener inside its private directory; dropping it removes both.
#[derive(Debug)]
pub struct PluginListener {
    listener: UnixListener,
    path: PathBuf,
    // Declared last so the directory outlives the listener during drop.
    dir: tempfile::TempDir,
}

impl PluginListener {
    /// Creates the private directory and binds the socket in it.
    ///
    /// Must be called from within a tokio runtime.
    pub fn bind(request: &HostRequest) -> Result<Self, HandshakeError> {
        let mode = if request.socket_group.is_some() {
            0o750
        } else {
            0o700
        };
        let dir = tempfile::Builder::new()
            .prefix("plugin")
            .permissions(std::fs::Permissions::from_mode(mode))
            .tempdir_in(&request.socket_parent)
            .map_err(|source| HandshakeError::SocketDir {
                dir: request.socket_parent.clone(),
                source,
            })?;
        let path = dir.path().join(SOCKET_FILE_NAME);
        let listen_err = |source| HandshakeError::Listen {
            path: path.clone(),
            source,
        };
        let listener = UnixListener::bind(&path).map_err(listen_err)?;
        if let Some(gid) = request.socket_group {
            std::os::unix::fs::chown(dir.path(), None, Some(gid)).map_err(listen_err)?;
            std::os::unix::fs::chown(&path, None, Some(gid)).map_err(listen_err)?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660))
                .map_err(listen_err)?;
        }
        Ok(PluginListener {
            listener,
            path,
            dir,
        })
    }

    /// The socket path announced in the handshake line.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The private directory holding the socket.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Splits into the listener (for the server) and a guard that removes the socket and its
    /// directory when dropped.
    pub fn into_parts(self) -> (UnixListener, SocketGuard) {
        (
            self.listener,
            SocketGuard {
                path: self.path,
                _dir: self.dir,
            },
        )
    }
}

/// Removes the socket and its private directory on drop.
#[derive(Debug)]
pub struct SocketGuard {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl SocketGuard {
    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The handshake line (without the trailing newline) for a unix socket.
///
/// Six fields with an empty server-certificate field, exactly as Go plugins print it; a
/// seventh field is never emitted because older hosts split into at most six.
pub fn handshake_line(app_version: u32, socket: &Path) -> String {
    format!(
        "{CORE_PROTOCOL_VERSION}|{app_version}|unix|{}|grpc|",
        socket.display()
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn missing_or_wrong_cookie_is_refused_first() {
        let err = HostRequest::from_lookup(env(&[(ENV_PROTOCOL_VERSIONS, "1")])).unwrap_err();
        assert!(matches!(err, HandshakeError::NotLaunchedByNomad));
        let err = HostRequest::from_lookup(env(&[(MAGIC_COOKIE_KEY, "nope")])).unwrap_err();
        assert!(err.to_string().contains("not meant to be run directly"));
    }

    #[test]
    fn protocol_versions_must_include_two() {
        let ok = HostRequest::from_lookup(env(&[
            (MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE),
            (ENV_PROTOCOL_VERSIONS, "1, 2,x"),
        ]))
        .expect("2 is offered");
        assert_eq!(ok.app_version, 2);
        let err = HostRequest::from_lookup(env(&[
            (MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE),
            (ENV_PROTOCOL_VERSIONS, "1,3"),
        ]))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "PLUGIN_PROTOCOL_VERSIONS=\"1,3\" does not include protocol version 2, the only one \
             this plugin speaks (Nomad 0.9 or newer uses it)"
        );
    }

    #[test]
    fn socket_dir_prefers_plugin_variable_over_tmpdir() {
        let req = HostRequest::from_lookup(env(&[
            (MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE),
            (ENV_UNIX_SOCKET_DIR, "/run/x"),
            ("TMPDIR", "/var/tmp"),
        ]))
        .expect("valid");
        assert_eq!(req.socket_parent, PathBuf::from("/run/x"));
        let req = HostRequest::from_lookup(env(&[
            (MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE),
            ("TMPDIR", "/var/tmp"),
        ]))
        .expect("valid");
        assert_eq!(req.socket_parent, PathBuf::from("/var/tmp"));
    }

    #[test]
    fn line_has_six_fields_and_a_trailing_bar() {
        let line = handshake_line(2, Path::new("/tmp/plugin1/plugin.sock"));
        assert_eq!(line, "1|2|unix|/tmp/plugin1/plugin.sock|grpc|");
    }
}
