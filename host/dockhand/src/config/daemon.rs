//! `dockhand.daemon`: who else runs containers on the Docker daemon.

/// Who else runs containers on this Docker daemon (`dockhand.daemon`). It bounds which
/// containers any ownership policy may claim: the reconciler refuses an `owned` verdict the
/// container does not bear out (see `reconcile::claims`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DaemonSharing {
    /// `"exclusive"`: this client's dockhand is the only Nomad driver using the daemon. A
    /// container of this node's allocations may be claimed whatever driver created it (e.g.
    /// leftovers of Nomad's builtin driver after a completed migration).
    Exclusive,
    /// `"shared-with-builtin-driver"` (default): Nomad's builtin `docker` driver may run tasks
    /// on the daemon too. A container with Nomad's `alloc_id` label may be claimed only if it
    /// carries dockhand's driver label and this node's node label. Other dockhand clients'
    /// containers carry their own node label, so this is also safe on a daemon shared by
    /// clients that run only dockhand.
    #[default]
    SharedWithBuiltinDriver,
    /// `"shared-by-clients"`: several Nomad clients, with any drivers, use the daemon. As
    /// `shared-with-builtin-driver`, and no container without this node's node label (Nomad's
    /// label-less fallback included) is ever claimed.
    SharedByClients,
}

impl DaemonSharing {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exclusive => "exclusive",
            Self::SharedWithBuiltinDriver => "shared-with-builtin-driver",
            Self::SharedByClients => "shared-by-clients",
        }
    }

    /// The value spelled `text`, if any.
    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Exclusive,
            Self::SharedWithBuiltinDriver,
            Self::SharedByClients,
        ]
        .into_iter()
        .find(|v| v.as_str() == text)
    }
}
