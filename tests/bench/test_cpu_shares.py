"""bench.cpu_shares: each child's share of the CPU time, read from /proc."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench.cpu_shares import CpuShares
from bench.cpu_shares import imbalanced
from bench.cpu_shares import workers

# Says it has started, works when told to (a line on stdin), says so, then waits
# to be closed.
CHILD = """
import sys
print("ready", flush=True)
if sys.stdin.readline().strip() == "work":
    sum(i * i for i in range(3_000_000))
print("done", flush=True)
sys.stdin.read()
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="Linux /proc only")
def test_the_child_that_worked_has_the_larger_share() -> None:
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        assert {c.pid for c in children} <= set(workers(os.getpid()))
        # NOTE: the interpreters' start-up is not counted: on a busy host the
        # idle child could still be starting when the measurement begins.
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        with CpuShares(os.getpid()) as cpu:
            for child, order in zip(children, ("work", "rest"), strict=True):
                assert child.stdin is not None and child.stdout is not None
                child.stdin.write(order + "\n")
                child.stdin.flush()
                assert child.stdout.readline().strip() == "done"
        busy, idle = (cpu.seconds[c.pid] for c in children)
        assert busy > 0.05 and busy > 5 * idle
        assert cpu.shares[0] > 0.8 and sum(cpu.shares) == pytest.approx(1, abs=0.01)
        assert cpu.record()["worker_shares"] == cpu.shares
    finally:
        for child in children:
            child.kill()
            child.wait()


def test_imbalanced_is_relative_to_a_fair_share() -> None:
    assert not imbalanced([0.65, 0.35])
    assert imbalanced([0.66, 0.34])
    assert not imbalanced([0.43, 0.3, 0.27])
    assert imbalanced([0.44, 0.3, 0.26])
    assert not imbalanced([])
