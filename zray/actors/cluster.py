"""Starting or joining Ray."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
from typing import Any

from zray.config import Config
from zray.errors import ZrayError

log = logging.getLogger("zray")


class ClusterError(ZrayError):
    pass


def connect(config: Config) -> bool:
    """Join `config.address` or start an embedded Ray sized to this machine; True if we started it.

    An already-initialized Ray (a test session, a `ray job` entrypoint) is used as it is.
    """
    import ray

    if config.address:
        check_reachable(config.address)
    if ray.is_initialized():
        return False
    if config.address:
        try:
            ray.init(address=config.address, logging_level=logging.WARNING, log_to_driver=False)
        except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
            raise ClusterError(
                f"--address {config.address}: cannot reach a Ray cluster there ({_first_line(exc)}); "
                "check the address, or leave --address out to run on this machine"
            ) from None
        return False
    # "local": always a fresh instance, never a cluster someone started on this machine with `ray start`
    # (joining one is what --address auto is for). What can be bound to the loopback is: the
    # dashboard (see the README for the ports Ray itself opens on all interfaces).
    _quiet_token_notice()
    try:
        ray.init(
            address="local",
            num_cpus=local_cpus(config),
            include_dashboard=config.dashboard,
            dashboard_host="127.0.0.1",
            logging_level=logging.WARNING,
            log_to_driver=False,
        )
    except BaseException:
        # Ctrl-C (or a failure) half-way through start-up: stop what did start.
        with contextlib.suppress(Exception):
            ray.shutdown()
        raise
    _reap_when_we_die()
    return True


def local_cpus(config: Config) -> int:
    """Logical CPUs for the embedded instance: one per core for the steps (each a one-CPU task),
    plus what the resident engine actors reserve. The actors mostly wait on a model or a request;
    counted against the cores, their quarter-CPU shares would keep a 2-core machine to one step at
    a time (two scenes' encodes could not run side by side)."""
    actors = config.actors
    reserved = sum(role.num_cpus * (role.count or 1) for role in (actors.image, actors.tts, actors.music))
    return (os.cpu_count() or 1) + math.ceil(reserved)


class _TokenNotice(logging.Filter):
    """Ray says at every local start that token authentication is on; for the instance zray starts
    for itself that is a detail, not news (the token stays on)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Token authentication is enabled for this Ray cluster" not in record.getMessage()


def _quiet_token_notice() -> None:
    target = logging.getLogger("ray._private.authentication.authentication_token_setup")
    if not any(isinstance(f, _TokenNotice) for f in target.filters):
        target.addFilter(_TokenNotice())


def _reap_when_we_die() -> None:
    """Start the embedded instance's watchdog (`zray.actors.watchdog`): if this process dies without
    shutting Ray down (kill -9), the Ray processes it started (GCS, raylet, dashboard and
    runtime-env agents, workers) go with it instead of living on; after a clean shutdown it removes
    the run's Ray session folder. It runs with `-I -S` (no site-packages): the standard library is
    all it needs on any install."""
    import subprocess

    import ray

    from zray.actors import watchdog

    node = getattr(ray._private.worker, "_global_node", None)
    if node is None:
        return
    pids = [p.process.pid for procs in node.all_processes.values() for p in procs if p.process is not None]
    if not pids:
        return
    subprocess.Popen(
        watchdog_command(os.getpid(), node.get_session_dir_path(), pids, script=watchdog.__file__),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # not in our process group: a signal to the group must not take it
    )


def watchdog_command(parent: int, session_dir: str, pids: list[int], *, script: str) -> list[str]:
    import sys

    return [sys.executable, "-I", "-S", script, str(parent), session_dir, *map(str, pids)]


def check_shared_storage(store: Any, config: Config) -> None:
    """A local output on a multi-node cluster would scatter files across machines: refuse it."""
    if not store.is_local or config.shared_storage:
        return
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if len(nodes) > 1:
        raise ClusterError(
            f"--output {store.root_url} is a local folder but the cluster has {len(nodes)} nodes; "
            "use s3:// or gs:// storage, or set shared_storage = true if every node mounts that path"
        )


# A gRPC server (Ray's GCS, and the Ray client server behind ray://) answers HTTP/2's client
# preface with a SETTINGS frame; a web server, a database or a closed port does not.
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
_SETTINGS_FRAME = 4


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds, not minutes: Ray itself keeps retrying an address that never answers, or
    that answers as something other than Ray. `auto` is checked at the address it stands for."""
    if address == "auto":
        address = _auto_address()
        if address is None:
            return  # no cluster on this machine: ray.init says so at once
    host_port = address.removeprefix("ray://").rsplit("/", 1)[0]
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"--address {address}: expected auto, host:port or ray://host:port")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as connection:
            connection.settimeout(timeout)
            connection.sendall(_HTTP2_PREFACE)
            header = _read_exactly(connection, 9)
    except OSError as exc:
        reason = "it does not answer" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
        raise ClusterError(
            f"--address {address}: cannot reach a Ray cluster there ({reason}); "
            "check the address, or leave --address out to run on this machine"
        ) from None
    if len(header) < 9 or header[3] != _SETTINGS_FRAME:
        raise ClusterError(
            f"--address {address}: something listens there, but not a Ray cluster (it does not speak "
            "gRPC); give the head node's GCS address (host:6379) or ray://host:10001"
        )


def _read_exactly(connection: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _auto_address() -> str | None:
    """The cluster `--address auto` joins: RAY_ADDRESS, else the one `ray start` recorded here."""
    if os.environ.get("RAY_ADDRESS", "auto") != "auto":
        return os.environ["RAY_ADDRESS"]
    try:
        from ray._private import services

        found = services.find_bootstrap_address(None)
    except Exception:  # a private API that moved: leave the check to ray.init
        return None
    return found if isinstance(found, str) and found else None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
