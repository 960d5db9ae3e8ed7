//! A Nomad-faithful plugin host for tests: launches the built plugin binary the way the
//! Nomad agent (go-plugin) does and talks to it over its unix socket.
//!
//! * environment: the test's whole environment plus the magic cookie, `PLUGIN_MIN_PORT`,
//!   `PLUGIN_MAX_PORT` and `PLUGIN_PROTOCOL_VERSIONS=2`; `TMPDIR` points at a private
//!   directory per launch so socket clean-up can be checked;
//! * the first stdout line is the handshake, read with a timeout; later stdout is kept (it
//!   must stay empty);
//! * every stderr line is kept and can be parsed as hclog JSON;
//! * the gRPC channel is plaintext HTTP/2 over the unix socket (what grpc-go does);
//! * dropping a [`Plugin`] kills the process.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use nomad_plugin::handshake::{MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE};
use nomad_plugin::proto::base::base_plugin_client::BasePluginClient;
use nomad_plugin::proto::drivers::driver_client::DriverClient;
use nomad_plugin::proto::drivers::{FingerprintRequest, FingerprintResponse};
use nomad_plugin::proto::plugin::grpc_broker_client::GrpcBrokerClient;
use nomad_plugin::proto::plugin::grpc_controller_client::GrpcControllerClient;
use nomad_plugin::proto::plugin::grpc_stdio_client::GrpcStdioClient;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic_health::pb::health_client::HealthClient;

/// How long the handshake may take in tests (Nomad allows a minute).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);

/// The plugin binary under test.
pub fn plugin_binary() -> &'static str {
    env!("CARGO_BIN_EXE_nomad-driver-dockhand")
}

/// How to launch the plugin.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    args: Vec<String>,
    env: Vec<(String, String)>,
    remove: Vec<String>,
}

/// Output of a process that exited by itself.
#[derive(Debug)]
pub struct Exited {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Launch {
    /// Exactly what a Nomad agent does.
    pub fn nomad() -> Self {
        Launch::default()
    }

    /// An extra argument (from the agent's `plugin "x" { args = [...] }`).
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }

    /// Sets (or overrides) an environment variable.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Removes an environment variable (e.g. the cookie).
    pub fn without(mut self, key: &str) -> Self {
        self.remove.push(key.to_owned());
        self
    }

    fn command(&self, tmpdir: &Path) -> Command {
        let mut cmd = Command::new(plugin_binary());
        cmd.args(&self.args)
            .env(MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE)
            .env("PLUGIN_MIN_PORT", "10000")
            .env("PLUGIN_MAX_PORT", "25000")
            .env("PLUGIN_PROTOCOL_VERSIONS", "2")
            .env("TMPDIR", tmpdir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for k in &self.remove {
            cmd.env_remove(k);
        }
        cmd
    }

    /// Runs a process that is expected to exit on its own (refusals) within `timeout`.
    pub fn run_to_exit(&self, timeout: Duration) -> Exited {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut child = self.command(tmp.path()).spawn().expect("spawn plugin");
        let status = wait_exit(&mut child, timeout).unwrap_or_else(|| {
            let _ = child.kill();
            panic!("plugin did not exit within {timeout:?}");
        });
        let mut stdout = String::new();
        let mut stderr = String::new();
        use std::io::Read as _;
        child
            .stdout
            .take()
            .expect("stdout")
            .read_to_string(&mut stdout)
            .expect("read stdout");
        child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut stderr)
            .expect("read stderr");
        Exited {
            status,
            stdout,
            stderr,
        }
    }

    /// [`Launch::start`] plus the long-lived instance's `SetConfig`, as the agent's L3 launch
    /// does: this msgpack plugin config (empty for all defaults) and the agent's
    /// `nomad_config`.
    pub async fn start_configured(&self, msgpack_config: Vec<u8>) -> Plugin {
        let plugin = self.start().await;
        plugin
            .base()
            .set_config(nomad_plugin::proto::base::SetConfigRequest {
                msgpack_config,
                nomad_config: Some(nomad_plugin::proto::base::NomadConfig {
                    driver: Some(nomad_plugin::proto::base::NomadDriverConfig {
                        client_max_port: 14512,
                        client_min_port: 14000,
                        topology: None,
                    }),
                }),
                plugin_api_version: "v0.1.0".to_owned(),
            })
            .await
            .expect("SetConfig");
        plugin
    }

