"""zray's schedule on a simulated cluster: `execute` (the code behind `zray batch`) on Ray, with the
simulated steps handed to its executor (no global table patched)."""

from __future__ import annotations

import io
import logging
import os
import time
from pathlib import Path

import sim_steps
from sim_engines import ENV, SimSettings

from zray.config import Config
from zray.pipeline.prepare import RunRequest
from zray.script import Script

HERE = Path(__file__).resolve().parent  # on the workers' PYTHONPATH: sim_engines and sim_steps live here


class SimulatedCluster:
    """A head and worker nodes on this machine, one logical GPU each, the driver connected.

    It grows between runs (1, then 2, then 4 nodes) rather than starting afresh: on a 2-core machine a
    fresh four-node cluster and its worker pools take a minute to come up.
    """

    def __init__(self, *, cpus_per_node: int, sim: SimSettings, warm: bool):
        from ray.cluster_utils import Cluster

        self.cpus_per_node, self.warm = cpus_per_node, warm
        self.node_args = {"num_cpus": cpus_per_node, "num_gpus": 1, "object_store_memory": 256 * 2**20}
        self.sim = sim
        self.cluster = Cluster(
            initialize_head=True, head_node_args={**self.node_args, "include_dashboard": False}
        )
        self.nodes = 1
        self.connected = False

    def grow(self, nodes: int) -> None:
        """Add nodes up to `nodes`, connect, and fill every node's worker pool."""
        import ray

        for _ in range(nodes - self.nodes):
            self.cluster.add_node(**self.node_args)
        self.nodes = max(self.nodes, nodes)
        self.cluster.wait_for_nodes()
        if not self.connected:
            python_path = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
            ray.init(
                address=self.cluster.address,
                runtime_env={"env_vars": {"PYTHONPATH": python_path, ENV: self.sim.to_env()}},
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
            self.connected = True
        deadline = time.time() + 60
        while ray.cluster_resources().get("GPU", 0) < self.nodes and time.time() < deadline:
            time.sleep(0.2)
        if self.warm:
            _start_workers(self.nodes * self.cpus_per_node)

    def shutdown(self) -> None:
        import ray

        if self.connected:
            ray.shutdown()
        self.cluster.shutdown()


def _start_workers(count: int) -> None:
    """Fill every node's worker pool before the clock starts: a Ray worker process costs a second or
    two of CPU to start, and a few dozen starting at once on two cores would be timed as scheduling."""
    import ray

    @ray.remote(num_cpus=1)
    def hold(until: float) -> int:
        import sim_steps  # noqa: F401  (what the batch's tasks import)

        time.sleep(max(0.0, until - time.time()))
        return os.getpid()

    # Every task holds its CPU until all have started, so each one gets a process of its own.
    until = time.time() + 5.0
    while True:
        pids = set(ray.get([hold.remote(until) for _ in range(count)]))
        if len(pids) == count or time.time() > until + 120:
            return
        until = time.time() + 5.0


def run_zray(items: list[tuple[RunRequest, Script]], config: Config, *, max_jobs: int) -> float:
    """The batch through `execute`, the simulated steps given to its executor; the makespan in seconds."""
    from rich.console import Console

    from zray.pipeline.run import execute

    console = Console(file=io.StringIO())
    start = time.time()
    reports = execute(
        items, config, console=console, isolate=True, max_jobs=max_jobs, steps=sim_steps.SIM_STEPS
    )
    seconds = time.time() - start
    failed = {str(r.script): r.failed for r in reports if not r.ok}
    if failed:
        raise RuntimeError(f"zray failed on the benchmark batch: {failed}")
    return seconds
