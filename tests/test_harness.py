"""tests/harness.py: what tests, benchmarks and scripts rely on to leave no process behind."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests import harness

# A shell whose child ignores SIGTERM: stopping the shell alone would leave the child running.
STUBBORN_CHILD = "(trap '' TERM; exec sleep 300) & echo started; wait"


def test_free_port_is_free_on_loopback_and_never_a_reserved_one() -> None:
    port = harness.free_port()
    assert port not in harness.RESERVED_PORTS
    assert not harness.port_open(port)


def test_stop_ends_the_whole_group_even_a_child_that_ignores_sigterm() -> None:
    process = harness.Process(["sh", "-c", STUBBORN_CHILD]).launch()
    with process:
        process.wait_ready(lambda: "started" in process.log_so_far(), timeout=10)
        assert len(harness.group_members(process.pid)) == 2
        assert len(harness.process_tree(process.pid)) == 2
        assert harness.tree_memory_kib(process.pid) > 0
        assert process.stop() == -15
        assert harness.group_members(process.pid) == []


def test_a_leader_that_ignores_sigterm_is_killed_after_the_timeout() -> None:
    process = harness.Process(["sh", "-c", "trap '' TERM; echo started; sleep 300 & wait"]).launch()
    with process:
        process.wait_ready(lambda: "started" in process.log_so_far(), timeout=10)
        started = time.monotonic()
        assert process.stop(timeout=0.5) == -9
        assert time.monotonic() - started < 5
        assert harness.group_members(process.pid) == []


def test_waiting_for_a_program_that_exits_says_why_with_its_output() -> None:
    process = harness.Process(["sh", "-c", "echo no config here; exit 3"]).launch()
    with process, pytest.raises(harness.ProcessExitedError, match=r"sh exited with 3:\nno config here"):
        process.wait_ready(lambda: False, timeout=10)


def test_wait_until_names_the_condition_it_gave_up_on() -> None:
    def never() -> bool:
        """the moon is made of cheese"""
        return False

    with pytest.raises(harness.NotReadyError, match="the moon is made of cheese"):
        harness.wait_until(never, timeout=0.1)


def test_cpu_seconds_of_a_busy_process_grow() -> None:
    process = harness.Process([sys.executable, "-c", "while True: pass"]).launch()
    with process:
        harness.wait_until(lambda: harness.cpu_seconds([process.pid]) >= 0.05, timeout=10)


def test_free_port_on_the_command_line_prints_a_port() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.harness", "free-port"],
        cwd=harness.ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert 1024 <= int(result.stdout) <= 65535