    /// Starts the plugin, reads the handshake and dials the socket.
    pub async fn start(&self) -> Plugin {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut child = self.command(tmp.path()).spawn().expect("spawn plugin");

        let stderr_lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = Arc::clone(&stderr_lines);
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().expect("stderr lock").push(line);
            }
        });

        let stdout_rest: Arc<Mutex<Vec<String>>> = Arc::default();
        let rest = Arc::clone(&stdout_rest);
        let stdout = child.stdout.take().expect("stdout");
        let (first_tx, first_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next();
            let _ = first_tx.send(first);
            for line in lines {
                let Ok(line) = line else { break };
                rest.lock().expect("stdout lock").push(line);
            }
        });

        let first = tokio::task::spawn_blocking(move || first_rx.recv_timeout(HANDSHAKE_TIMEOUT))
            .await
            .expect("join");
        let handshake = match first {
            Ok(Some(Ok(line))) => line,
            other => {
                let _ = child.kill();
                let status = child.wait().ok();
                panic!(
                    "no handshake line ({other:?}); exit status {status:?}; stderr: {:?}",
                    stderr_lines.lock().expect("stderr lock")
                );
            }
        };
        let fields: Vec<&str> = handshake.split('|').collect();
        assert!(fields.len() >= 4, "malformed handshake {handshake:?}");
        assert_eq!(fields[2], "unix", "network in {handshake:?}");
        let socket = PathBuf::from(fields[3]);
        let channel = connect_unix(socket.clone()).await;
        Plugin {
            child,
            handshake,
            socket,
            tmpdir: tmp,
            channel,
            stderr_lines,
            stdout_rest,
        }
    }
}

/// Dials a plugin socket with prior-knowledge HTTP/2.
pub async fn connect_unix(socket: PathBuf) -> Channel {
    // The authority is meaningless over a unix socket (grpc-go uses "unused").
    Endpoint::from_static("http://unused")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await
        .expect("dial plugin socket")
}

fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A running plugin process.
pub struct Plugin {
    child: Child,
    pub handshake: String,
    pub socket: PathBuf,
    pub tmpdir: tempfile::TempDir,
    channel: Channel,
    stderr_lines: Arc<Mutex<Vec<String>>>,
    stdout_rest: Arc<Mutex<Vec<String>>>,
}

impl Plugin {
    pub fn base(&self) -> BasePluginClient<Channel> {
        BasePluginClient::new(self.channel.clone())
    }

    pub fn driver(&self) -> DriverClient<Channel> {
        DriverClient::new(self.channel.clone())
    }

    /// Opens the Fingerprint stream, as the Nomad client does once per driver.
    pub async fn fingerprints(&self) -> tonic::Streaming<FingerprintResponse> {
        self.driver()
            .fingerprint(FingerprintRequest {})
            .await
            .expect("Fingerprint")
            .into_inner()
    }

    pub fn health(&self) -> HealthClient<Channel> {
        HealthClient::new(self.channel.clone())
    }

    pub fn controller(&self) -> GrpcControllerClient<Channel> {
        GrpcControllerClient::new(self.channel.clone())
    }

    pub fn stdio(&self) -> GrpcStdioClient<Channel> {
        GrpcStdioClient::new(self.channel.clone())
    }

    pub fn broker(&self) -> GrpcBrokerClient<Channel> {
        GrpcBrokerClient::new(self.channel.clone())
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid fits i32")
    }

    /// Sends a signal to the plugin process.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal).expect("kill");
    }

    /// SIGKILLs the process, as a crash would, and waits until it is gone.
    pub async fn crash(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGKILL);
        assert!(
            self.wait_exit(Duration::from_secs(10)).await.is_some(),
            "the SIGKILLed plugin is still running"
        );
    }

    /// Waits for the process to exit by itself.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// stderr so far, raw.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr_lines.lock().expect("stderr lock").clone()
    }

    /// stdout after the handshake line.
    pub fn stdout_after_handshake(&self) -> Vec<String> {
        self.stdout_rest.lock().expect("stdout lock").clone()
    }

    /// Every stderr line parsed as JSON; panics naming the first line that is not an object.
    pub fn logs(&self) -> Vec<serde_json::Map<String, serde_json::Value>> {
        self.stderr_lines()
            .iter()
            .map(|line| match serde_json::from_str(line) {
                Ok(serde_json::Value::Object(map)) => map,
                _ => panic!("stderr line is not a JSON object: {line:?}"),
            })
            .collect()
    }

    /// How many log lines have exactly this `@message`.
    pub fn count_logs(&self, message: &str) -> usize {
        self.logs()
            .iter()
            .filter(|l| l.get("@message").and_then(|m| m.as_str()) == Some(message))
            .count()
    }

    /// Waits until a log line with this `@message` appeared.
    pub async fn wait_for_log(&self, message: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.count_logs(message) > 0 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- Task RPC helpers (lifecycle and recovery tests) ------------------------------------

/// A launched plugin that has received the long-lived instance's `SetConfig` (default plugin
/// configuration except `gc.image = false`, `nomad_config` set), as the agent's L3 launch
/// does. Image GC is off so that no test's plugin ever removes the shared test image
/// (`registry::gc` tests it on images of its own).
pub async fn configured_plugin() -> Plugin {
    Launch::nomad()
        .start_configured(agent_config("gc {\n image = false\n}\n"))
        .await
}

/// The msgpack Nomad sends for this `plugin { config { … } }` body.
pub fn agent_config(hcl_body: &str) -> Vec<u8> {
    use nomad_plugin::hcldec::{apply, hcl_value_to_node};
    let value: hcl::Value = hcl::from_str(hcl_body).expect("test config parses");
    let (cty, diags) = apply(
        &dockhand::config::plugin_config_spec(),
        &hcl_value_to_node(&value, None),
    );
    assert!(diags.is_empty(), "{diags:?}");
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, &cty).expect("encode");
    out
}

