"""Fault injection for the integration tests: a TCP link to the broker that can go dark, and
record batches written to the log byte for byte.

The embedded broker keeps its log in memory, so really stopping it would erase the topics, which
a real Kafka cluster restart does not do. ``Link`` sits between the clients and the broker (the
broker advertises the link's port) and, on ``cut``, closes every connection and refuses new
ones: what a client sees of a stopped broker. ``restore`` lets connections through again.

``produce_raw`` sends a record batch as given (``tests.hostile.record_batch`` builds one, corrupt
if asked): the embedded broker stores it without checking its CRC or its compressed payload, as
a damaged disk or a buggy publisher would leave it for a consumer of a real cluster.
"""

from __future__ import annotations

import socket
import struct
import threading


class Link:
    def __init__(self, port: int, broker_port: int, host: str = "127.0.0.1") -> None:
        self.host, self.port, self.broker_port = host, port, broker_port
        self.lock = threading.Lock()
        self.sockets: set[socket.socket] = set()
        self.listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        """Accept connections again (on the same port)."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Close every connection and stop listening: connects are refused until ``restore``."""
        with self.lock:
            listener, self.listener = self.listener, None
            live, self.sockets = self.sockets, set()
        if listener is not None:
            _close(listener)
        for s in live:
            _close(s)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # cut
                return
            try:
                upstream = socket.create_connection((self.host, self.broker_port))
            except OSError:
                client.close()
                continue
            with self.lock:
                if self.listener is not listener:  # cut while connecting
                    _close(client)
                    _close(upstream)
                    return
                self.sockets |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(1 << 16):
            dst.sendall(data)
    except OSError:
        pass  # the other side or a cut closed it
    _close(src)
    _close(dst)


def _close(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # not connected (a listener, or already closed)
    s.close()


def produce_raw(bootstrap: str, topic: str, partition: int, batch: bytes) -> int:
    """Send ``batch`` as is (Produce v3, acks=1); the base offset the broker gave it."""

    def string(text: str) -> bytes:
        return struct.pack(">h", len(text)) + text.encode()

    body = (
        struct.pack(">hhi", -1, 1, 10_000)  # no transactional id, acks, timeout
        + struct.pack(">i", 1)
        + string(topic)
        + struct.pack(">ii", 1, partition)
        + struct.pack(">i", len(batch))
        + batch
    )
    request = struct.pack(">hhi", 0, 3, 1) + string("faults") + body  # Produce, v3, correlation id
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(struct.pack(">i", len(request)) + request)
        size = struct.unpack(">i", _read(s, 4))[0]
        answer = _read(s, size)
    # correlation id, 1 topic (name), 1 partition: index, error code, base offset
    at = 4 + 4 + 2 + len(topic) + 4 + 4
    error, base = struct.unpack_from(">hq", answer, at)
    if error:
        raise RuntimeError(f"the broker refused the batch: error code {error}")
    return base


def _read(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        data += chunk
    return data
