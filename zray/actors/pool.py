"""Ray at the edge: long-lived actors for the engines, with resources and restarts from config.

On a cluster with GPUs, actors that hold a GPU share are pinned: a placement group reserves one
bundle per GPU, and actor i of every role goes to bundle i. Left to itself Ray packs fractional
shares, so two 0.5-GPU image actors could share one card while another card idles, or a narration
actor could find no share left anywhere.
"""

from __future__ import annotations

import logging
from typing import Any

import ray
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from zray.actors.workers import ImageWorker, MusicWorker, TTSWorker
from zray.config import ActorConfig, ActorsConfig, Config
from zray.engines.registry import GPU_ENGINES, EngineChoice
from zray.pipeline.cluster import ClusterError

WORKERS = {"image": ImageWorker, "tts": TTSWorker, "music": MusicWorker}
# Default GPU shares when all three models live on one card (see the README's VRAM budget).
GPU_SHARE = {"image": 0.5, "tts": 0.2, "music": 0.3}
# How long to wait for the cluster to reserve the GPUs: an autoscaler may have to start GPU nodes.
RESERVE_TIMEOUT_S = 1800.0
RESERVE_WAIT_S = 60.0
log = logging.getLogger("zray")


def actor_plans(
    actors: ActorsConfig, engine_names: dict[str, set[str]], cluster_gpus: float
) -> dict[str, tuple[float, int, float]]:
    """role -> (GPU share per actor, number of actors, CPUs per actor), filling in config left unset.

    A role with a GPU share gets one actor per GPU slot, so every card holds a full set of models
    and no role waits on another card. The slots are the cluster's GPUs, or more when config asks
    for more actors of a role than there are GPUs yet (an autoscaler adds the nodes).
    """
    shares: dict[str, float] = {}
    for role, names in engine_names.items():
        settings: ActorConfig = getattr(actors, role)
        wants_gpu = bool(names & GPU_ENGINES) and cluster_gpus > 0
        shares[role] = (
            settings.num_gpus if settings.num_gpus is not None else (GPU_SHARE[role] if wants_gpu else 0.0)
        )
    asked = [getattr(actors, role).count or 0 for role, share in shares.items() if share > 0]
    slots = max([int(cluster_gpus), *asked])
    plans = {}
    for role, share in shares.items():
        settings = getattr(actors, role)
        count = settings.count or (max(1, slots) if share > 0 else 1)
        plans[role] = (share, count, settings.num_cpus)
    return plans


def gpu_bundles(plans: dict[str, tuple[float, int, float]], gpus: int) -> list[dict[str, float]] | None:
    """Bundles of one GPU for the actors with a GPU share (role -> (share, count, cpus)), actor i of
    a role in bundle i; None when there is nothing to pin or a bundle's shares exceed one GPU.

    There are as many bundles as GPUs, or as actors of the largest role when config asks for more
    than the cluster has now: an autoscaler then adds GPU nodes for the bundles that do not fit."""
    pinned = [plan for plan in plans.values() if plan[0] > 0]
    if not pinned:
        return None
    count = max(gpus, *(n for _, n, _ in pinned))
    shares, cpus = [0.0] * count, [0.0] * count
    for share, n, num_cpus in pinned:
        for i in range(n):
            shares[i % count] += share
            cpus[i % count] += num_cpus
    if max(shares) > 1 + 1e-9:
        log.warning(
            "the actors' GPU shares add up to %.2f GPUs on one card; leaving their placement to Ray",
            max(shares),
        )
        return None
    return [{"GPU": 1.0, **({"CPU": c} if c > 0 else {})} for c in cpus]


def _reporting_place(cls: type) -> type:
    """The worker class, with each result naming the node and GPU that made it (run.json shows
    how model calls spread over a cluster, as it does for CPU tasks)."""

    class Placed(cls):  # type: ignore[misc, valid-type]
        def run(self, *args: Any) -> dict[str, Any]:
            result = super().run(*args)
            gpus = ray.get_gpu_ids()
            place = {"node": ray.get_runtime_context().get_node_id()[:12]}
            return {**result, **place, **({"gpu": str(gpus[0])} if gpus else {})}

    Placed.__name__ = Placed.__qualname__ = cls.__name__
    return Placed


