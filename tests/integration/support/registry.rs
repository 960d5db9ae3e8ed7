//! A real image registry for pull tests: Debian's `docker-registry` (the CNCF distribution
//! registry) on a free loopback port, with its own config file and storage in a temporary
//! directory, optionally behind htpasswd authentication. Docker talks plain HTTP to
//! `127.0.0.1` registries, so no TLS is involved.
//!
//! [`Registry::push_unique`] builds a small image unique to the test (the busybox root file
//! system with a label naming the case, so its id is shared with no other image), pushes it
//! and deletes the local copy, so the plugin really has to pull it. Dropping the [`Registry`]
//! kills the registry process, removes every image reference pushed or pulled through it and
//! deletes the temporary directory.
//!
//! [`ThrottleProxy`] sits between the daemon and the registry to make a pull slow or stall.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{PushImageOptionsBuilder, RemoveImageOptionsBuilder};
use bytes::Bytes;
use dockhand::docker::{DockerApi, ImportRequest};
use futures::StreamExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// The registry binary of Debian's `docker-registry` package.
pub const REGISTRY_BINARY: &str = "/usr/bin/docker-registry";
/// `htpasswd` of Debian's `apache2-utils`.
pub const HTPASSWD_BINARY: &str = "/usr/bin/htpasswd";

/// How long the registry may take to answer its first request.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running registry on `127.0.0.1:<port>`.
pub struct Registry {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    credentials: Option<(String, String)>,
    docker: Arc<dyn DockerApi>,
    /// Every image reference this registry's tests may have left in the daemon.
    images: Mutex<Vec<String>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("port", &self.port)
            .finish()
    }
}

/// Whether the registry tools are installed; if not, says so loudly (and fails under
/// `DOCKHAND_REQUIRE_DOCKER=1`, like a missing daemon).
pub fn registry_or_skip(test: &str) -> bool {
    let missing: Vec<&str> = [REGISTRY_BINARY, HTPASSWD_BINARY]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let required = std::env::var("DOCKHAND_REQUIRE_DOCKER").is_ok_and(|v| v == "1");
    let message = format!(
        "{test}: {missing:?} not installed (apt-get install docker-registry apache2-utils)"
    );
    assert!(!required, "{message}");
    eprintln!("\n!!!!!!!! SKIPPING {message} !!!!!!!!\n");
    false
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

impl Registry {
    /// Starts a registry; with `credentials`, every request needs them (htpasswd, bcrypt).
    pub async fn start(docker: &Arc<dyn DockerApi>, credentials: Option<(&str, &str)>) -> Self {
        let dir = tempfile::tempdir().expect("registry temp dir");
        let port = free_port();
        let auth = match credentials {
            Some((user, password)) => {
                let htpasswd = dir.path().join("htpasswd");
                let out = Command::new(HTPASSWD_BINARY)
                    .args(["-Bbn", user, password])
                    .output()
                    .expect("run htpasswd");
                assert!(out.status.success(), "htpasswd: {out:?}");
                std::fs::write(&htpasswd, &out.stdout).expect("write htpasswd");
                format!(
                    "auth:\n  htpasswd:\n    realm: dockhand-test\n    path: {}\n",
                    htpasswd.display()
                )
            }
            None => String::new(),
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: dockhand-test\n{auth}",
            dir.path().join("data").display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("write registry config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("registry log");
        let child = Command::new(REGISTRY_BINARY)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let registry = Self {
            child,
            dir,
            port,
            credentials: credentials.map(|(u, p)| (u.to_owned(), p.to_owned())),
            docker: docker.clone(),
            images: Mutex::new(Vec::new()),
        };
        registry.wait_ready().await;
        registry
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)).await {
                let _ = s.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n").await;
                let mut head = [0u8; 12];
                if s.read_exact(&mut head).await.is_ok() && head.starts_with(b"HTTP/1.") {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the registry on port {} never answered; log: {}",
                self.port,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The registry's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A scratch directory removed with the registry (helpers, config files).
    pub fn scratch(&self) -> PathBuf {
        let p = self.dir.path().join("scratch");
        std::fs::create_dir_all(&p).expect("scratch dir");
        p
    }

    /// Also remove `reference` from the daemon when the registry is dropped.
    pub fn track_image(&self, reference: impl Into<String>) {
        self.images
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(reference.into());
    }

    /// Builds an image unique to `case` (and `variant`), pushes it as
    /// `<host>/dockhand-test/<repo>:<tag>` and removes the local copy. Returns the reference
    /// and the image id the pull must produce.
    pub async fn push_unique(
        &self,
        case: &str,
        repo: &str,
        tag: &str,
        variant: &str,
    ) -> (String, String) {
        self.push_unique_with(case, repo, tag, variant, r#"CMD ["/bin/sh"]"#)
            .await
    }

    /// [`Registry::push_unique`] with this `CMD` instruction.
    pub async fn push_unique_with(
        &self,
        case: &str,
        repo: &str,
        tag: &str,
        variant: &str,
        cmd: &str,
    ) -> (String, String) {
        let repository = format!("{}/dockhand-test/{repo}", self.host());
        let reference = format!("{repository}:{tag}");
        self.track_image(reference.clone());
        // A file of its own makes the layer unique too, so the daemon must download it.
        let stamp = format!(
            "{case} {variant} {:?}\n",
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)
        );
        let rootfs = super::image::rootfs_tar_with(&[("etc/dockhand-test", stamp.as_bytes())])
            .unwrap_or_else(|e| panic!("{e}"));
        self.docker
            .import_image(
                ImportRequest {
                    repo: repository.clone(),
                    tag: tag.to_owned(),
                    changes: vec![
                        cmd.to_owned(),
                        "ENV PATH=/bin".to_owned(),
                        format!("LABEL dockhand.test.case={case} dockhand.test.variant={variant}"),
                    ],
                },
                Bytes::from(rootfs),
            )
            .await
            .unwrap_or_else(|e| panic!("import {reference}: {e}"));
        let id = self
            .docker
            .inspect_image(&reference)
            .await
            .unwrap_or_else(|e| panic!("inspect {reference}: {e}"))
            .id
            .unwrap_or_default();
        // By id too: a pulled image keeps a digest reference after its tag is removed.
        self.track_image(id.clone());
        let bollard = Docker::connect_with_local_defaults().expect("bollard client");
        let credentials = self.credentials.as_ref().map(|(u, p)| DockerCredentials {
            username: Some(u.clone()),
            password: Some(p.clone()),
            serveraddress: Some(self.host()),
            ..DockerCredentials::default()
        });
        let options = PushImageOptionsBuilder::new().tag(tag).build();
        let mut push = std::pin::pin!(bollard.push_image(&repository, Some(options), credentials));
        while let Some(item) = push.next().await {
            let info = item.unwrap_or_else(|e| panic!("push {reference}: {e}"));
            if let Some(err) = info.error_detail {
                panic!("push {reference}: {err:?}; registry log: {}", self.log());
            }
        }
        remove_local(&bollard, &reference).await;
        (reference, id)
    }

    /// Whether the daemon has `reference` locally.
    pub async fn is_local(&self, reference: &str) -> bool {
        match self.docker.inspect_image(reference).await {
            Ok(_) => true,
            Err(e) if e.is_not_found() => false,
            Err(e) => panic!("inspect {reference}: {e}"),
        }
    }
}

async fn remove_local(bollard: &Docker, reference: &str) {
    let options = RemoveImageOptionsBuilder::new().force(true).build();
    match bollard.remove_image(reference, Some(options), None).await {
        Ok(_) => {}
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => {}
        Err(e) => panic!("remove local {reference}: {e}"),
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let images =
            std::mem::take(&mut *self.images.lock().unwrap_or_else(PoisonError::into_inner));
        // Drop may run inside the test's runtime and during a panic: clean up on a thread of
        // its own, with its own runtime.
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                eprintln!("registry cleanup: no runtime");
                return;
            };
            rt.block_on(async {
                let Ok(bollard) = Docker::connect_with_local_defaults() else {
                    return;
                };
                let options = RemoveImageOptionsBuilder::new().force(true).build();
                for reference in images {
                    match bollard
                        .remove_image(&reference, Some(options.clone()), None)
                        .await
                    {
                        Ok(_)
                        | Err(bollard::errors::Error::DockerResponseServerError {
                            status_code: 404,
                            ..
                        }) => {}
                        Err(e) => eprintln!("registry cleanup: failed to remove {reference}: {e}"),
                    }
                }
            });
        });
        if cleanup.join().is_err() {
            eprintln!("registry cleanup panicked");
        }
    }
}

/// What a [`ThrottleProxy`] does with the registry's answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttle {
    /// Forward at about [`SLOW_BYTES_PER_SECOND`].
    Slow,
    /// Accept connections and never answer.
    Stall,
}

