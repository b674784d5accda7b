"""The command-line client says what to do when nothing answers, instead of a traceback."""

from __future__ import annotations

import socket

import pytest

from kserve_kit import client

pytestmark = pytest.mark.unit


def test_nothing_listening_is_one_line_saying_how_to_start_the_servers():
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(SystemExit) as stopped:
        client.main(["--url", f"http://127.0.0.1:{port}", "hello"])
    message = str(stopped.value.code)
    assert message.startswith(f"nothing answers at http://127.0.0.1:{port}")
    assert "make serve" in message and "\n" not in message
