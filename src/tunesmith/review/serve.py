"""Run the review app on 127.0.0.1 only: reviewers are people at this machine, and the answers may be private."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

from tunesmith.errors import TunesmithError

HOST = "127.0.0.1"


def bind(port: int) -> socket.socket:
    """A listening socket on HOST:port (0: a free port the system picks)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Lets a restarted server take its port back while the old connections are still in TIME_WAIT.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError as exc:
        sock.close()
        raise TunesmithError(f"--port {port}: cannot listen on {HOST}:{port} ({exc.strerror}); "
                             f"pass --port 0 to pick a free port") from None
    sock.listen(128)
    return sock


def serve(run_dir: Path, against: str | None, port: int, announce: Callable[[str], None]) -> None:
    """Serve the review of run_dir until interrupted; `announce` gets the URL once the port is bound."""
    import uvicorn

    from tunesmith.review.app import create_app

    app = create_app(run_dir, against)
    sock = bind(port)
    announce(f"http://{HOST}:{sock.getsockname()[1]}/")
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.run(sockets=[sock])
