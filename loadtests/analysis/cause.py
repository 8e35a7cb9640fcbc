"""Why a ceiling search stopped: the cause named from evidence, as pure functions.

Input: the failing step and the last good one (their typed `step` records: users, held
sessions, time window, error texts and failures per reply code / errno name) and the monitor's
`sample` records inside each window. Checks, in order:
1. the generator's own limits — its open files (EMFILE or fds >= 95% of its limit), ephemeral
   ports (EADDRNOTAVAIL), its saturation (its event loop behind for seconds in a row during
   the failing step, loadtests.analysis.saturation; for a stream without lag readings, its
   CPU >= 90% of a core) — reported as the generator's, never the target's;
2. what the server said: `NO [LIMIT]`, `* BYE Connection queue full`, SMTP `421`, POP3 `-ERR`;
3. the target's open files: a process at >= 95% of its fd limit;
4. memory: less than 5% available;
5. a process or thread limit: the count grew with the sessions up to the good step and stayed
   flat while the failing step added sessions;
6. the listen queue: ListenOverflows rising while connections failed;
otherwise "unknown", with the most frequent error as evidence.
Reply codes and errno names come from the step's `codes`; a stream of schema 1 has none, and
its error texts are searched for them instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loadtests.analysis.saturation import generator_saturation
from loadtests.stream import Sample, Step

__all__ = ["attribute_cause", "samples_between"]

_REPLIES = (  # (text in the reply, its code in `codes` or None, cause)
    ("[LIMIT]", None, "server reply NO [LIMIT]: a per-user connection limit"),
    ("Connection queue full", None,
     "server reply BYE Connection queue full: login queue limit"),
    ("too many connections", None, "server reply: too many connections"),
    ("421", "421", "server reply 421: service not available (connection limit)"),
)


def samples_between(samples: Sequence[Sample], start: float, end: float) -> list[Sample]:
    return [s for s in samples if start <= s.ts <= end]


def _values(samples: Sequence[Sample], path: tuple[str, ...]) -> list[float]:
    """The numbers at `path` (a sample's part, then keys into its nested dicts) in each sample
    that has one."""
    values = []
    for sample in samples:
        node: Any = getattr(sample, path[0])
        for key in path[1:]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, int | float):
            values.append(node)
    return values


def _max(samples: Sequence[Sample], path: tuple[str, ...]) -> float | None:
    values = _values(samples, path)
    return max(values) if values else None


def _mean(samples: Sequence[Sample], path: tuple[str, ...]) -> float | None:
    values = _values(samples, path)
    return sum(values) / len(values) if values else None


def _coded(step: Step, code: str, *texts: str) -> bool:
    """Failures of the step carried `code` (its `codes`), or, lacking that, one of `texts`."""
    if (step.codes or {}).get(code):
        return True
    text = " ".join(step.errors)
    return any(t in text for t in texts)


def _generator(failed: Step, fail: Sequence[Sample]) -> tuple[str, list[str]] | None:
    fds, limit = _max(fail, ("generator", "open_fds")), _max(fail, ("generator", "fd_limit"))
    if _coded(failed, "EMFILE", "Too many open files", "EMFILE") or (
            fds is not None and limit and fds >= 0.95 * limit):
        return "generator: open files limit", [
            f"generator open fds {fds:.0f} of limit {limit:.0f}" if fds is not None and limit
            else "generator errors: Too many open files"]
    if _coded(failed, "EADDRNOTAVAIL", "Cannot assign requested address", "EADDRNOTAVAIL"):
        used = _max(fail, ("generator", "ephemeral_ports", "in_use"))
        cap = _max(fail, ("generator", "ephemeral_ports", "capacity_per_destination"))
        sources = _max(fail, ("generator", "ephemeral_ports", "source_addresses"))
        size = _max(fail, ("generator", "ephemeral_ports", "range_size"))
        room = (f" of {cap:,.0f} per server port ({size:,.0f} ports x {sources:.0f} source "
                f"address(es); more source_addresses lift it)" if cap and size and sources
                else "")
        return "generator: ephemeral ports exhausted", [
            f"EADDRNOTAVAIL from the generator; ephemeral ports in use {used}{room}"]
    saturated = generator_saturation(fail)
    if saturated.from_ts is not None:
        cpu = _mean(fail, ("generator", "cpu_percent"))
        return "generator: saturated (event loop late)", [
            *saturated.evidence,
            *([f"generator CPU {cpu:.0f}% of a core on average"] if cpu is not None else [])]
    if not saturated.measured:  # a stream without lag readings: its CPU is all there is
        cpu = _mean(fail, ("generator", "cpu_percent"))
        if cpu is not None and cpu >= 90:
            return "generator: CPU", [
                f"generator CPU {cpu:.0f}% of a core during the failing step"]
    return None


def _groups(samples: Sequence[Sample], endpoint: str | None) -> list[str]:
    """Group names, those serving `endpoint` first (a group is named `key1+key2`)."""
    names = {name for s in samples for name in (s.targets or {})}
    return sorted(names, key=lambda n: (endpoint not in n.split("+"), n))


def _reply(failed: Step) -> tuple[str, list[str]] | None:
    """A server reply known to mean a limit: by its code when the step has `codes` (schema 2),
    else by its text."""
    errors = failed.errors or {}
    for needle, code, cause in _REPLIES:
        if code is not None and failed.codes is not None:
            count = failed.codes.get(code, 0)
            if count:
                texts = [e for e in errors if code in e]
                return cause, [f"{count} x {texts[0] if texts else f'reply {code}'}"]
            continue
        hits = {e: n for e, n in errors.items() if needle in e}
        if hits:
            text, count = max(hits.items(), key=lambda kv: kv[1])
            return cause, [f"{count} x {text}"]
    return None


def attribute_cause(good: Step | None, failed: Step,
                    good_samples: Sequence[Sample], fail_samples: Sequence[Sample],
                    first: Step | None = None,
                    first_samples: Sequence[Sample] = (),
                    endpoint: str | None = None) -> tuple[str, list[str]]:
    """(cause, evidence) for the step `failed`, `good` being the last good step before it and
    `first` the first step of the ramp (to see what grows with the sessions). The process
    groups serving `endpoint` (the load's own endpoint) are examined first."""
    errors: dict[str, int] = failed.errors or {}
    found = _generator(failed, fail_samples) or _reply(failed)
    if found:
        return found
    groups = _groups(fail_samples, endpoint)
    for name in groups:
        ratio = _max(fail_samples, ("targets", name, "fd_max_ratio"))
        fds = _max(fail_samples, ("targets", name, "open_fds"))
        limit = _max(fail_samples, ("targets", name, "fd_limit"))
        if ratio is not None and ratio >= 0.95:
            return f"target {name}: open files limit", [
                f"{name}: a process at {ratio:.0%} of its fd limit ({fds:.0f} fds in the tree, "
                f"limit {limit:.0f} per process)"]
    total = _max(fail_samples, ("system", "memory", "total_bytes"))
    avail = _max(fail_samples, ("system", "memory", "available_bytes"))
    if total and avail is not None and avail < 0.05 * total:
        return "memory exhausted", [f"available memory {avail / 2**20:.0f} MiB of "
                                    f"{total / 2**20:.0f} MiB"]
    if good is not None:
        added = failed.users - good.users
        for name in groups:
            for kind in ("processes", "threads"):
                at_good = _max(good_samples, ("targets", name, kind))
                at_fail = _max(fail_samples, ("targets", name, kind))
                at_first = _max(first_samples, ("targets", name, kind)) if first else None
                if at_good is None or at_fail is None or first is None or at_first is None:
                    continue
                grew = at_good - at_first >= 0.5 * (good.users - first.users) > 0
                if grew and at_fail - at_good < 0.2 * added:
                    return f"target {name}: {kind[:-2] if kind == 'processes' else 'thread'} " \
                           "limit", [
                        f"{name}: {kind} grew with the sessions ({at_first:.0f} at "
                        f"{first.users} users, {at_good:.0f} at {good.users}) then stayed "
                        f"flat ({at_fail:.0f} at {failed.users}) while logins failed",
                        *(f"{n} x {e}" for e, n in list(errors.items())[:2])]
    overflows = _values(fail_samples, ("system", "listen", "ListenOverflows"))
    if len(overflows) >= 2 and overflows[-1] > overflows[0]:
        return "target: listen queue overflow", [
            f"ListenOverflows rose by {overflows[-1] - overflows[0]:.0f} during the step"]
    if errors:
        text, count = max(errors.items(), key=lambda kv: kv[1])
        return "unknown", [f"{count} x {text}"]
    return "unknown", list(failed.reasons or ["no evidence in the samples"])
