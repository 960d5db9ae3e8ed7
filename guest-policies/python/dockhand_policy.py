"""Helpers for dockhand policies written in Python.

The Python counterpart of the Rust SDK (`dockhand-policy-sdk`): read a batch's
packed strings through container views, build verdicts, actions and the
input selection, and log. Standard library only; it needs the bindings that
`componentize-py` generates from `wit/` (the `wit_world` package), so it works
in both worlds (`ownership` and `kill`).

    import dockhand_policy as dp

    class WitWorld(wit_world.WitWorld):
        def describe(self):
            return dp.policy_info("my-policy", "0.1.0",
                                  dp.reads().names().labels(dp.ALLOC_ID))

        def classify(self, ctx, batch):
            return [dp.owned(c.label(dp.ALLOC_ID), "label") if c.label(dp.ALLOC_ID)
                    else dp.not_nomad("no label") for c in dp.containers(batch)]

See docs/policy-authoring.md.
"""

from typing import Iterator, List, NamedTuple, Optional, Tuple

from wit_world.imports import log as _log
from wit_world.imports import types as t

#: Version of the `dockhand:policy` contract these helpers implement.
CONTRACT_VERSION = "0.3.0"

# Label keys and environment names Nomad puts on task containers.
ALLOC_ID = "com.hashicorp.nomad.alloc_id"
NODE_ID = "com.hashicorp.nomad.node_id"
NODE_NAME = "com.hashicorp.nomad.node_name"
JOB_NAME = "com.hashicorp.nomad.job_name"
JOB_ID = "com.hashicorp.nomad.job_id"
TASK_GROUP_NAME = "com.hashicorp.nomad.task_group_name"
TASK_NAME = "com.hashicorp.nomad.task_name"
NAMESPACE = "com.hashicorp.nomad.namespace"
ENV_ALLOC_ID = "NOMAD_ALLOC_ID"
ENV_DATACENTER = "NOMAD_DC"
#: Mount destinations every Nomad task container has.
ALLOC_MOUNTS = ("/alloc", "/local", "/secrets")

State = t.ContainerState


class Strings:
    """A batch's `string-table`: string `i` is the byte range
    `text[ends[i-1]..ends[i]]` of the UTF-8 text."""

    __slots__ = ("_text", "_bytes", "_ends")

    def __init__(self, table: t.StringTable):
        self._ends = table.ends
        if table.text.isascii():
            # Byte offsets are character offsets: slice the str directly.
            self._text, self._bytes = table.text, None
        else:
            self._text, self._bytes = None, table.text.encode("utf-8")

    def __len__(self) -> int:
        return len(self._ends)

    def get(self, i: int) -> str:
        start = self._ends[i - 1] if i else 0
        if self._bytes is None:
            return self._text[start : self._ends[i]]
        return self._bytes[start : self._ends[i]].decode("utf-8")

    def run(self, run: t.StrRun) -> List[str]:
        return [self.get(i) for i in range(run.first, run.first + run.count)]


class Mount(NamedTuple):
    source: str
    destination: str
    #: `bind`, `volume`, `tmpfs`, ...
    kind: str


