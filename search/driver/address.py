"""Is there a Ray cluster at ``--address``? Answered in seconds, before Ray is asked.

``ray.init`` retries an address for minutes, whether nothing listens there or something
that is not Ray does (a web server, a database). Ray's head serves gRPC, which is
HTTP/2: it answers a client's connection preface with a SETTINGS frame at once, so one
connection and one read tell the cases apart.
"""

from __future__ import annotations

import socket

__all__ = ["PROBE_TIMEOUT_S", "check_ray_address"]

PROBE_TIMEOUT_S = 5.0
_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_EMPTY_SETTINGS = bytes((0, 0, 0, 4, 0, 0, 0, 0, 0))  # length 0, type SETTINGS, stream 0
_SETTINGS = 4


def _reply_header(sock: socket.socket) -> bytes:
    data = b""
    while len(data) < 9:
        chunk = sock.recv(9 - len(data))
        if not chunk:
            break
        data += chunk
    return data


def check_ray_address(address: str) -> None:
    """``ValueError`` (one line) unless ``host:port`` (or ``ray://host:port``) answers as
    a gRPC server; ``auto`` is left to Ray."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"address must be host:port (or auto), got {address!r}")
    try:
        with socket.create_connection((host, int(port)), timeout=PROBE_TIMEOUT_S) as sock:
            sock.settimeout(PROBE_TIMEOUT_S)
            try:
                sock.sendall(_PREFACE + _EMPTY_SETTINGS)
                header = _reply_header(sock)
            except OSError:
                header = b""
    except OSError as err:
        raise ValueError(f"cannot reach Ray cluster at {address}: "
                         f"{err.strerror or err}") from None
    if len(header) < 9 or header[3] != _SETTINGS:
        raise ValueError(f"{address} answers, but not as a Ray cluster (no gRPC reply within "
                         f"{PROBE_TIMEOUT_S:g} s); give the head's GCS port (6379 by default) "
                         "or ray://host:10001")
