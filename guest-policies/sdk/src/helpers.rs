//! Lookups over container snapshots, mirroring Nomad's own heuristics.

use crate::labels::ALLOC_MOUNTS;
use crate::{Container, Mount};

/// Value of the label `key`, if present (the last one wins if repeated).
pub fn label<'a>(container: &'a Container, key: &str) -> Option<&'a str> {
    container
        .labels
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Value of the environment variable `name`. `None` both when it is unset and
/// when the environment is not known yet (see [`env_known`]).
pub fn env<'a>(container: &'a Container, name: &str) -> Option<&'a str> {
    container
        .env
        .as_ref()?
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Whether the host has inspected the container and filled in its environment.
pub fn env_known(container: &Container) -> bool {
    container.env.is_some()
}

/// Whether the mounts include `/alloc`, `/local` and `/secrets` (exact match on
/// the destination), as every Nomad task container has.
pub fn has_alloc_mounts(mounts: &[Mount]) -> bool {
    ALLOC_MOUNTS
        .iter()
        .all(|want| mounts.iter().any(|m| m.destination == *want))
}

/// The allocation ID embedded in a Nomad task container name
/// (`/<task>-<alloc uuid>`), if any name has that shape.
///
/// Mirrors Nomad's unanchored `/.*-<lower-case uuid>` pattern: a `/`, then
/// anything, then `-` and a UUID. The last such UUID of the first matching
/// name is returned, since the task name itself may contain dashes.
pub fn nomad_name_alloc_id(names: &[String]) -> Option<&str> {
    names.iter().find_map(|name| name_uuid(name))
}

fn name_uuid(name: &str) -> Option<&str> {
    let slash = name.find('/')?;
    let bytes = name.as_bytes();
    (slash + 1..bytes.len())
        .rev()
        .filter(|&i| bytes[i] == b'-')
        .find_map(|i| {
            name.get(i + 1..i + 37)
                .filter(|candidate| is_uuid(candidate))
        })
}

/// Whether `s` is a lower-case UUID (`8-4-4-4-12` hexadecimal digits).
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}