class Container:
    """One container of a batch, its strings resolved on demand."""

    __slots__ = ("_s", "raw")

    def __init__(self, strings: Strings, raw: t.Container):
        self._s = strings
        self.raw = raw

    @property
    def id(self) -> str:
        return self._s.get(self.raw.id)

    @property
    def names(self) -> List[str]:
        """Names as Docker lists them, each with its leading `/`."""
        return self._s.run(self.raw.names)

    @property
    def image(self) -> str:
        return self._s.get(self.raw.image)

    def labels(self) -> List[Tuple[str, str]]:
        """Selected labels as `(key, value)` pairs, sorted by key."""
        return _pairs(self._s, self.raw.labels)

    def label(self, key: str) -> Optional[str]:
        """Value of label `key` (bisecting: labels are sorted by key)."""
        s, run = self._s, self.raw.labels
        lo, hi = 0, run.count // 2
        while lo < hi:
            mid = (lo + hi) // 2
            k = s.get(run.first + 2 * mid)
            if k < key:  # code-point order is UTF-8 byte order
                lo = mid + 1
            elif k > key:
                hi = mid
            else:
                return s.get(run.first + 2 * mid + 1)
        return None

    @property
    def env_known(self) -> bool:
        """Whether the host has inspected the container and sent its env."""
        return self.raw.env is not None

    def env_pairs(self) -> Optional[List[Tuple[str, str]]]:
        """Environment as `(name, value)` pairs, `None` until inspected."""
        return None if self.raw.env is None else _pairs(self._s, self.raw.env)

    def env(self, name: str) -> Optional[str]:
        """Value of variable `name` (the last one wins if repeated). `None`
        both when it is unset and when the environment is not known."""
        run = self.raw.env
        if run is None:
            return None
        s = self._s
        for i in range(run.first + run.count - 2, run.first - 1, -2):
            if s.get(i) == name:
                return s.get(i + 1)
        return None

    def mounts(self) -> List[Mount]:
        s, run = self._s, self.raw.mounts
        return [
            Mount(s.get(i), s.get(i + 1), s.get(i + 2))
            for i in range(run.first, run.first + run.count - 2, 3)
        ]

    @property
    def created_ms(self) -> int:
        return self.raw.created_ms

    @property
    def started_ms(self) -> Optional[int]:
        return self.raw.started_ms

    @property
    def state(self) -> t.ContainerState:
        return self.raw.state

    @property
    def exit_code(self) -> Optional[int]:
        return self.raw.exit_code


class Candidate(NamedTuple):
    """One candidate of a kill batch."""

    container: Container
    #: The ownership verdict that made it a candidate.
    ownership: t.Ownership

    @property
    def alloc_id(self) -> Optional[str]:
        """The allocation it belongs to, if it was judged `owned`."""
        o = self.ownership
        return o.value if isinstance(o, t.Ownership_Owned) else None


def _pairs(s: Strings, run: t.StrRun) -> List[Tuple[str, str]]:
    return [(s.get(i), s.get(i + 1)) for i in range(run.first, run.first + run.count - 1, 2)]


def containers(batch: t.ContainerBatch) -> Iterator[Container]:
    """The containers of an ownership batch, in input order."""
    strings = Strings(batch.strings)
    return (Container(strings, raw) for raw in batch.containers)


def candidates(batch: t.CandidateBatch) -> Iterator[Candidate]:
    """The candidates of a kill batch, in input order."""
    strings = Strings(batch.strings)
    return (Candidate(Container(strings, c.container), c.ownership) for c in batch.candidates)


# Nomad's heuristics.


def is_uuid(s: str) -> bool:
    """Whether `s` is a lower-case UUID (`8-4-4-4-12` hexadecimal digits)."""
    if len(s) != 36:
        return False
    for i, ch in enumerate(s):
        if i in (8, 13, 18, 23):
            if ch != "-":
                return False
        elif not ("0" <= ch <= "9" or "a" <= ch <= "f"):
            return False
    return True


def name_alloc_id(name: str) -> Optional[str]:
    """The allocation ID in a Nomad task container name (`/<task>-<uuid>`).

    Nomad's unanchored `/.*-<uuid>` pattern: a `/`, anything, `-` and a
    lower-case UUID; the last such UUID wins (task names may contain dashes).
    """
    slash = name.find("/")
    if slash < 0:
        return None
    i = name.rfind("-", slash + 1)
    while i > slash:
        candidate = name[i + 1 : i + 37]
        if is_uuid(candidate):
            return candidate
        i = name.rfind("-", slash + 1, i)
    return None


def nomad_name_alloc_id(c: Container) -> Optional[str]:
    """The allocation ID of the first name with Nomad's task-name shape."""
    for name in c.names:
        found = name_alloc_id(name)
        if found is not None:
            return found
    return None


