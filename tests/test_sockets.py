"""Tensor-sized TCP buffers: set where the kernel allows them, inherited by accepted
connections on the server, applied to the client's own connections, left alone otherwise."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import mxconv
import pytest
from mxconv import sockets

#: Below any kernel's cap, so the kernel grants it (and reports it doubled), and unlike any default.
SMALL = 48 * 1024


def _caps(tmp_path, monkeypatch, rmem: int, wmem: int) -> None:
    r, w = tmp_path / "rmem_max", tmp_path / "wmem_max"
    r.write_text(f"{rmem}\n")
    w.write_text(f"{wmem}\n")
    monkeypatch.setattr(sockets, "_CAPS", (r, w))


def test_buffers_only_where_the_kernel_allows_them(tmp_path, monkeypatch) -> None:
    _caps(tmp_path, monkeypatch, 8 << 20, 8 << 20)
    assert sockets.buffer_bytes() == sockets.BUFFER_BYTES
    _caps(tmp_path, monkeypatch, 212_992, 8 << 20)  # Linux's default rmem_max
    assert sockets.buffer_bytes() is None
    assert sockets.options() == []
    monkeypatch.setattr(sockets, "_CAPS", (tmp_path / "absent", tmp_path / "absent"))  # not Linux
    assert sockets.buffer_bytes() is None


def test_accepted_connections_inherit_the_listeners_buffers(monkeypatch) -> None:
    from mxconv_server import gunicorn_conf

    monkeypatch.setattr(sockets, "buffer_bytes", lambda: SMALL)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        gunicorn_conf.when_ready(SimpleNamespace(LISTENERS=[SimpleNamespace(sock=listener)]))
        with socket.create_connection(listener.getsockname()) as peer:
            conn, _ = listener.accept()
            with conn, peer:
                # Linux reports twice what was set (its bookkeeping overhead)
                assert conn.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == 2 * SMALL
                assert conn.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == 2 * SMALL


def test_listeners_are_left_alone_where_the_caps_are_low(tmp_path, monkeypatch) -> None:
    from mxconv_server import gunicorn_conf

    _caps(tmp_path, monkeypatch, 212_992, 212_992)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        before = listener.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        gunicorn_conf.when_ready(SimpleNamespace(LISTENERS=[SimpleNamespace(sock=listener)]))
        assert listener.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == before


@pytest.mark.parametrize("own_session", [False, True])
def test_the_clients_connections_get_the_buffers(monkeypatch, own_session) -> None:
    import requests

    monkeypatch.setattr(sockets, "buffer_bytes", lambda: SMALL)
    session = requests.Session() if own_session else None
    client = mxconv.Client("http://127.0.0.1:9", session=session)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        host, port = listener.getsockname()
        url = f"http://{host}:{port}/"
        conn = client.session.get_adapter(url).poolmanager.connection_from_url(url)._get_conn()
        conn.connect()
        try:
            rcvbuf = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        finally:
            conn.close()
    if own_session:  # a session the caller brings is used as it is
        assert rcvbuf != 2 * SMALL
    else:
        assert rcvbuf == 2 * SMALL
