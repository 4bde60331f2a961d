"""CPU time of processes, read from ``/proc``: what ``omvant bench`` reports per case.

CPU time (user + system, from ``/proc/<pid>/stat``) stays meaningful on a loaded machine where
wall time does not. A process tree's total counts each live process's own time plus the time
of the children it has reaped (``cutime``/``cstime``), so the difference of two readings is the
CPU the tree used between them, even when processes end in between. Linux only: elsewhere the
readings are ``None`` and the bench says so.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

PROC = Path("/proc")
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
LOCAL_HOSTS = frozenset({"", "localhost", "127.0.0.1", "::1"})
LISTEN = "0A"
"""The state of a listening socket in ``/proc/net/tcp``."""


@dataclass(frozen=True)
class ProcStat:
    """The fields of ``/proc/<pid>/stat`` the bench needs (times in clock ticks)."""

    pid: int
    ppid: int
    own_ticks: int
    reaped_children_ticks: int
    nice: int = 0


def read_stat(pid: int) -> ProcStat | None:
    """One process's ``stat``; None if it is gone or unreadable."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may contain spaces
    fields = text[text.rindex(")") + 2 :].split()
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return ProcStat(pid, int(fields[1]), utime + stime, cutime + cstime, nice=int(fields[16]))


def tree_niceness(root: int) -> list[int]:
    """The niceness of every process in the tree under ``root`` (each value once, sorted)."""
    return sorted({s.nice for s in tree(root, all_stats())})


def all_stats() -> dict[int, ProcStat]:
    """Every readable process on this machine."""
    found = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            stat = read_stat(int(entry.name))
            if stat is not None:
                found[stat.pid] = stat
    return found


def tree(root: int, stats: dict[int, ProcStat]) -> list[ProcStat]:
    """``root`` and all its descendants among ``stats``."""
    children: dict[int, list[int]] = {}
    for stat in stats.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            found.append(stats[pid])
            todo.extend(children.get(pid, []))
    return found


def tree_seconds(root: int, stats: dict[int, ProcStat] | None = None) -> float | None:
    """CPU seconds of the tree under ``root`` so far (reaped children included); None if gone."""
    stats = all_stats() if stats is None else stats
    members = tree(root, stats)
    if not members:
        return None
    ticks = sum(s.own_ticks + s.reaped_children_ticks for s in members)
    return ticks / TICKS_PER_SECOND


def pids_seconds(pids: Iterable[int], stats: dict[int, ProcStat]) -> dict[int, float]:
    """Own CPU seconds of each of ``pids`` still running."""
    return {p: stats[p].own_ticks / TICKS_PER_SECOND for p in pids if p in stats}


def is_local(url: str) -> bool:
    """Whether the server of ``url`` runs on this machine (so its processes can be read)."""
    return PROC.is_dir() and (urlsplit(url).hostname or "") in LOCAL_HOSTS


def listening_pid(port: int) -> int | None:
    """The process listening on TCP ``port`` on this machine, if it can be found."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if parts[3] == LISTEN and int(parts[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{parts[9]}]")
    if not inodes:
        return None
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if str(fd.readlink()) in inodes:
                    return int(entry.name)
        except OSError:
            continue
    return None


def broker_pid(broker_url: str) -> int | None:
    """The local broker's process (``beam.smp`` for RabbitMQ, ``redis-server``), if local."""
    if not is_local(broker_url):
        return None
    parts = urlsplit(broker_url)
    default = 6379 if parts.scheme.startswith("redis") else 5672
    return listening_pid(parts.port or default)


class PidMeter:
    """CPU of a changing set of processes, sampled now and then.

    A process seen at the first sample counts from that sample; one that appears later counts
    from its start (it began inside the window); one that ends counts to its last sample.
    """

    def __init__(self) -> None:
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.started = False

    def sample(self, pids: Iterable[int], stats: dict[int, ProcStat]) -> None:
        """Record the CPU of ``pids`` now."""
        for pid, seconds in pids_seconds(pids, stats).items():
            if pid not in self.first:
                self.first[pid] = seconds if not self.started else 0.0
            self.last[pid] = seconds
        self.started = True

    def seconds(self) -> float:
        """CPU seconds used between the first sample and the last."""
        return sum(self.last[p] - self.first[p] for p in self.last)


class CpuWindow:
    """CPU used between ``start()`` and ``stop()`` by the worker trees, PostgreSQL and the broker.

    ``workers`` maps a name (a stage, or ``all``) to the root process of its dramatiq workers;
    ``postmaster`` is the local PostgreSQL cluster's root process, ``database_backends`` a
    function returning the pids of the backends connected to the bench's database, ``broker``
    the local broker's process. ``sample()`` between start and stop keeps ending backends counted.
    """

    def __init__(
        self,
        workers: dict[str, int],
        *,
        postmaster: int | None,
        database_backends: Callable[[], list[int]] | None,
        broker: int | None,
    ) -> None:
        self.roots = dict(workers)
        if postmaster is not None:
            self.roots["postgres"] = postmaster
        if broker is not None:
            self.roots["broker"] = broker
        self.database_backends = database_backends
        self.backends = PidMeter()
        self.at_start: dict[str, float | None] = {}
        self.at_stop: dict[str, float | None] = {}
        self.own_at_start = 0.0
        self.own_seconds = 0.0

    def _read(self) -> dict[str, float | None]:
        stats = all_stats()
        if self.database_backends is not None:
            self.backends.sample(self.database_backends(), stats)
        return {name: tree_seconds(pid, stats) for name, pid in self.roots.items()}

    def start(self) -> None:
        """The window opens."""
        self.at_start = self._read()
        self.own_at_start = own_seconds()

    def sample(self) -> None:
        """A reading inside the window (keeps backends that end counted to their last sample)."""
        if self.database_backends is not None:
            self.backends.sample(self.database_backends(), all_stats())

    def stop(self) -> None:
        """The window closes."""
        self.at_stop = self._read()
        self.own_seconds = own_seconds() - self.own_at_start

    def seconds(self, name: str) -> float | None:
        """CPU seconds of ``name`` in the window; None if not measured."""
        start, stop = self.at_start.get(name), self.at_stop.get(name)
        return None if start is None or stop is None else stop - start

    def backend_seconds(self) -> float | None:
        """CPU seconds of the bench database's backends; None if not measured."""
        return None if self.database_backends is None else self.backends.seconds()


def own_seconds() -> float:
    """CPU seconds of this process so far (all its threads)."""
    times = os.times()
    return times.user + times.system


def idle_percent(roots: dict[str, int], *, seconds: float) -> dict[str, float | None]:
    """Percent of one core each tree uses over ``seconds`` while it has nothing to do (polling,
    heartbeats): the share of a per-case figure that depends on how long the window was."""
    import time

    start, began = all_stats(), time.monotonic()
    time.sleep(seconds)
    end, elapsed = all_stats(), time.monotonic() - began
    found: dict[str, float | None] = {}
    for name, pid in roots.items():
        before, after = tree_seconds(pid, start), tree_seconds(pid, end)
        found[name] = (
            None if before is None or after is None else round((after - before) * 100 / elapsed, 2)
        )
    return found
