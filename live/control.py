"""The agent's control socket: a unix stream socket, one JSON object per line each way.

A request is ``{"cmd": "...", ...}``; the reply ``{"ok": true, ...}`` or
``{"ok": false, "error": "..."}`` (docs/agent.md, Control socket).
:class:`ControlServer` serves it from the agent's event loop; :func:`request`
is the client the CLI uses.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lmaho_wire.errors import LmahoError

from .tunnels import Unwatch, Watch

#: A request line longer than this closes the connection (nobody needs one).
MAX_LINE = 65536
SEND_TIMEOUT = 5.0

Handler = Callable[[dict[str, Any]], dict[str, Any]]


class ControlError(LmahoError):
    """The control socket cannot be opened or reached, or its answer is not JSON."""


class ControlServer:
    """Listens at ``path``; ``handler`` turns each request into its reply."""

    def __init__(self, path: Path, handler: Handler, watch: Watch, unwatch: Unwatch) -> None:
        self.path = path
        self.handler = handler
        self.watch = watch
        self.unwatch = unwatch
        self._buffers: dict[int, tuple[socket.socket, bytes]] = {}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ControlError(f"control socket {path}: cannot make its directory: {e}") from None
        _remove_stale(path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(path))
            listener.listen(16)
            listener.setblocking(False)
        except OSError as e:
            listener.close()
            raise ControlError(f"control socket {path}: {e.strerror or e}") from None
        self.listener = listener
        watch(listener.fileno(), self._accept)

    def close(self) -> None:
        for fd, (conn, _) in list(self._buffers.items()):
            self.unwatch(fd)
            conn.close()
        self._buffers.clear()
        self.unwatch(self.listener.fileno())
        self.listener.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except BlockingIOError:
            return
        conn.setblocking(False)
        fd = conn.fileno()
        self._buffers[fd] = (conn, b"")
        self.watch(fd, lambda: self._read(fd))

    def _read(self, fd: int) -> None:
        if fd not in self._buffers:
            return  # closed earlier in the same turn of the loop
        conn, buffered = self._buffers[fd]
        try:
            data = conn.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop(fd)
            return
        buffered += data
        *lines, rest = buffered.split(b"\n")
        if len(rest) > MAX_LINE:
            self._drop(fd)
            return
        self._buffers[fd] = (conn, rest)
        for line in lines:
            if line.strip() and not self._answer(conn, line):
                self._drop(fd)
                return

    def _answer(self, conn: socket.socket, line: bytes) -> bool:
        try:
            request = json.loads(line)
            if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
                raise ValueError('a request is a JSON object with a "cmd" string')
        except ValueError as e:
            reply: dict[str, Any] = {"ok": False, "error": f"bad request: {e}"}
        else:
            reply = self.handler(request)
        try:
            conn.settimeout(SEND_TIMEOUT)
            conn.sendall(json.dumps(reply).encode() + b"\n")
            conn.setblocking(False)
        except OSError:
            return False
        return True

    def _drop(self, fd: int) -> None:
        conn, _ = self._buffers.pop(fd)
        self.unwatch(fd)
        conn.close()


def _remove_stale(path: Path) -> None:
    """Unlink a socket file nobody listens at; refuse when an agent does."""
    if not path.exists() and not path.is_symlink():
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    else:
        raise ControlError(f"control socket {path}: another agent listens there")
    finally:
        probe.close()


def request(path: str | os.PathLike[str], message: dict[str, Any], timeout: float = 10.0) -> Any:
    """Send one request to the agent at ``path``; its reply (a JSON object)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(path))
        except OSError as e:
            raise ControlError(
                f"control socket {path}: cannot connect ({e.strerror or e}); is the agent running?"
            ) from None
        try:
            sock.sendall(json.dumps(message).encode() + b"\n")
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = sock.recv(1 << 20)
                if not chunk:
                    break
                reply += chunk
        except OSError as e:
            raise ControlError(f"control socket {path}: {e.strerror or e}") from None
    finally:
        sock.close()
    try:
        answer = json.loads(reply)
    except ValueError:
        raise ControlError(f"control socket {path}: the agent's answer is not JSON") from None
    if not isinstance(answer, dict):
        raise ControlError(f"control socket {path}: the agent's answer is not a JSON object")
    return answer