/// Rate of [`Throttle::Slow`].
pub const SLOW_BYTES_PER_SECOND: usize = 256 * 1024;

const SLOW_CHUNK: usize = 16 * 1024;

/// A TCP proxy on its own loopback port in front of a [`Registry`]; the daemon sees it as a
/// registry of its own (`127.0.0.1:<proxy port>`). Dropping it closes every connection.
pub struct ThrottleProxy {
    port: u16,
    server: tokio::task::JoinHandle<()>,
}

impl ThrottleProxy {
    /// Starts a proxy to `registry` behaving as `mode`.
    pub async fn start(registry: &Registry, mode: Throttle) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let upstream = registry.port();
        let server = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                connections.spawn(async move {
                    if mode == Throttle::Stall {
                        let mut client = client;
                        let mut sink = [0u8; 4096];
                        while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {}
                        return;
                    }
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let up = async move {
                        let _ = tokio::io::copy(&mut cr, &mut sw).await;
                        let _ = sw.shutdown().await;
                    };
                    let down = async move {
                        let mut buf = vec![0u8; SLOW_CHUNK];
                        let pause = Duration::from_secs_f64(
                            SLOW_CHUNK as f64 / SLOW_BYTES_PER_SECOND as f64,
                        );
                        loop {
                            match sr.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    if cw.write_all(&buf[..n]).await.is_err() {
                                        break;
                                    }
                                    tokio::time::sleep(pause).await;
                                }
                            }
                        }
                        let _ = cw.shutdown().await;
                    };
                    tokio::join!(up, down);
                });
            }
        });
        Self { port, server }
    }

    /// `127.0.0.1:<proxy port>`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for ThrottleProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}
