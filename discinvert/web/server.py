"""Running the web application: a uvicorn server on a socket bound here, so ``--port 0`` can name its port.

:func:`bind` opens the listening socket (and says when the address is reachable from other
machines); :func:`serve` runs the app on it until Ctrl-C; :func:`start` runs it in a background
thread (tests, notebooks) and :meth:`Running.stop` ends it.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

__all__ = ["Running", "bind", "is_loopback", "serve", "start", "url_of"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` is only reachable from this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port`` 0: a free one).

    Raises:
        OSError: the address is in use or cannot be bound (the message names it).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    """``http://HOST:PORT/`` of a bound socket."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def _config(app: FastAPI) -> uvicorn.Config:
    return uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")


def serve(app: FastAPI, sock: socket.socket) -> None:
    """Serve ``app`` on ``sock`` until interrupted."""
    uvicorn.Server(_config(app)).run(sockets=[sock])


@dataclass
class Running:
    """A server running in a background thread."""

    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the server to finish its requests and stop; wait for it."""
        self.server.should_exit = True
        self.thread.join(timeout)


def start(app: FastAPI, host: str = "127.0.0.1", port: int = 0, timeout: float = 30.0) -> Running:
    """Serve ``app`` from a background thread; return once it accepts connections.

    Raises:
        OSError: the address cannot be bound.
        RuntimeError: the server did not start within ``timeout`` seconds.
    """
    sock = bind(host, port)
    server = uvicorn.Server(_config(app))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="discinvert-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the web server did not start within {timeout:g} s")
        time.sleep(0.02)
    return Running(url_of(sock), server, thread)