def has_alloc_mounts(c: Container) -> bool:
    """Whether the mounts include `/alloc`, `/local` and `/secrets` (exact
    destinations), as every Nomad task container has."""
    destinations = {m.destination for m in c.mounts()}
    return all(m in destinations for m in ALLOC_MOUNTS)


# Verdicts (ownership policies).


def owned(alloc_id: str, reason: str) -> t.Verdict:
    """Created by Nomad on this node for allocation `alloc_id`."""
    return t.Verdict(t.Ownership_Owned(alloc_id), reason)


def not_nomad(reason: str) -> t.Verdict:
    return t.Verdict(t.Ownership_NotNomad(), reason)


def unknown(reason: str) -> t.Verdict:
    """The policy cannot tell; the host treats it like `not_nomad`."""
    return t.Verdict(t.Ownership_Unknown(), reason)


def need_inspect(reason: str) -> t.Verdict:
    """Ask the host to inspect the container and call again with its env."""
    return t.Verdict(t.Ownership_NeedInspect(), reason)


# Actions (kill policies).


def ignore(reason: str) -> t.Action:
    return t.Action(t.ActionKind_Ignore(), reason)


def stop(signal: str, timeout_ms: int, then_remove: bool, reason: str) -> t.Action:
    """Send `signal`, wait up to `timeout_ms`, then SIGKILL (and remove)."""
    return t.Action(t.ActionKind_Stop(t.StopSpec(signal, timeout_ms, then_remove)), reason)


def kill(signal: str, reason: str) -> t.Action:
    return t.Action(t.ActionKind_Kill(signal), reason)


def remove(force: bool, reason: str) -> t.Action:
    return t.Action(t.ActionKind_Remove(t.RemoveSpec(force)), reason)


# Input selection and self-description.


class reads:
    """Builds the `input-selection` a policy declares; starts from nothing.

    `reads().names().mount_destinations().labels(ALLOC_ID).env(ENV_ALLOC_ID)`
    A key ending in `*` selects every key with that prefix.
    """

    def __init__(self) -> None:
        self._names = self._image = False
        self._labels: Optional[List[str]] = []
        self._env: Optional[List[str]] = []
        self._mounts = t.MountSelection.NONE

    @classmethod
    def everything(cls) -> "reads":
        r = cls().names().image().all_labels().all_env().mounts()
        return r

    def names(self) -> "reads":
        self._names = True
        return self

    def image(self) -> "reads":
        self._image = True
        return self

    def mounts(self) -> "reads":
        self._mounts = t.MountSelection.ALL
        return self

    def mount_destinations(self) -> "reads":
        if self._mounts != t.MountSelection.ALL:
            self._mounts = t.MountSelection.DESTINATIONS
        return self

    def labels(self, *keys: str) -> "reads":
        if self._labels is not None:
            self._labels.extend(keys)
        return self

    def all_labels(self) -> "reads":
        self._labels = None
        return self

    def env(self, *names: str) -> "reads":
        if self._env is not None:
            self._env.extend(names)
        return self

    def all_env(self) -> "reads":
        self._env = None
        return self

    def build(self) -> t.InputSelection:
        def keys(k: Optional[List[str]]) -> t.KeySelection:
            return t.KeySelection_All() if k is None else t.KeySelection_Only(list(k))

        return t.InputSelection(
            self._names, self._image, keys(self._labels), keys(self._env), self._mounts
        )


def policy_info(name: str, version: str, selection: "reads") -> t.PolicyInfo:
    """What `describe` returns: name, version, contract and inputs read."""
    return t.PolicyInfo(name, version, CONTRACT_VERSION, selection.build())


# Logging (bounded and rate-limited by the host, never above `info`).


def trace(message: str) -> None:
    _log.log(_log.Level.TRACE, message)


def debug(message: str) -> None:
    _log.log(_log.Level.DEBUG, message)


def info(message: str) -> None:
    _log.log(_log.Level.INFO, message)


def warn(message: str) -> None:
    _log.log(_log.Level.WARN, message)


def error(message: str) -> None:
    _log.log(_log.Level.ERROR, message)
