//! Registry credentials for a pull, found in Nomad's order; the first source that yields
//! credentials (or fails) wins:
//!
//! 1. the task's `auth { username, password, server_address }` (when any field is set);
//! 2. the agent's `auth.config` Docker config file: its `auths` entry for the registry, then
//!    the registry's `credHelpers` helper, then `credsStore`;
//! 3. the agent's `auth.helper`: `docker-credential-<helper> get`.
//!
//! A helper receives the registry host (`docker.io` for Docker Hub) on stdin and answers
//! `{"Username": …, "Secret": …}`. The config file is read at every pull, as Nomad does, so
//! a rotated file is picked up without a restart.
//!
//! Unlike Nomad, a helper is bounded: it must answer within [`HELPER_TIMEOUT`] with at most
//! [`MAX_HELPER_OUTPUT_BYTES`] on stdout, so a wedged or chatty helper cannot hang or bloat the
//! driver.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::reference::{ImageRef, config_key_hostname};
use crate::config::AuthSources;
use crate::docker::RegistryAuth;

/// Prefix of credential helper executables, looked up in the plugin's `PATH`.
pub const HELPER_PREFIX: &str = "docker-credential-";

/// How long a credential helper may take to answer.
pub const HELPER_TIMEOUT: Duration = Duration::from_secs(60);

/// Most bytes read from a helper's stdout (and, for the error message, its stderr); a helper
/// writing more is refused rather than buffered without bound.
pub const MAX_HELPER_OUTPUT_BYTES: u64 = 64 * 1024;

/// Largest Docker config file read.
pub const MAX_CONFIG_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Why credentials could not be found.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The config file could not be read.
    #[error("Failed to open auth config file: {}", path.display())]
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The config file is larger than [`MAX_CONFIG_FILE_BYTES`].
    #[error("auth config file {} is larger than {MAX_CONFIG_FILE_BYTES} bytes", path.display())]
    ConfigTooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The config file is not a Docker config.
    #[error("Failed to parse auth config file {}", path.display())]
    ConfigParse {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: serde_json::Error,
    },
    /// An `auths` entry's `auth` is not base64 of `user:password`.
    #[error("invalid auth configuration file {}: the `auth` of {key:?} is not base64 of user:password", path.display())]
    ConfigAuthField {
        /// The file.
        path: PathBuf,
        /// The `auths` key.
        key: String,
    },
    /// The helper could not be run.
    #[error("failed to run {helper}")]
    HelperSpawn {
        /// Executable name.
        helper: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The helper exited unsuccessfully.
    #[error("{helper} with input {input:?} failed with stderr: {stderr}")]
    HelperFailed {
        /// Executable name.
        helper: String,
        /// What it was asked for.
        input: String,
        /// Its stderr (bounded).
        stderr: String,
    },
    /// The helper did not answer in time.
    #[error("{helper} did not answer within {after:?}")]
    HelperTimeout {
        /// Executable name.
        helper: String,
        /// The limit.
        after: Duration,
    },
    /// The helper wrote more than [`MAX_HELPER_OUTPUT_BYTES`].
    #[error("{helper} wrote more than {MAX_HELPER_OUTPUT_BYTES} bytes")]
    HelperOutputTooLarge {
        /// Executable name.
        helper: String,
    },
    /// The helper's answer is not the expected JSON object.
    #[error("{helper} answered something that is not a JSON object of strings")]
    HelperOutput {
        /// Executable name.
        helper: String,
        /// Cause.
        #[source]
        source: serde_json::Error,
    },
}

/// Credentials for pulling `image`: the task's, else the agent's sources (see the module
/// docs). `Ok(None)` means "pull anonymously".
pub async fn resolve(
    task: Option<&RegistryAuth>,
    sources: &AuthSources,
    image: &ImageRef,
) -> Result<Option<RegistryAuth>, AuthError> {
    if let Some(auth) = task.filter(|a| !is_empty(a)) {
        return Ok(Some(auth.clone()));
    }
    if let Some(path) = &sources.config
        && let Some(auth) = from_config_file(path, image).await?
    {
        return Ok(Some(auth));
    }
    match &sources.helper {
        Some(helper) => from_helper(helper, image).await,
        None => Ok(None),
    }
}

fn is_empty(a: &RegistryAuth) -> bool {
    let blank = |v: &Option<String>| v.as_deref().is_none_or(str::is_empty);
    blank(&a.username)
        && blank(&a.password)
        && blank(&a.server_address)
        && blank(&a.identity_token)
        && blank(&a.registry_token)
}

/// A Docker CLI config file: the parts credentials come from.
#[derive(Debug, Default, Deserialize)]
struct DockerConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
    registrytoken: Option<String>,
}