def _actor(
    cls: type, settings: ActorConfig, num_gpus: float, args: tuple[Any, ...], strategy: Any = None
) -> Any:
    # max_task_retries lets Ray replay a request on a restarted actor; requests are idempotent
    # because each writes a content-addressed store key.
    options: dict[str, Any] = {
        "num_cpus": settings.num_cpus,
        "num_gpus": num_gpus,
        "max_restarts": settings.max_restarts,
        "max_task_retries": settings.max_task_retries,
    }
    if strategy is not None:
        options["scheduling_strategy"] = strategy
    return ray.remote(_reporting_place(cls)).options(**options).remote(*args)


class ActorPool:
    """Actors per role (one per GPU for GPU engines), each request to the least busy actor of its role."""

    def __init__(self, config: Config, engines: EngineChoice, roles: set[str]):
        self.actors: dict[str, list[Any]] = {}
        args = {"image": (engines.image,), "tts": (engines.tts,), "music": (engines.music,)}
        names = {
            "image": {engines.image.name},
            "tts": {s.name for s in engines.tts.values()},
            "music": {engines.music.name},
        }
        gpus = float(ray.cluster_resources().get("GPU", 0))
        plans = actor_plans(config.actors, {role: names[role] for role in sorted(roles)}, gpus)
        self.group: PlacementGroup | None = None
        bundles = gpu_bundles(plans, int(gpus))
        if bundles is not None:
            self.group = _reserve(bundles)
        for role, (num_gpus, count, _) in plans.items():
            settings = getattr(config.actors, role)
            self.actors[role] = [
                _actor(WORKERS[role], settings, num_gpus, args[role], self._strategy(num_gpus, i))
                for i in range(count)
            ]
        self._busy: dict[Any, int] = {}  # outstanding requests per actor
        self._owner: dict[Any, Any] = {}  # request ref -> actor

    def _strategy(self, num_gpus: float, index: int) -> Any:
        if self.group is None or num_gpus <= 0:
            return None
        return PlacementGroupSchedulingStrategy(
            self.group, placement_group_bundle_index=index % len(self.group.bundle_specs)
        )

    def submit(self, role: str, *args: Any) -> Any:
        """Send a request to the least busy actor of the role (a pool of image actors, one per GPU)."""
        actor = min(self.actors[role], key=lambda a: self._busy.get(a, 0))
        ref = actor.run.remote(*args)
        self._busy[actor] = self._busy.get(actor, 0) + 1
        self._owner[ref] = actor
        return ref

    def done(self, ref: Any) -> None:
        actor = self._owner.pop(ref, None)
        if actor is not None:
            self._busy[actor] -= 1

    def shutdown(self) -> None:
        for actors in self.actors.values():
            for actor in actors:
                ray.kill(actor, no_restart=True)
        self.actors.clear()
        if self.group is not None:
            remove_placement_group(self.group)
            self.group = None


def _reserve(bundles: list[dict[str, float]]) -> PlacementGroup:
    # SPREAD puts bundles on different nodes where it can; a node with several GPUs takes several.
    group = placement_group(bundles, strategy="SPREAD")
    waited = 0.0
    while not ray.wait([group.ready()], timeout=RESERVE_WAIT_S)[0]:
        waited += RESERVE_WAIT_S
        if waited >= RESERVE_TIMEOUT_S:
            remove_placement_group(group)
            raise ClusterError(
                f"the cluster could not reserve {len(bundles)} GPU(s) for zray's actors in "
                f"{RESERVE_TIMEOUT_S:.0f} s (other jobs hold them, or no GPU node can be added); "
                "see `ray status`"
            )
        log.warning(
            "still waiting for %d GPU(s) for the actors (%.0f s); see `ray status`", len(bundles), waited
        )
    log.info("reserved %d GPU bundle(s) for the actors", len(bundles))
    return group
