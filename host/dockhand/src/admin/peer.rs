//! Who is on the other end of an admin connection: the peer's credentials from `SO_PEERCRED`,
//! attached to every request of the connection so an interceptor can refuse it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UnixStream;
use tonic::transport::server::Connected;

/// The peer's credentials as the kernel recorded them at `connect()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    /// Effective uid of the connecting process; `None` if the kernel could not tell us.
    pub uid: Option<u32>,
    /// Its pid, for logs.
    pub pid: Option<i32>,
}

impl PeerCred {
    /// Reads `SO_PEERCRED` of a connected unix socket.
    pub fn of(stream: &UnixStream) -> Self {
        match getsockopt(stream, PeerCredentials) {
            Ok(cred) => Self {
                uid: Some(cred.uid()),
                pid: Some(cred.pid()),
            },
            Err(errno) => {
                tracing::warn!(error = %errno, "cannot read SO_PEERCRED of an admin connection");
                Self {
                    uid: None,
                    pid: None,
                }
            }
        }
    }
}

/// An accepted admin connection with its peer credentials.
#[derive(Debug)]
pub struct PeerStream {
    inner: UnixStream,
    cred: PeerCred,
}

impl PeerStream {
    /// Wraps an accepted stream, reading its peer credentials once.
    pub fn new(inner: UnixStream) -> Self {
        let cred = PeerCred::of(&inner);
        Self { inner, cred }
    }

    /// The peer's credentials.
    pub fn cred(&self) -> PeerCred {
        self.cred
    }
}

impl Connected for PeerStream {
    type ConnectInfo = PeerCred;

    fn connect_info(&self) -> PeerCred {
        self.cred
    }
}

impl AsyncRead for PeerStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The admission rule: is `cred` one of the permitted uids? The error names the uid.
pub fn check_peer(cred: Option<&PeerCred>, allowed_uids: &[u32]) -> Result<u32, tonic::Status> {
    let Some(uid) = cred.and_then(|c| c.uid) else {
        return Err(tonic::Status::permission_denied(
            "admin API: the peer's uid could not be determined (SO_PEERCRED); refusing",
        ));
    };
    if allowed_uids.contains(&uid) {
        Ok(uid)
    } else {
        let allowed: Vec<String> = allowed_uids.iter().map(u32::to_string).collect();
        Err(tonic::Status::permission_denied(format!(
            "admin API: uid {uid} is not permitted (dockhand.admin.allowed_uids = [{}])",
            allowed.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_uids_pass_and_the_refusal_names_the_uid() {
        let me = PeerCred {
            uid: Some(1000),
            pid: Some(1),
        };
        assert_eq!(check_peer(Some(&me), &[0, 1000]).unwrap(), 1000);
        let err = check_peer(Some(&me), &[0]).unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied);
        assert!(err.message().contains("uid 1000 is not permitted"), "{err}");
        let unknown = PeerCred {
            uid: None,
            pid: None,
        };
        let err = check_peer(Some(&unknown), &[0]).unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied);
        assert!(check_peer(None, &[0]).is_err());
    }

    #[tokio::test]
    async fn peer_credentials_are_our_own_uid() {
        let (a, _b) = UnixStream::pair().unwrap();
        let cred = PeerStream::new(a).cred();
        assert_eq!(cred.uid, Some(nix::unistd::geteuid().as_raw()));
        assert_eq!(cred.pid, Some(std::process::id() as i32));
    }
}
