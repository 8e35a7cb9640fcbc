"""Every record kind of the results stream, defined once: its fields, their types and meaning.

A record is a frozen dataclass; `KIND` is the value of its `kind` field on disk. Every kind has
`ts` (epoch seconds) first; `seq` (its place in the stream, set by the writer, not compared) and
`worker` (the worker process that produced it, in a distributed run; absent otherwise) come
last. A field whose metadata says `omit_none` is left out of the line while it is None.
The README's field table is rendered from these definitions (`loadtests.stream.fields`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = [
    "SCHEMA",
    "Delivery",
    "End",
    "Header",
    "Phase",
    "Queue",
    "Record",
    "Req",
    "Sample",
    "Sent",
    "Step",
    "Tick",
    "TlsSeen",
    "Tracking",
    "UserError",
    "WorkerEvent",
]

SCHEMA = 2
"""The stream's schema version, written in the `run` header (a header without one: schema 1,
whose records have the same fields as schema 2 but for `req.code`)."""


def _doc(text: str, *, omit_none: bool = False) -> dict[str, Any]:
    """A field's metadata: its documentation, and whether the line omits it while None."""
    return {"doc": text, "omit_none": omit_none}


@dataclass(frozen=True, slots=True)
class Record:
    """Fields every kind has, after its own (keyword-only)."""

    KIND: ClassVar[str] = ""

    seq: int = field(
        default=0,
        kw_only=True,
        compare=False,
        metadata=_doc("place in the stream (1, 2, ...), set by the writer"),
    )
    worker: str | None = field(
        default=None,
        kw_only=True,
        metadata=_doc("the worker process that produced it (distributed runs)", omit_none=True),
    )


@dataclass(frozen=True, slots=True)
class Header(Record):
    """`run`: the first record — what was run against what."""

    KIND: ClassVar[str] = "run"

    ts: float = field(default=0.0, metadata=_doc("when the run started"))
    schema: int = field(
        default=SCHEMA, metadata=_doc(f"schema version of the stream ({SCHEMA}; absent: 1)")
    )
    version: str = field(default="", metadata=_doc("mailswarm version"))
    profile: dict[str, Any] = field(
        default_factory=dict, metadata=_doc("the profile, as validated")
    )
    profile_file: str | None = field(default=None, metadata=_doc("the profile's file"))
    target: dict[str, Any] = field(
        default_factory=dict, metadata=_doc("the target, without credentials")
    )
    monitor: dict[str, Any] = field(
        default_factory=dict,
        metadata=_doc("monitored process groups, the agent, the sampled ports"),
    )
    duration: float = field(default=0.0, metadata=_doc("load duration, seconds"))
    workers: int = field(
        default=0, metadata=_doc("worker processes (0: users run in the runner's process)")
    )
    rates: dict[str, float] = field(
        default_factory=dict,
        metadata=_doc("sessions/s per open-model scenario (after --workers split)"),
    )
    tls_verify_off: list[str] = field(
        default_factory=list,
        metadata=_doc("endpoints speaking TLS without checking the server's certificate "
                      "(`verify: false` or --insecure); default: read from `target`"),
    )

    def __post_init__(self) -> None:
        if not self.tls_verify_off:
            endpoints = (self.target or {}).get("endpoints") or {}
            off = [name for name, e in endpoints.items()
                   if isinstance(e, dict) and e.get("tls") and e.get("verify") is False]
            object.__setattr__(self, "tls_verify_off", off)


@dataclass(frozen=True, slots=True)
class Req(Record):
    """`req`: one request or whole session (Locust's request event)."""

    KIND: ClassVar[str] = "req"

    ts: float = field(metadata=_doc("start of the request"))
    type: str = field(metadata=_doc("protocol: SMTP, DNS, IMAP, POP3, HTTP..."))
    name: str = field(metadata=_doc("step: CONNECT, MX, LOGIN, session..."))
    ms: float = field(metadata=_doc("duration, milliseconds"))
    len: int = field(default=0, metadata=_doc("bytes sent or received"))
    ok: bool = field(default=True, metadata=_doc("succeeded"))
    err: str | None = field(
        default=None,
        metadata=_doc("`Kind: text` of the failure (`Kind: 421 text` with a reply code)"),
    )
    code: int | str | None = field(
        default=None, metadata=_doc("server reply code or status, or the errno name (failures)")
    )
    sc: str | None = field(default=None, metadata=_doc("scenario"))
    lag_ms: float | None = field(
        default=None,
        metadata=_doc("open model: start behind the intended start, ms", omit_none=True),
    )


