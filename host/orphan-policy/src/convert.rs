//! Validation of everything a guest returns, into the domain types.
//!
//! Outputs are untrusted: each check here turns a malformed answer into an
//! [`OutputError`], which fails the whole batch. (Inputs are packed in
//! `pack.rs`.)

use std::time::Duration;

use crate::bindings::wit;
use crate::decision::{Action, ActionKind, Ownership, PolicyInfo, Signal, UnknownSignal, Verdict};
use crate::limits::{
    MAX_ALLOC_ID_BYTES, MAX_POLICY_INFO_FIELD_BYTES, MAX_REASON_BYTES, MAX_STOP_TIMEOUT,
};
use crate::selection::InputSelection;

/// Why one entry of a policy's answer was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputError {
    /// `owned("")`.
    #[error("owned verdict has an empty allocation ID")]
    EmptyAllocId,
    /// An allocation ID longer than [`MAX_ALLOC_ID_BYTES`].
    #[error("allocation ID is {len} bytes, more than the {max} allowed")]
    AllocIdTooLong { len: usize, max: usize },
    /// An allocation ID with spaces, control or non-ASCII characters.
    #[error("allocation ID {0:?} contains characters other than printable ASCII")]
    AllocIdInvalid(String),
    /// A reason longer than [`MAX_REASON_BYTES`].
    #[error("reason is {len} bytes, more than the {max} allowed")]
    ReasonTooLong { len: usize, max: usize },
    /// A signal name the host does not know.
    #[error(transparent)]
    UnknownSignal(#[from] UnknownSignal),
    /// A stop timeout above [`MAX_STOP_TIMEOUT`].
    #[error("stop timeout of {timeout_ms} ms exceeds the {max_ms} ms allowed")]
    StopTimeoutTooLong { timeout_ms: u64, max_ms: u128 },
    /// A `describe()` field that is empty or too long.
    #[error("policy-info field `{field}` {problem}")]
    PolicyInfoField {
        field: &'static str,
        problem: &'static str,
    },
    /// A `describe()` input selection that cannot be honoured.
    #[error("input-selection for {input} is invalid: {problem}")]
    Selection {
        input: &'static str,
        problem: String,
    },
}

impl TryFrom<wit::Verdict> for Verdict {
    type Error = OutputError;

    fn try_from(v: wit::Verdict) -> Result<Self, Self::Error> {
        let ownership = match v.ownership {
            wit::Ownership::Owned(alloc_id) => Ownership::Owned {
                alloc_id: alloc_id_from_guest(alloc_id)?,
            },
            wit::Ownership::NotNomad => Ownership::NotNomad,
            wit::Ownership::Unknown => Ownership::Unknown,
            wit::Ownership::NeedInspect => Ownership::NeedInspect,
        };
        Ok(Self {
            ownership,
            reason: reason_from_guest(v.reason)?,
        })
    }
}

impl TryFrom<wit::Action> for Action {
    type Error = OutputError;

    fn try_from(a: wit::Action) -> Result<Self, Self::Error> {
        let kind = match a.kind {
            wit::ActionKind::Ignore => ActionKind::Ignore,
            wit::ActionKind::Stop(spec) => {
                let timeout = Duration::from_millis(spec.timeout_ms);
                if timeout > MAX_STOP_TIMEOUT {
                    return Err(OutputError::StopTimeoutTooLong {
                        timeout_ms: spec.timeout_ms,
                        max_ms: MAX_STOP_TIMEOUT.as_millis(),
                    });
                }
                ActionKind::Stop {
                    signal: spec.signal.parse::<Signal>()?,
                    timeout,
                    then_remove: spec.then_remove,
                }
            }
            wit::ActionKind::Kill(signal) => ActionKind::Kill {
                signal: signal.parse()?,
            },
            wit::ActionKind::Remove(spec) => ActionKind::Remove { force: spec.force },
        };
        Ok(Self {
            kind,
            reason: reason_from_guest(a.reason)?,
        })
    }
}

impl TryFrom<wit::PolicyInfo> for PolicyInfo {
    type Error = OutputError;

    fn try_from(info: wit::PolicyInfo) -> Result<Self, Self::Error> {
        Ok(Self {
            name: info_field("name", info.name)?,
            version: info_field("version", info.version)?,
            contract_version: info_field("contract-version", info.contract_version)?,
            reads: InputSelection::try_from(info.reads)?,
        })
    }
}

fn alloc_id_from_guest(id: String) -> Result<String, OutputError> {
    if id.is_empty() {
        return Err(OutputError::EmptyAllocId);
    }
    if id.len() > MAX_ALLOC_ID_BYTES {
        return Err(OutputError::AllocIdTooLong {
            len: id.len(),
            max: MAX_ALLOC_ID_BYTES,
        });
    }
    if !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(OutputError::AllocIdInvalid(id));
    }
    Ok(id)
}

/// Bounds a reason and replaces control characters (terminal escapes, new
/// lines) so it is safe to log.
fn reason_from_guest(reason: String) -> Result<String, OutputError> {
    if reason.len() > MAX_REASON_BYTES {
        return Err(OutputError::ReasonTooLong {
            len: reason.len(),
            max: MAX_REASON_BYTES,
        });
    }
    Ok(sanitize(reason))
}

