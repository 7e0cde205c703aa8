"""The worker's producer, in a process of its own.

kafka-python builds every record in Python: inside the worker, producing was a third of the
loop's time (docs/PERFORMANCE.md). So the loop hands each batch's records over a socket in one
message, and a child process sends them with a ``KafkaProducer`` and answers once every record
of the batch is acknowledged: producing runs on another core, beside the next poll and step.

The child acts only on the parent's messages. It ignores SIGINT and SIGTERM (the parent decides
when it stops, after its last flush) and exits when the parent's end of the socket closes,
a crash of the parent included, dropping what it has not delivered: those records' input
offsets were not committed, so they will be replayed.

    parent -> child: (producer config, log level), then ("batch", ticket, records),
                     ("partitions", topic), ("close",)
    child -> parent: ("start", error or None), then ("done", ticket, error or None),
                     ("partitions", numbers or None), ("closed",)
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError

LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"
# topic, value, key, partition, headers
Record = tuple[str, bytes, bytes | None, int | None, list[tuple[str, bytes]] | None]


class ProducerError(KafkaError):
    """The producer process could not start, a record was not delivered (after the producer's
    own retries), or the process is gone."""


class Sender:
    """A ``KafkaProducer`` in a child process, fed a batch at a time.

    ``send`` buffers a record; ``seal`` ships the buffer as one batch and returns its ticket;
    ``is_done(ticket)`` says whether every record of it is acknowledged. Once a record has
    failed (after the producer's own retries), every call raises ``ProducerError``: nothing
    after it may be committed. ``config``: ``KafkaProducer`` options.
    """

    def __init__(self, config: dict[str, Any], start_timeout_s: float = 60.0) -> None:
        ours, theirs = socket.socketpair()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workers.sender", str(theirs.fileno())], pass_fds=(theirs.fileno(),)
        )
        theirs.close()  # only the child holds that end: its exit is our EOF, and ours is its
        self.conn = Connection(ours.detach())
        self.buffer: list[Record] = []
        self.next_ticket = 0
        self.unacked: set[int] = set()
        self.failure: str | None = None
        self.answers: dict[str, Any] = {}  # replies to requests other than batches
        self.conn.send((config, logging.getLogger().getEffectiveLevel()))
        late = self._await(lambda: "start" in self.answers, start_timeout_s, "the producer to start")
        if late or self.answers["start"] is not None:
            self.conn.close()  # the child waits for this before it exits
            self.proc.wait(timeout=start_timeout_s)
            raise ProducerError(f"the producer could not start: {late or self.answers['start']}")

    def send(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        """Add a record to the batch in hand (as ``KafkaProducer.send``, without a future)."""
        self.buffer.append((topic, value, key, partition, headers))

    def seal(self) -> int:
        """Ship the batch in hand; its ticket. An empty batch is done at once."""
        ticket, self.next_ticket = self.next_ticket, self.next_ticket + 1
        if self.buffer:
            self.conn.send(("batch", ticket, self.buffer))
            self.unacked.add(ticket)
            self.buffer = []
        return ticket

    def is_done(self, ticket: int) -> bool:
        self._receive(0)
        return ticket not in self.unacked

    def flush(self, timeout: float | None = None) -> None:
        """Ship the batch in hand and wait until every batch is acknowledged; ``KafkaTimeoutError``
        after ``timeout`` seconds, as ``KafkaProducer.flush``."""
        self.seal()
        self._receive(0)  # raises if a record has failed, even with nothing left to wait for
        late = self._await(lambda: not self.unacked, timeout, f"{len(self.unacked)} unacknowledged batches")
        if late:
            raise KafkaTimeoutError(late)

    def partitions_for(self, topic: str) -> set[int]:
        self.conn.send(("partitions", topic))
        self._await(lambda: "partitions" in self.answers, None, "topic metadata")
        found = self.answers.pop("partitions")
        if isinstance(found, str):
            raise ProducerError(found)
        return found

    def close(self, timeout_s: float = 60.0) -> None:
        """Stop the child once it has flushed and closed its producer."""
        if self.proc.poll() is None:
            try:
                self.conn.send(("close",))
                self._await(lambda: "closed" in self.answers, timeout_s, "the producer to close")
            except (BrokenPipeError, ProducerError):
                pass  # it is gone already: nothing left to close
        self.conn.close()
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def _exit_code(self) -> int | None:
        try:
            return self.proc.wait(timeout=5)  # it closed its end: it is exiting
        except subprocess.TimeoutExpired:
            return None

    def _await(self, condition: Any, timeout: float | None, what: str) -> str | None:
        """Receive until ``condition()``; None, or what timed out after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not condition():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return f"timed out after {timeout} s waiting for {what}"
            self._receive(left)
        return None

    def _receive(self, timeout: float | None) -> None:
        """Take every answer that arrives within ``timeout`` seconds (0: those already here)."""
        try:
            while self.conn.poll(timeout):
                timeout = 0
                kind, *rest = self.conn.recv()
                if kind == "done":
                    ticket, error = rest
                    self.unacked.discard(ticket)
                    self.failure = self.failure or error
                else:
                    self.answers[kind] = rest[0] if rest else None
        except (EOFError, ConnectionResetError) as e:
            raise ProducerError(f"the producer process exited (code {self._exit_code()}); see its log above") from e
        if self.failure:
            raise ProducerError(f"could not deliver a record (not committed, will be replayed): {self.failure}")


class _Batch:
    """Counts a batch's acknowledgements in the child; answers the parent at the last one."""

    def __init__(self, ticket: int, records: int, answer: Any) -> None:
        self.ticket, self.left, self.error, self.answer = ticket, records, None, answer
        self.lock = threading.Lock()

    def settle(self, result: Any) -> None:
        """A record's future's callback (its metadata) or errback (its exception)."""
        with self.lock:
            if isinstance(result, BaseException) and self.error is None:
                self.error = _describe(result)
            self.left -= 1
            last = self.left == 0
        if last:
            self.answer(("done", self.ticket, self.error))


def _describe(e: BaseException) -> str:
    return str(e) if isinstance(e, KafkaError) else f"{type(e).__name__}: {e}"  # KafkaError names its class


def _orphaned(parent: int) -> None:
    """Exit once the parent is gone, even while blocked in the producer (``send`` waits up to
    ``max_block_ms`` for metadata), where the socket's end-of-file is not read."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _serve(conn: Connection) -> None:
    """The child: a producer that does what the parent's messages say."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=_orphaned, args=(os.getppid(),), daemon=True).start()
    config, level = conn.recv()
    logging.basicConfig(level=level, format=LOG_FORMAT)
    lock = threading.Lock()  # callbacks answer from the producer's I/O thread

    def answer(message: tuple[Any, ...]) -> None:
        with lock:
            conn.send(message)

    try:
        producer = KafkaProducer(**config)
    except Exception as e:  # e.g. no broker, a bad option: the parent raises it, in one line
        conn.send(("start", _describe(e)))
        with contextlib.suppress(EOFError):
            conn.recv()  # exit once the parent has read that (an exit first would read as a crash)
        return
    answer(("start", None))
    while True:
        try:
            message = conn.recv()
        except EOFError:  # the parent is gone: what is undelivered will be replayed
            os._exit(0)  # at once: a normal exit would wait in the producer's atexit flush
        if message[0] == "batch":
            _, ticket, records = message
            batch = _Batch(ticket, len(records), answer)
            for topic, value, key, partition, headers in records:
                try:
                    future = producer.send(topic, value=value, key=key, partition=partition, headers=headers)
                except KafkaError as e:  # e.g. too large, or no metadata within max_block_ms
                    batch.settle(e)
                    continue
                future.add_both(batch.settle)
        elif message[0] == "partitions":
            try:
                answer(("partitions", producer.partitions_for(message[1])))
            except KafkaError as e:
                answer(("partitions", _describe(e)))
        else:
            producer.flush()
            producer.close()
            answer(("closed",))
            return


if __name__ == "__main__":
    _serve(Connection(int(sys.argv[1])))