async fn from_config_file(
    path: &Path,
    image: &ImageRef,
) -> Result<Option<RegistryAuth>, AuthError> {
    let read_err = |source| AuthError::ConfigRead {
        path: path.to_owned(),
        source,
    };
    let file = tokio::fs::File::open(path).await.map_err(read_err)?;
    let mut text = Vec::new();
    file.take(MAX_CONFIG_FILE_BYTES + 1)
        .read_to_end(&mut text)
        .await
        .map_err(read_err)?;
    if text.len() as u64 > MAX_CONFIG_FILE_BYTES {
        return Err(AuthError::ConfigTooLarge {
            path: path.to_owned(),
        });
    }
    let config: DockerConfigFile =
        serde_json::from_slice(&text).map_err(|source| AuthError::ConfigParse {
            path: path.to_owned(),
            source,
        })?;

    let key = image.config_key();
    let entry = config.auths.get_key_value(&key).or_else(|| {
        // Docker Hub matches its exact key only; other registries also match legacy keys
        // such as `https://host/v1/`.
        (image.registry() != super::reference::DOCKER_HUB)
            .then(|| {
                config
                    .auths
                    .iter()
                    .find(|(k, _)| config_key_hostname(k) == key)
            })
            .flatten()
    });
    if let Some((entry_key, entry)) = entry {
        let (mut username, mut password) = (entry.username.clone(), entry.password.clone());
        if let Some(encoded) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
            let pair = decode_basic(encoded).ok_or_else(|| AuthError::ConfigAuthField {
                path: path.to_owned(),
                key: entry_key.clone(),
            })?;
            (username, password) = (Some(pair.0), Some(pair.1));
        }
        let auth = RegistryAuth {
            username,
            password,
            server_address: Some(entry_key.clone()),
            identity_token: entry.identitytoken.clone(),
            registry_token: entry.registrytoken.clone(),
        };
        let has_credentials = [
            &auth.username,
            &auth.password,
            &auth.identity_token,
            &auth.registry_token,
        ]
        .iter()
        .any(|v| v.as_deref().is_some_and(|s| !s.is_empty()));
        if has_credentials {
            return Ok(Some(auth));
        }
    }
    if let Some(helper) = config.cred_helpers.get(&key).filter(|h| !h.is_empty())
        && let Some(auth) = from_helper(helper, image).await?
    {
        return Ok(Some(auth));
    }
    match config.creds_store.as_deref().filter(|h| !h.is_empty()) {
        Some(store) => from_helper(store, image).await,
        None => Ok(None),
    }
}

/// Runs `docker-credential-<helper> get` with the registry host on stdin.
async fn from_helper(helper: &str, image: &ImageRef) -> Result<Option<RegistryAuth>, AuthError> {
    let program = format!("{HELPER_PREFIX}{helper}");
    let registry = image.registry();
    let run = run_helper(&program, &registry, &image.original);
    let stdout = tokio::time::timeout(HELPER_TIMEOUT, run)
        .await
        .map_err(|_| AuthError::HelperTimeout {
            helper: program.clone(),
            after: HELPER_TIMEOUT,
        })??;
    let answer: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&stdout).map_err(|source| AuthError::HelperOutput {
            helper: program.clone(),
            source,
        })?;
    let field = |k: &str| {
        answer
            .get(k)
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let (username, password) = (field("Username"), field("Secret"));
    if username.is_none() && password.is_none() {
        return Ok(None);
    }
    Ok(Some(RegistryAuth {
        username,
        password,
        ..RegistryAuth::default()
    }))
}

