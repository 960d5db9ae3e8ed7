//! Outputs of policy calls, validated, as plain Rust values.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::selection::InputSelection;

/// Which world a policy implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyKind {
    /// `classify`: does a container belong to a Nomad allocation here?
    Ownership,
    /// `decide`: what to do with an orphan.
    Kill,
}

impl PolicyKind {
    /// The WIT world name.
    pub fn world(self) -> &'static str {
        match self {
            Self::Ownership => "ownership",
            Self::Kill => "kill",
        }
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.world())
    }
}

/// What a policy says about itself (`describe()`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyInfo {
    pub name: String,
    pub version: String,
    /// The contract version it was built against.
    pub contract_version: String,
    /// The inputs it reads; the host sends nothing else.
    pub reads: InputSelection,
}

/// Whether a container belongs to Nomad on this node.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Ownership {
    /// Created by Nomad on this node for this allocation.
    Owned { alloc_id: String },
    /// Not a Nomad container of this node.
    NotNomad,
    /// The policy cannot tell; treated like `NotNomad`.
    Unknown,
    /// Inspect the container (fill in its env) and ask again.
    NeedInspect,
}

/// One validated answer of an ownership policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub ownership: Ownership,
    pub reason: String,
}

/// A signal a kill policy may ask for, by its POSIX name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Signal {
    Hup,
    Int,
    Quit,
    Kill,
    Usr1,
    Usr2,
    Term,
    Alrm,
    Stop,
    Cont,
    Winch,
}

impl Signal {
    const ALL: [Signal; 11] = [
        Self::Hup,
        Self::Int,
        Self::Quit,
        Self::Kill,
        Self::Usr1,
        Self::Usr2,
        Self::Term,
        Self::Alrm,
        Self::Stop,
        Self::Cont,
        Self::Winch,
    ];

    /// The name Docker accepts, such as `SIGTERM`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Hup => "SIGHUP",
            Self::Int => "SIGINT",
            Self::Quit => "SIGQUIT",
            Self::Kill => "SIGKILL",
            Self::Usr1 => "SIGUSR1",
            Self::Usr2 => "SIGUSR2",
            Self::Term => "SIGTERM",
            Self::Alrm => "SIGALRM",
            Self::Stop => "SIGSTOP",
            Self::Cont => "SIGCONT",
            Self::Winch => "SIGWINCH",
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A signal name that is not in [`Signal`]'s list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown signal name {0:?} (expected a name such as SIGTERM)")]
pub struct UnknownSignal(pub String);

impl FromStr for Signal {
    type Err = UnknownSignal;

    /// Accepts `SIGTERM` or `TERM` (upper case, as Docker spells them).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bare = s.strip_prefix("SIG").unwrap_or(s);
        Self::ALL
            .into_iter()
            .find(|sig| &sig.name()[3..] == bare)
            .ok_or_else(|| UnknownSignal(s.to_owned()))
    }
}

impl TryFrom<String> for Signal {
    type Error = UnknownSignal;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<Signal> for String {
    fn from(signal: Signal) -> Self {
        signal.name().to_owned()
    }
}

/// What to do with a candidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ActionKind {
    /// Leave it alone.
    Ignore,
    /// Send `signal`, wait up to `timeout`, SIGKILL; then remove if asked.
    Stop {
        signal: Signal,
        #[serde(with = "duration_ms", rename = "timeout_ms")]
        timeout: Duration,
        then_remove: bool,
    },
    /// Send `signal` and nothing else.
    Kill { signal: Signal },
    /// Remove the container (`force` kills it first if running).
    Remove { force: bool },
}

/// One validated answer of a kill policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    pub kind: ActionKind,
    pub reason: String,
}

impl Action {
    /// Whether this action changes anything.
    pub fn is_destructive(&self) -> bool {
        !matches!(self.kind, ActionKind::Ignore)
    }
}

/// Serialises a [`Duration`] as whole milliseconds.
mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names_parse_with_and_without_prefix() {
        assert_eq!("SIGTERM".parse::<Signal>(), Ok(Signal::Term));
        assert_eq!("KILL".parse::<Signal>(), Ok(Signal::Kill));
        assert_eq!(
            "sigterm".parse::<Signal>().unwrap_err().to_string(),
            "unknown signal name \"sigterm\" (expected a name such as SIGTERM)"
        );
        assert!("SIGBOGUS".parse::<Signal>().is_err());
        assert!("".parse::<Signal>().is_err());
        assert!("SIG".parse::<Signal>().is_err());
    }

    #[test]
    fn actions_and_verdicts_round_trip_through_json() {
        let action = Action {
            kind: ActionKind::Stop {
                signal: Signal::Term,
                timeout: Duration::from_secs(30),
                then_remove: true,
            },
            reason: "orphan".into(),
        };
        let json = serde_json::to_string(&action).unwrap();
        assert_eq!(
            json,
            r#"{"kind":{"kind":"stop","signal":"SIGTERM","timeout_ms":30000,"then_remove":true},"reason":"orphan"}"#
        );
        assert_eq!(serde_json::from_str::<Action>(&json).unwrap(), action);

        let verdict = Verdict {
            ownership: Ownership::Owned {
                alloc_id: "a".into(),
            },
            reason: "label".into(),
        };
        let json = serde_json::to_string(&verdict).unwrap();
        assert_eq!(
            json,
            r#"{"ownership":{"kind":"owned","alloc_id":"a"},"reason":"label"}"#
        );
        assert_eq!(serde_json::from_str::<Verdict>(&json).unwrap(), verdict);
        assert!(
            serde_json::from_str::<Action>(
                r#"{"kind":{"kind":"kill","signal":"SIGNOPE"},"reason":""}"#
            )
            .is_err()
        );
    }
}
