"""Starting or joining Ray."""

from __future__ import annotations

import logging
import os

from zray.config import Config

log = logging.getLogger("zray")


class ClusterError(RuntimeError):
    pass


def connect(config: Config) -> bool:
    """Join `config.address` or start an embedded Ray sized to this machine; True if we started it.

    An already-initialized Ray (a test session, a `ray job` entrypoint) is used as it is.
    """
    import ray

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
    ray.init(
        num_cpus=os.cpu_count() or 1,
        include_dashboard=config.dashboard,
        logging_level=logging.WARNING,
        log_to_driver=False,
    )
    return True


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
