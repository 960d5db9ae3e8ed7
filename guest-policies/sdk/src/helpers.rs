//! Lookups over container snapshots, mirroring Nomad's own heuristics.

use crate::batch::ContainerRef;
use crate::labels::ALLOC_MOUNTS;

/// Whether the mounts include `/alloc`, `/local` and `/secrets` (exact match on
/// the destination), as every Nomad task container has.
pub fn has_alloc_mounts(container: &ContainerRef<'_>) -> bool {
    let mut seen = [false; ALLOC_MOUNTS.len()];
    for mount in container.mounts() {
        if let Some(i) = ALLOC_MOUNTS.iter().position(|m| *m == mount.destination) {
            seen[i] = true;
        }
    }
    seen.iter().all(|s| *s)
}

/// The allocation ID embedded in a Nomad task container name
/// (`/<task>-<alloc uuid>`), if any name has that shape.
///
/// Mirrors Nomad's unanchored `/.*-<lower-case uuid>` pattern: a `/`, then
/// anything, then `-` and a UUID. The last such UUID of the first matching
/// name is returned, since the task name itself may contain dashes.
pub fn nomad_name_alloc_id<'a>(container: &ContainerRef<'a>) -> Option<&'a str> {
    container.names().find_map(name_uuid)
}

/// [`nomad_name_alloc_id`] over plain names.
pub fn name_alloc_id<'a, I>(names: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    names.into_iter().find_map(name_uuid)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_pattern_matches_like_nomads_regex() {
        let uuid = "72bfa388-024e-a903-45b8-2bc28b74ed69";
        let name = |n: String| name_alloc_id([n.as_str()]).map(str::to_owned);
        assert_eq!(name(format!("/redis-{uuid}")).as_deref(), Some(uuid));
        assert_eq!(name(format!("/my-task-{uuid}")).as_deref(), Some(uuid));
        assert_eq!(name(format!("/nomad_init_{uuid}")), None);
        assert_eq!(name(format!("redis-{uuid}")), None);
        assert_eq!(name("/serene_keller".into()), None);
        assert!(is_uuid(uuid));
        assert!(!is_uuid(&uuid.to_uppercase()));
    }
}
