"""A loopback TCP proxy that can cut the network: refuse connections or blackhole them, then heal.

Threads only (nothing outlives the process). ``127.0.0.1:port`` forwards to
``127.0.0.1:target``; the target can change (a broker restarted elsewhere).

* ``cut("refuse")``: the listening socket closes and every open connection is
  reset, so clients see "connection refused" until ``restore()``, as when a
  host is down.
* ``cut("blackhole")``: connections stay open but nothing moves in either
  direction, and new connections are accepted but not forwarded, as when a
  network partition drops packets. ``restore()`` lets the held bytes flow again
  (TCP retransmission after the partition heals).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Literal

__all__ = ["CutMode", "TcpProxy"]

CutMode = Literal["refuse", "blackhole"]


class TcpProxy:
    """Forwards ``127.0.0.1:port`` to ``127.0.0.1:target``."""

    def __init__(self, target: int, port: int | None = None) -> None:
        self.target = target
        self.port = port or _free_port()
        self._flowing = threading.Event()  # cleared during a blackhole
        self._flowing.set()
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._server: socket.socket | None = None
        self._closed = False
        self.connections = 0  # accepted so far, for reports
        self._listen()

    # -- control ------------------------------------------------------------------------------

    def cut(self, mode: CutMode = "refuse") -> None:
        """Start an outage."""
        if mode == "blackhole":
            self._flowing.clear()
            return
        self._flowing.set()
        self._stop_listening()
        self._reset_all()

    def restore(self) -> None:
        """End an outage (either kind)."""
        if self._server is None and not self._closed:
            self._listen()
        self._flowing.set()

    def close(self) -> None:
        """Stop for good: no listener, every connection closed."""
        self._closed = True
        self._flowing.set()
        self._stop_listening()
        self._reset_all()

    # -- internals ----------------------------------------------------------------------------

    def _listen(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 10
        while True:
            try:
                server.bind(("127.0.0.1", self.port))
                break
            except OSError:
                if time.monotonic() > deadline:
                    server.close()
                    raise
                time.sleep(0.1)
        server.listen(128)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True, name=f"proxy-{self.port}").start()

    def _stop_listening(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            with contextlib.suppress(OSError):
                server.shutdown(socket.SHUT_RDWR)
            server.close()

    def _reset_all(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, set()
        for conn in conns:
            _reset(conn)

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        with self._lock:
            self._conns.add(client)
        self._flowing.wait()  # a blackholed connection is held, not forwarded
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            upstream.settimeout(None)
        except OSError:  # target down (e.g. broker restarting): the client sees a reset
            self._drop(client)
            return
        with self._lock:
            if client not in self._conns:  # cut while connecting
                _reset(upstream)
                return
            self._conns.add(upstream)
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                self._flowing.wait()
                data = src.recv(65536)
                if not data:
                    break
                self._flowing.wait()  # bytes read just before a blackhole wait for the heal
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._drop(src)
            self._drop(dst)

    def _drop(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.discard(conn)
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)
        conn.close()


def _reset(conn: socket.socket) -> None:
    """Close so the peer notices at once (SO_LINGER 0: a reset where the kernel can).

    ``shutdown`` first: on Linux a bare ``close`` does not wake a thread blocked in
    ``recv`` on the socket, and the connection would stay silently half-open.
    """
    import struct

    with contextlib.suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)
    conn.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