fn info_field(field: &'static str, value: String) -> Result<String, OutputError> {
    if value.is_empty() {
        return Err(OutputError::PolicyInfoField {
            field,
            problem: "is empty",
        });
    }
    if value.len() > MAX_POLICY_INFO_FIELD_BYTES {
        return Err(OutputError::PolicyInfoField {
            field,
            problem: "is longer than 256 bytes",
        });
    }
    Ok(sanitize(value))
}

/// Replaces control characters with spaces.
pub(crate) fn sanitize(s: String) -> String {
    // Printable ASCII (nearly every reason) needs no decoding.
    let printable_ascii = s.bytes().all(|b| (0x20..0x7f).contains(&b));
    if !printable_ascii && s.chars().any(char::is_control) {
        s.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_are_validated() {
        let owned = |id: &str| wit::Verdict {
            ownership: wit::Ownership::Owned(id.into()),
            reason: "r".into(),
        };
        assert_eq!(
            Verdict::try_from(owned("alloc-1")).unwrap().ownership,
            Ownership::Owned {
                alloc_id: "alloc-1".into()
            }
        );
        assert_eq!(Verdict::try_from(owned("")), Err(OutputError::EmptyAllocId));
        assert!(matches!(
            Verdict::try_from(owned(&"a".repeat(129))),
            Err(OutputError::AllocIdTooLong { len: 129, .. })
        ));
        assert!(matches!(
            Verdict::try_from(owned("a b")),
            Err(OutputError::AllocIdInvalid(_))
        ));
        let long = wit::Verdict {
            ownership: wit::Ownership::Unknown,
            reason: "x".repeat(MAX_REASON_BYTES + 1),
        };
        assert_eq!(
            Verdict::try_from(long).unwrap_err().to_string(),
            "reason is 1025 bytes, more than the 1024 allowed"
        );
        let escapes = wit::Verdict {
            ownership: wit::Ownership::NeedInspect,
            reason: "a\x1b[31mb\nc".into(),
        };
        let v = Verdict::try_from(escapes).unwrap();
        assert_eq!(v.reason, "a [31mb c");
        assert_eq!(v.ownership, Ownership::NeedInspect);
    }

    #[test]
    fn actions_are_validated() {
        let stop = |signal: &str, timeout_ms| wit::Action {
            kind: wit::ActionKind::Stop(wit::StopSpec {
                signal: signal.into(),
                timeout_ms,
                then_remove: true,
            }),
            reason: "r".into(),
        };
        assert_eq!(
            Action::try_from(stop("SIGTERM", 30_000)).unwrap().kind,
            ActionKind::Stop {
                signal: Signal::Term,
                timeout: Duration::from_secs(30),
                then_remove: true
            }
        );
        assert!(matches!(
            Action::try_from(stop("SIGBOGUS", 1)),
            Err(OutputError::UnknownSignal(_))
        ));
        assert!(matches!(
            Action::try_from(stop("SIGTERM", 3_600_000)),
            Err(OutputError::StopTimeoutTooLong {
                timeout_ms: 3_600_000,
                ..
            })
        ));
        let kill = wit::Action {
            kind: wit::ActionKind::Kill("KILL".into()),
            reason: String::new(),
        };
        assert_eq!(
            Action::try_from(kill).unwrap().kind,
            ActionKind::Kill {
                signal: Signal::Kill
            }
        );
        let remove = wit::Action {
            kind: wit::ActionKind::Remove(wit::RemoveSpec { force: true }),
            reason: String::new(),
        };
        assert_eq!(
            Action::try_from(remove).unwrap().kind,
            ActionKind::Remove { force: true }
        );
        let ignore = wit::Action {
            kind: wit::ActionKind::Ignore,
            reason: "fine".into(),
        };
        assert!(!Action::try_from(ignore).unwrap().is_destructive());
    }

    #[test]
    fn policy_info_is_validated() {
        let info = |name: &str| wit::PolicyInfo {
            name: name.into(),
            version: "1".into(),
            contract_version: "0.3.0".into(),
            reads: wit::InputSelection {
                names: true,
                image: false,
                labels: wit::KeySelection::Only(vec!["a".into()]),
                env: wit::KeySelection::Only(vec![]),
                mounts: wit::MountSelection::All,
            },
        };
        assert_eq!(PolicyInfo::try_from(info("p")).unwrap().name, "p");
        assert_eq!(
            PolicyInfo::try_from(info("")).unwrap_err().to_string(),
            "policy-info field `name` is empty"
        );
        assert!(PolicyInfo::try_from(info(&"n".repeat(300))).is_err());
        let reads = PolicyInfo::try_from(info("p")).unwrap().reads;
        assert_eq!(reads.to_string(), "names, labels [a], mounts");
        let mut bad = info("p");
        bad.reads.env = wit::KeySelection::Only(vec!["A*B".into()]);
        assert_eq!(
            PolicyInfo::try_from(bad).unwrap_err().to_string(),
            "input-selection for env is invalid: `A*B` has a `*` before its end"
        );
    }
}