@dataclass(frozen=True, slots=True)
class Tick(Record):
    """`tick`: once a second, the schedule's counters."""

    KIND: ClassVar[str] = "tick"

    ts: float = field(metadata=_doc("when"))
    elapsed: float = field(default=0.0, metadata=_doc("seconds since the run started"))
    phase: str = field(default="running", metadata=_doc("spawning, running or draining"))
    users: int = field(default=0, metadata=_doc("users running"))
    scenarios: dict[str, dict[str, int]] = field(
        default_factory=dict,
        metadata=_doc(
            "per open-model scenario, the pacer's running totals (intended, started, completed, "
            "late, dropped, in_flight, in_flight_max...)"
        ),
    )
    sessions: dict[str, dict[str, int]] = field(
        default_factory=dict, metadata=_doc("per protocol, sessions open, peak, opened, dropped")
    )


@dataclass(frozen=True, slots=True)
class Phase(Record):
    """`phase`: a schedule event."""

    KIND: ClassVar[str] = "phase"

    ts: float = field(metadata=_doc("when"))
    name: str = field(metadata=_doc("load_start, arrival_start or arrival_stop"))
    scenario: str = field(default="*", metadata=_doc("the scenario (`*`: all)"))


@dataclass(frozen=True, slots=True)
class Sample(Record):
    """`sample`: once a second, what the monitor measured (nested as the sampler gives it)."""

    KIND: ClassVar[str] = "sample"

    ts: float = field(metadata=_doc("when"))
    targets: dict[str, dict[str, Any]] = field(
        default_factory=dict,
        metadata=_doc("per monitored process group, its resources (loadtests.monitor.resources)"),
    )
    system: dict[str, Any] = field(
        default_factory=dict,
        metadata=_doc("host: TCP states per port, listen queue counters, memory"),
    )
    generator: dict[str, Any] | None = field(
        default=None, metadata=_doc("the generator's own process tree and ports")
    )
    cost: dict[str, float] | None = field(
        default=None, metadata=_doc("what taking the sample cost (wall_ms, cpu_ms)", omit_none=True)
    )
    agent_error: str | None = field(
        default=None, metadata=_doc("the agent could not be read", omit_none=True)
    )
    error: str | None = field(default=None, metadata=_doc("the sample failed", omit_none=True))
    lag: dict[str, dict[str, float]] | None = field(
        default=None,
        metadata=_doc("per generator process (`local`, `master`, a worker's id), how late it "
                      "was over the last second, ms: its event loops' timers (hub, asyncio) "
                      "and its sessions' starts (loadtests.monitor.lag)", omit_none=True))


@dataclass(frozen=True, slots=True)
class Step(Record):
    """`step`: a finished step of a ceiling search, with its verdict."""

    KIND: ClassVar[str] = "step"

    ts: float = field(metadata=_doc("when the step was judged"))
    users: int = field(metadata=_doc("users of the step"))
    held: int = field(default=0, metadata=_doc("sessions open at its end"))
    start: float = field(default=0.0, metadata=_doc("start of the step (epoch seconds)"))
    end: float = field(default=0.0, metadata=_doc("end of the step (epoch seconds)"))
    requests: int = field(default=0, metadata=_doc("requests recorded during the step"))
    failures: int = field(default=0, metadata=_doc("of them failed"))
    p_latency_ms: float | None = field(
        default=None, metadata=_doc("the judged latency percentile, ms")
    )
    good: bool = field(default=True, metadata=_doc("the step passed `stop_when`"))
    reasons: list[str] = field(default_factory=list, metadata=_doc("why it did not"))
    errors: dict[str, int] = field(
        default_factory=dict, metadata=_doc("most frequent failure texts, with counts")
    )
    codes: dict[str, int] | None = field(
        default=None, metadata=_doc("failures per reply code or errno name (absent in schema 1)")
    )


@dataclass(frozen=True, slots=True)
class UserError(Record):
    """`error`: an exception that escaped a user (a bug, recorded rather than lost)."""

    KIND: ClassVar[str] = "error"

    ts: float = field(metadata=_doc("when"))
    user: str = field(metadata=_doc("the user class"))
    error: str = field(metadata=_doc("`Kind: text` of the exception"))
    code: int | str | None = field(default=None, metadata=_doc("its reply code or errno name"))


@dataclass(frozen=True, slots=True)
class Sent(Record):
    """`sent`: a message the server accepted (a successful DATA), for delivery tracking."""

    KIND: ClassVar[str] = "sent"

    ts: float = field(metadata=_doc("start of its DATA step"))
    id: str = field(metadata=_doc("its Message-ID"))
    rcpt: list[str] = field(default_factory=list, metadata=_doc("its recipients"))
    sc: str | None = field(default=None, metadata=_doc("scenario"))


