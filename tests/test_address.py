"""`--address` at anything that is not a Ray cluster ends in one line within seconds (Ray itself
would retry for minutes): a port where nothing answers, a web server, a `ray://` address of either.

A real Ray GCS passes the same check. The subprocess timeout only keeps a regression from hanging
the session; nothing here measures time.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import write_script

from zray.actors.cluster import check_reachable


@pytest.fixture
def silent_port():
    """Something that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield server.getsockname()[1]
    server.close()


@pytest.fixture
def web_port():
    class Hello(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"hello")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def run_at(address: str, tmp_path) -> subprocess.CompletedProcess:
    script = write_script(tmp_path / "scripts" / "proj")
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZRAY_", "RAY_ADDRESS"))}
    result = subprocess.run(
        [sys.executable, "-m", "zray", "run", str(script), "--output", str(out), "--address", address],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert not out.exists(), "work started before the cluster was checked"
    return result


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_a_port_that_never_answers_is_one_line(tmp_path, silent_port, scheme):
    address = f"{scheme}127.0.0.1:{silent_port}"
    result = run_at(address, tmp_path)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [
        f"zray: --address {address}: cannot reach a Ray cluster there (it does not answer); "
        "check the address, or leave --address out to run on this machine"
    ], result.stderr


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_a_web_server_is_not_a_ray_cluster(tmp_path, web_port, scheme):
    address = f"{scheme}127.0.0.1:{web_port}"
    result = run_at(address, tmp_path)
    assert result.returncode == 1
    assert f"--address {address}: something listens there, but not a Ray cluster" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_real_ray_cluster_passes_the_check(ray_session):
    check_reachable(ray_session._private.worker._global_node.gcs_address)