async fn run_helper(program: &str, registry: &str, image: &str) -> Result<Vec<u8>, AuthError> {
    let mut child = tokio::process::Command::new(program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| AuthError::HelperSpawn {
            helper: program.to_owned(),
            source,
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading its input is judged by its exit status.
        let _ = stdin.write_all(registry.as_bytes()).await;
    }
    let bounded = |pipe: Option<tokio::process::ChildStdout>| async move {
        let mut out = Vec::new();
        if let Some(p) = pipe {
            let _ = p
                .take(MAX_HELPER_OUTPUT_BYTES + 1)
                .read_to_end(&mut out)
                .await;
        }
        out
    };
    let stderr_pipe = child.stderr.take();
    let stderr_read = async move {
        let mut out = Vec::new();
        if let Some(p) = stderr_pipe {
            let _ = p.take(MAX_HELPER_OUTPUT_BYTES).read_to_end(&mut out).await;
        }
        out
    };
    let (stdout, stderr) = tokio::join!(bounded(child.stdout.take()), stderr_read);
    if stdout.len() as u64 > MAX_HELPER_OUTPUT_BYTES {
        return Err(AuthError::HelperOutputTooLarge {
            helper: program.to_owned(),
        });
    }
    let status = child
        .wait()
        .await
        .map_err(|source| AuthError::HelperSpawn {
            helper: program.to_owned(),
            source,
        })?;
    if !status.success() {
        return Err(AuthError::HelperFailed {
            helper: program.to_owned(),
            input: image.to_owned(),
            stderr: String::from_utf8_lossy(&stderr).trim().to_owned(),
        });
    }
    Ok(stdout)
}

/// Decodes a config file's `auth`: standard base64 (padding optional) of `user:password`.
fn decode_basic(encoded: &str) -> Option<(String, String)> {
    let mut bits: u32 = 0;
    let mut nbits = 0u32;
    let mut out = Vec::with_capacity(encoded.len() * 3 / 4);
    for c in encoded.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(v);
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push(u8::try_from((bits >> nbits) & 0xff).ok()?);
        }
    }
    let text = String::from_utf8(out).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.trim_matches('\0').to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn creds(user: &str, password: &str) -> (Option<String>, Option<String>) {
        (Some(user.to_owned()), Some(password.to_owned()))
    }

    #[test]
    fn basic_auth_fields_decode() {
        // base64("alice:s3cret")
        assert_eq!(
            decode_basic("YWxpY2U6czNjcmV0"),
            Some(("alice".into(), "s3cret".into()))
        );
        // base64("bob:pa:ss") with padding
        assert_eq!(
            decode_basic("Ym9iOnBhOnNz"),
            Some(("bob".into(), "pa:ss".into()))
        );
        assert_eq!(decode_basic("YQ=="), None, "no colon");
        assert_eq!(decode_basic("!!"), None);
    }

    #[tokio::test]
    async fn task_auth_wins_and_an_empty_task_block_falls_through() {
        let dir = tempfile::tempdir().unwrap();
        let config = write(
            dir.path(),
            "config.json",
            r#"{"auths":{"127.0.0.1:5000":{"auth":"YWxpY2U6czNjcmV0"}}}"#,
        );
        let sources = AuthSources {
            config: Some(config),
            helper: None,
        };
        let image = ImageRef::parse("127.0.0.1:5000/app");
        let task = RegistryAuth {
            username: Some("t".into()),
            password: Some("p".into()),
            ..RegistryAuth::default()
        };
        let got = resolve(Some(&task), &sources, &image)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.username.as_deref(), Some("t"));
        let got = resolve(Some(&RegistryAuth::default()), &sources, &image)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((got.username, got.password), creds("alice", "s3cret"));
        assert_eq!(got.server_address.as_deref(), Some("127.0.0.1:5000"));
    }

    #[tokio::test]
    async fn legacy_keys_match_other_registries_but_not_docker_hub() {
        let dir = tempfile::tempdir().unwrap();
        let config = write(
            dir.path(),
            "config.json",
            r#"{"auths":{"https://quay.io/v1/":{"username":"q","password":"w"},
                         "https://index.docker.io/v1/":{"username":"hub","password":"h"}}}"#,
        );
        let sources = AuthSources {
            config: Some(config),
            helper: None,
        };
        let quay = resolve(None, &sources, &ImageRef::parse("quay.io/a/b"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((quay.username, quay.password), creds("q", "w"));
        let hub = resolve(None, &sources, &ImageRef::parse("redis"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((hub.username, hub.password), creds("hub", "h"));
        let none = resolve(None, &sources, &ImageRef::parse("ghcr.io/x/y"))
            .await
            .unwrap();
        assert_eq!(none, None);
    }

    #[tokio::test]
    async fn config_file_problems_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let image = ImageRef::parse("127.0.0.1:5000/app");
        let missing = AuthSources {
            config: Some(dir.path().join("nope.json")),
            helper: None,
        };
        let err = resolve(None, &missing, &image).await.unwrap_err();
        assert!(
            err.to_string()
                .starts_with("Failed to open auth config file: "),
            "{err}"
        );
        let garbage = AuthSources {
            config: Some(write(dir.path(), "bad.json", "{not json")),
            helper: None,
        };
        let err = resolve(None, &garbage, &image).await.unwrap_err();
        assert!(
            err.to_string()
                .starts_with("Failed to parse auth config file "),
            "{err}"
        );
        let bad_auth = AuthSources {
            config: Some(write(
                dir.path(),
                "auth.json",
                r#"{"auths":{"127.0.0.1:5000":{"auth":"%%%"}}}"#,
            )),
            helper: None,
        };
        let err = resolve(None, &bad_auth, &image).await.unwrap_err();
        assert!(
            err.to_string().contains("is not base64 of user:password"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn the_config_file_comes_before_the_agent_helper() {
        let dir = tempfile::tempdir().unwrap();
        let config = write(
            dir.path(),
            "config.json",
            r#"{"auths":{"127.0.0.1:5000":{"username":"u","password":"p"}}}"#,
        );
        // The helper does not exist: asking it would fail.
        let sources = AuthSources {
            config: Some(config),
            helper: Some("dockhand-test-none-such".into()),
        };
        let got = resolve(None, &sources, &ImageRef::parse("127.0.0.1:5000/app"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((got.username, got.password), creds("u", "p"));
        // No entry for this registry: the helper is asked, and its failure is the answer.
        let err = resolve(None, &sources, &ImageRef::parse("127.0.0.1:6000/app"))
            .await
            .unwrap_err();
        assert!(matches!(err, AuthError::HelperSpawn { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_missing_helper_is_an_error_naming_it() {
        let sources = AuthSources {
            config: None,
            helper: Some("dockhand-test-none-such".into()),
        };
        let err = resolve(None, &sources, &ImageRef::parse("redis"))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to run docker-credential-dockhand-test-none-such"
        );
    }
}
