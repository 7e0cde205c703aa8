"""The producer process's life cycle, without a broker (delivery is tested in the integration tests)."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
from kafka.errors import KafkaError

from tests.conftest import exited, wait_for
from workers.sender import Sender

NOWHERE = ["127.0.0.1:1"]  # nothing listens on port 1


def idle_sender() -> Sender:
    """A sender whose producer never connects: a known API version skips the start-up probe."""
    return Sender({"bootstrap_servers": NOWHERE, "api_version": (2, 5)})


def test_a_producer_that_cannot_start_is_one_kafka_error_and_no_process_is_left() -> None:
    with pytest.raises(KafkaError, match="could not start: KafkaTimeoutError: Unable to bootstrap") as caught:
        Sender({"bootstrap_servers": NOWHERE, "bootstrap_timeout_ms": 500})
    assert "\n" not in str(caught.value)
    with pytest.raises(KafkaError, match="Unrecognized configs"):
        Sender({"bootstrap_servers": NOWHERE, "no_such_option": 1})


def test_an_empty_batch_is_done_at_once_and_tickets_count_up() -> None:
    sender = idle_sender()
    try:
        first, second = sender.seal(), sender.seal()
        assert (first, second) == (0, 1)
        assert sender.is_done(first) and sender.is_done(second)
        sender.flush(timeout=1)  # nothing unacknowledged: returns
    finally:
        sender.close(timeout_s=10)
    assert sender.proc.returncode == 0


def test_a_batch_the_broker_never_acknowledges_is_not_done_and_flush_times_out() -> None:
    sender = idle_sender()
    try:
        sender.send("t", b"v", key=b"k")
        ticket = sender.seal()
        assert not sender.is_done(ticket)
        with pytest.raises(KafkaError, match="unacknowledged"):
            sender.flush(timeout=0.2)
    finally:
        sender.proc.kill()
        sender.proc.wait()


def test_ctrl_c_and_sigterm_leave_the_child_to_its_parent() -> None:
    """The terminal sends Ctrl-C to the whole process group: the worker, not its producer,
    decides when to stop, after its last flush."""
    sender = idle_sender()
    sender.proc.send_signal(signal.SIGINT)
    sender.proc.send_signal(signal.SIGTERM)
    assert sender.is_done(sender.seal())  # still answering
    sender.close(timeout_s=10)
    assert sender.proc.returncode == 0


def test_the_child_exits_when_its_parent_closes_the_socket() -> None:
    sender = idle_sender()
    sender.conn.close()  # what a crash of the worker does to the socket
    assert sender.proc.wait(timeout=30) == 0


def test_the_child_exits_when_its_parent_dies_while_it_is_blocked_in_the_producer(tmp_path) -> None:
    """The parent is a process of its own here, SIGKILLed while the child waits for metadata."""
    script = tmp_path / "parent.py"
    script.write_text(
        "import os, sys\n"
        "from workers.sender import Sender\n"
        f"s = Sender({{'bootstrap_servers': {NOWHERE!r}, 'api_version': (2, 5)}})\n"
        "s.send('t', b'v')\n"
        "s.seal()\n"
        "print(s.proc.pid, flush=True)\n"
        "sys.stdin.read()\n"
    )
    parent = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        parent.kill()
        parent.wait()
        wait_for(lambda: exited(child), 30, "the orphaned producer process to exit")
    finally:
        parent.kill()
