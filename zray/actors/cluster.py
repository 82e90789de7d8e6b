"""Starting or joining Ray."""

from __future__ import annotations

import logging
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
    # (joining one is what --address auto is for).
    ray.init(
        address="local",
        num_cpus=os.cpu_count() or 1,
        include_dashboard=config.dashboard,
        logging_level=logging.WARNING,
        log_to_driver=False,
    )
    return True


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


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds, not minutes: Ray itself keeps retrying an address that never answers."""
    if address == "auto":
        return
    host_port = address.removeprefix("ray://").rsplit("/", 1)[0]
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"--address {address}: expected auto, host:port or ray://host:port")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ClusterError(
            f"--address {address}: cannot reach a Ray cluster there ({exc.strerror or exc}); "
            "check the address, or leave --address out to run on this machine"
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
