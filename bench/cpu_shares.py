"""Each gunicorn worker's share of the CPU time its instance used, from /proc (Linux).

A round whose busiest worker did most of the work ran on fewer cores than it had: its
throughput says nothing about the code, and everything about how connections were
dealt out (issue 18). The benches record these shares for every round, so such a
round is seen and counted, not set aside as noise from outside.

    with CpuShares(master_pid) as cpu:
        run_the_load()
    cpu.shares  # busiest first, e.g. [0.52, 0.48]
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

_TICK = os.sysconf("SC_CLK_TCK")

#: A round is imbalanced when its busiest worker did more than this many fair shares
#: of the work: 65% with 2 workers, the bound of issue 18.
IMBALANCE = 1.3


def imbalanced(shares: list[float]) -> bool:
    """Whether one worker did much more than its share (``shares`` of one round)."""
    return bool(shares) and max(shares) > IMBALANCE / len(shares)


def workers(master: int) -> list[int]:
    """The child processes of gunicorn's master: its workers."""
    pids = []
    for task in os.listdir(f"/proc/{master}/task"):
        children = Path(f"/proc/{master}/task/{task}/children")
        pids += [int(p) for p in children.read_text().split()]
    return sorted(pids)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process, all its threads; 0 once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


class CpuShares:
    """CPU time of each worker of ``master`` between entering and leaving."""

    def __init__(self, master: int):
        self.master = master
        self.seconds: dict[int, float] = {}
        self.shares: list[float] = []

    def __enter__(self) -> CpuShares:
        self._before = {pid: cpu_seconds(pid) for pid in workers(self.master)}
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        # A worker that exited meanwhile (replaced) counts for nothing.
        self.seconds = {
            pid: round(max(0.0, cpu_seconds(pid) - before), 3)
            for pid, before in self._before.items()
        }
        total = sum(self.seconds.values())
        self.shares = sorted(
            (round(s / total, 3) if total else 0.0 for s in self.seconds.values()),
            reverse=True,
        )

    def record(self) -> dict:
        """The figures a bench row keeps."""
        return {
            "worker_cpu_s": sorted(self.seconds.values(), reverse=True),
            "worker_shares": self.shares,
        }