@dataclass(frozen=True, slots=True)
class Delivery(Record):
    """`delivery`: what the delivery tracker found of one copy (message, recipient)."""

    KIND: ClassVar[str] = "delivery"

    ts: float = field(metadata=_doc("when it was found (lost: when the deadline passed)"))
    id: str = field(metadata=_doc("the Message-ID"))
    rcpt: str = field(metadata=_doc("the recipient whose mailbox was searched"))
    outcome: str = field(metadata=_doc("delivered, corrupt, duplicate or lost"))
    latency_s: float | None = field(
        default=None, metadata=_doc("found - sent, seconds (lost: absent)", omit_none=True))
    part: str | None = field(
        default=None,
        metadata=_doc("corrupt: headers, body, headers+body or checksum", omit_none=True))
    via: str | None = field(default=None, metadata=_doc("how it was found: pop3, maildir..."))


@dataclass(frozen=True, slots=True)
class Queue(Record):
    """`queue`: once a second, the size of a delivery queue (delivery tracking)."""

    KIND: ClassVar[str] = "queue"

    ts: float = field(metadata=_doc("when"))
    source: str = field(metadata=_doc("whose queue: postfix, or embedded (the embedded "
                                      "target's copies waiting for their delivery delay)"))
    counts: dict[str, int] = field(
        default_factory=dict, metadata=_doc("messages per queue (incoming, active, deferred...)"))


@dataclass(frozen=True, slots=True)
class Tracking(Record):
    """`tracking`: the delivery tracker's failures to look so far (when they change, at its end)"""

    # copies reported lost while the tracker could not look may not be lost

    KIND: ClassVar[str] = "tracking"

    ts: float = field(metadata=_doc("when"))
    via: str = field(metadata=_doc("how copies are found: pop3, maildir or imap-idle"))
    errors: int = field(metadata=_doc("failed looks so far (polls, or IDLE sessions)"))
    looked: int = field(metadata=_doc(
        "successful looks so far (polls; imap-idle: mailboxes selected at least once)"))
    first_error: str | None = field(
        default=None, metadata=_doc("the first failure's cause", omit_none=True))
    last_error: str | None = field(
        default=None, metadata=_doc("the latest failure's cause", omit_none=True))


@dataclass(frozen=True, slots=True)
class TlsSeen(Record):
    """`tls`: a TLS version and cipher a scenario negotiated (once each, when first seen)."""

    KIND: ClassVar[str] = "tls"

    ts: float = field(metadata=_doc("when it was first seen"))
    sc: str | None = field(metadata=_doc("scenario"))
    version: str | None = field(metadata=_doc("protocol version: TLSv1.3, TLSv1.2..."))
    cipher: str | None = field(metadata=_doc("cipher suite, e.g. TLS_AES_256_GCM_SHA384"))


@dataclass(frozen=True, slots=True)
class End(Record):
    """`end`: the last record — why the run ended."""

    KIND: ClassVar[str] = "end"

    ts: float = field(default_factory=time.time, metadata=_doc("when"))
    reason: str = field(default="completed", metadata=_doc("completed, interrupted or crashed"))
    load_end: float | None = field(
        default=None, metadata=_doc("end of the load (arrivals stopped)")
    )
    embedded_target: dict[str, Any] | None = field(
        default=None, metadata=_doc("the embedded target's final counters", omit_none=True)
    )


@dataclass(frozen=True, slots=True)
class WorkerEvent(Record):
    """`worker`: a worker process of a distributed run joined it or was lost (its `worker`)."""

    KIND: ClassVar[str] = "worker"

    ts: float = field(metadata=_doc("when"))
    event: str = field(metadata=_doc("joined, lost (died or went silent before its end), or late "
                                     "(joined after the split: no part of the load)"))
    index: int = field(default=0, metadata=_doc("its part of the load (0, 1, ... `of` - 1)"))
    of: int = field(default=1, metadata=_doc("the parts the load is split into"))
    host: str = field(default="", metadata=_doc("its host name"))
    pid: int = field(default=0, metadata=_doc("its process id on that host"))
    users: int = field(default=0, metadata=_doc("Locust users it ran (lost: at its last report)"))
    sent: dict[str, dict[str, int]] | None = field(
        default=None, metadata=_doc("lost: its pacer counters at its last report, per scenario",
                                    omit_none=True))
    cause: str | None = field(default=None, metadata=_doc("lost: why it counts as lost",
                                                          omit_none=True))
