//! Task options that need more than a copy on their way into the create body: the
//! capability delta, `seccomp=<file>` profiles read and inlined, and relative host paths
//! resolved in the task directory (`volumes` with the SELinux label, bind mounts, `load`).

use std::path::Path;

use crate::config::{self, TaskConfig};

/// Resolves a relative host path against the task directory.
pub(super) fn in_task_dir(dir: Option<&Path>, source: &str) -> String {
    match dir {
        Some(dir) if !source.starts_with('/') => dir.join(source).to_string_lossy().into_owned(),
        _ => source.to_owned(),
    }
}

/// `security_opt` as Nomad hands it to Docker: a `seccomp=<file>` profile (other than
/// `unconfined`) is read from the local file and sent as compact JSON. Errors name the key.
pub(super) fn security_opts(opts: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::with_capacity(opts.len());
    for opt in opts {
        let (key, value) = match opt.split_once('=') {
            Some(kv) => kv,
            None if opt == "no-new-privileges" => {
                out.push(opt.clone());
                continue;
            }
            None => opt
                .split_once(':')
                .ok_or_else(|| format!("security_opt: invalid security_opt: {opt:?}"))?,
        };
        if key != "seccomp" || value == "unconfined" {
            out.push(opt.clone());
            continue;
        }
        let text = std::fs::read(value)
            .map_err(|e| format!("security_opt: opening seccomp profile ({value}) failed: {e}"))?;
        let compact = compact_json(&text).map_err(|e| {
            format!("security_opt: compacting json for seccomp profile ({value}) failed: {e}")
        })?;
        out.push(format!("seccomp={compact}"));
    }
    Ok(out)
}

/// `text` without insignificant white space, its members in their original order (Go's
/// `json.Compact`), after checking that it is one JSON value.
fn compact_json(text: &[u8]) -> Result<String, serde_json::Error> {
    serde_json::from_slice::<serde::de::IgnoredAny>(text)?;
    let text = String::from_utf8_lossy(text);
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            in_string = c == '"';
            out.push(c);
        }
    }
    Ok(out)
}

/// The Docker `--cap-add`/`--cap-drop` lists for the task, as Nomad computes them: the
/// delta between Docker's default set and the agent's `allow_caps`, plus the task's own.
pub(super) fn capabilities(
    cfg: &TaskConfig,
    allow_caps: &[String],
) -> Result<(Vec<String>, Vec<String>), String> {
    config::validate::capability_delta(allow_caps, &cfg.cap_add, &cfg.cap_drop).map_err(|missing| {
        format!(
            "cap_add: driver does not allow the following capabilities: {}",
            missing.join(", ")
        )
    })
}

/// `volumes` entries: relative sources resolved in the task directory (named volumes kept
/// when a `volume_driver` is set) and `volumes.selinuxlabel` appended to the mode, as Nomad.
pub(super) fn user_volumes(
    cfg: &TaskConfig,
    dir: Option<&Path>,
    selinux: Option<&str>,
) -> Vec<String> {
    cfg.volumes
        .iter()
        .map(|v| {
            let mut parts = v.splitn(3, ':');
            let (src, dst) = (
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
            );
            let mode = parts.next().unwrap_or_default();
            // With a volume driver the source is the driver's (a volume name); without
            // one a relative source is a path in the task directory.
            let src = if cfg.volume_driver.is_some() {
                src.to_owned()
            } else {
                in_task_dir(dir, src)
            };
            let opts = match (mode.is_empty(), selinux) {
                (false, Some(label)) => format!("{mode},{label}"),
                (false, None) => mode.to_owned(),
                (true, Some(label)) => label.to_owned(),
                (true, None) => String::new(),
            };
            if opts.is_empty() {
                format!("{src}:{dst}")
            } else {
                format!("{src}:{dst}:{opts}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seccomp_profiles_are_inlined_compact_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p.json");
        std::fs::write(&path, "{\n  \"z\": \"a b\",\n  \"a\": [1, \"\\\" x\"]\n}\n")
            .expect("write");
        let opts = vec![
            format!("seccomp={}", path.display()),
            "seccomp=unconfined".to_owned(),
            "no-new-privileges".to_owned(),
            "label:disable".to_owned(),
        ];
        let out = security_opts(&opts).expect("opts");
        assert_eq!(out[0], "seccomp={\"z\":\"a b\",\"a\":[1,\"\\\" x\"]}");
        assert_eq!(&out[1..], &opts[1..]);
        std::fs::write(&path, "{ not json").expect("write");
        let err = security_opts(&opts).expect_err("bad json");
        assert!(err.starts_with("security_opt: compacting json"), "{err}");
        let err = security_opts(&["bogus".to_owned()]).expect_err("bad opt");
        assert_eq!(err, "security_opt: invalid security_opt: \"bogus\"");
    }
}