/// go-cty MessagePack of an object with these attributes (what hcldec hands the driver).
pub fn cty_object(entries: Vec<(&str, rmpv::Value)>) -> Vec<u8> {
    let map = rmpv::Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (rmpv::Value::from(k), v))
            .collect(),
    );
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, &map).expect("encode msgpack");
    out
}

/// A cty `map(string)`.
pub fn cty_string_map(map: &std::collections::BTreeMap<String, String>) -> rmpv::Value {
    rmpv::Value::Map(
        map.iter()
            .map(|(k, v)| (rmpv::Value::from(k.as_str()), rmpv::Value::from(v.as_str())))
            .collect(),
    )
}

/// Creates a FIFO at `path`, mode 0600.
pub fn make_fifo(path: &Path) {
    let made = Command::new("mkfifo")
        .arg("-m")
        .arg("600")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(made.success(), "mkfifo {} failed", path.display());
}

/// A FIFO like the ones logmon serves, with a reader that keeps everything written to it.
pub struct FifoLog {
    pub path: PathBuf,
    text: Arc<Mutex<Vec<u8>>>,
}

impl FifoLog {
    /// Creates the FIFO at `path` and starts reading it.
    pub fn create(path: PathBuf) -> Self {
        make_fifo(&path);
        // Read-write so the open never blocks and the reader never sees EOF between writers.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .expect("open fifo");
        let text: Arc<Mutex<Vec<u8>>> = Arc::default();
        let sink = Arc::clone(&text);
        std::thread::spawn(move || {
            use std::io::Read as _;
            let mut file = file;
            let mut buf = [0u8; 4096];
            while let Ok(n) = file.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().expect("fifo lock").extend_from_slice(&buf[..n]);
            }
        });
        FifoLog { path, text }
    }

    /// Everything read so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.text.lock().expect("fifo lock")).into_owned()
    }

    /// Waits until the output contains `needle`.
    pub async fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.text().contains(needle) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }
}

/// The directories and log FIFOs of one task, as the Nomad client lays them out.
pub struct TaskDirs {
    /// Keeps the directories alive until the test ends.
    _root: tempfile::TempDir,
    pub alloc_dir: PathBuf,
    pub stdout: FifoLog,
    pub stderr: FifoLog,
}

impl TaskDirs {
    /// `<tmp>/alloc` with `alloc/`, `<task>/local`, `<task>/secrets` and the two FIFOs.
    pub fn create(task: &str) -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        let alloc_dir = root.path().join("alloc");
        for dir in [
            alloc_dir.join("alloc").join("logs"),
            alloc_dir.join(task).join("local"),
            alloc_dir.join(task).join("secrets"),
        ] {
            std::fs::create_dir_all(&dir).expect("create task dirs");
        }
        let logs = alloc_dir.join("alloc").join("logs");
        let stdout = FifoLog::create(logs.join(format!(".{task}.stdout.fifo")));
        let stderr = FifoLog::create(logs.join(format!(".{task}.stderr.fifo")));
        TaskDirs {
            _root: root,
            alloc_dir,
            stdout,
            stderr,
        }
    }
}

/// A UUID-shaped allocation id unique to this process and `case`.
pub fn alloc_id_for(case: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in case.bytes().chain(std::process::id().to_le_bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let x = format!("{h:016x}{:016x}", h.rotate_left(29));
    format!(
        "{}-{}-{}-{}-{}",
        &x[0..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}
