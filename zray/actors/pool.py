"""Ray at the edge: long-lived actors for the engines, with resources and restarts from config.

Placement (which GPU each actor gets) is `zray.actors.placement`. The pool also watches the GPU
nodes: an actor whose node died takes no new requests, and the requests it held are handed back to
the driver to send elsewhere, since its restart may wait for a GPU that no longer exists.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from typing import Any

import ray
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from zray.actors.placement import actor_plans, gpu_bundles, group_nodes, reserve, role_footprints
from zray.actors.workers import WORKERS
from zray.config import ActorConfig, Config
from zray.engines.registry import RoleEngines
from zray.work import Outcome, Work, perform

log = logging.getLogger("zray")


def where(worker: str) -> dict[str, Any]:
    """Which executor, worker, Ray node and GPU ran a unit of work: run.json shows how work
    spread over a cluster, for model calls and CPU tasks alike."""
    gpus = ray.get_gpu_ids()
    place: dict[str, Any] = {"executor": "ray", "worker": worker}
    place["node"] = ray.get_runtime_context().get_node_id()[:12]
    if gpus:
        place["gpu"] = str(gpus[0])
    return place


@functools.cache
def _remote_class(cls: type) -> Any:
    """The worker class as a Ray actor class whose `perform(work)` runs a request through the one
    `perform` every executor uses. Cached: Ray exports a class definition once, not once per actor."""

    class Placed(cls):  # type: ignore[misc, valid-type]
        def perform(self, work: Work) -> Outcome:
            return dataclasses.replace(perform(work, self.run), where=where(f"actor:{work.role}"))

    Placed.__name__ = Placed.__qualname__ = cls.__name__
    return ray.remote(Placed)


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
    # Music and video holders batch the requests that arrive together (see MusicWorker): they take them at once.
    concurrency = getattr(cls, "BATCH_MAX", 1)
    if concurrency > 1:
        options["max_concurrency"] = concurrency
    return _remote_class(cls).options(**options).remote(*args)


class ActorPool:
    """Actors per role (one per GPU for GPU engines), each request to the least busy actor of its role."""

    def __init__(self, config: Config, engines: RoleEngines, roles: set[str]):
        self.actors: dict[str, list[Any]] = {}
        self._args = {
            "image": (engines.image,),
            "tts": (engines.tts,),
            "music": (engines.music,),
            "video": (engines.video,),
        }
        specs = {
            "image": [engines.image],
            "tts": list(engines.tts.values()),
            "music": [engines.music],
            "video": [engines.video] if engines.video else [],
        }
        uses_gpu = {role: any(spec.uses_gpu for spec in role_specs) for role, role_specs in specs.items()}
        gpus = float(ray.cluster_resources().get("GPU", 0))
        footprints = role_footprints(
            {role: [(s.name, s.settings) for s in specs[role] if s.uses_gpu] for role in sorted(roles)}
        )
        self._plans = actor_plans(
            config.actors, {role: uses_gpu[role] for role in sorted(roles)}, gpus, footprints=footprints
        )
        self._settings: dict[str, ActorConfig] = {role: getattr(config.actors, role) for role in self._plans}
        self._bundles = gpu_bundles(self._plans, int(gpus)) or []
        self.groups: list[PlacementGroup] = reserve(self._bundles) if self._bundles else []
        self._slot: dict[Any, int] = {}  # pinned actor -> its GPU slot (index into groups)
        self._waiting: dict[int, list[str]] = {}  # slot being re-reserved -> roles to start there
        self._busy: dict[Any, int] = {}  # outstanding requests per actor
        self._owner: dict[Any, Any] = {}  # request ref -> actor
        for role, (share, count, _) in self._plans.items():
            self.actors[role] = []
            for i in range(count):
                self._start(role, i % len(self.groups) if self.groups and share > 0 else None)

    def _start(self, role: str, slot: int | None) -> None:
        strategy = None
        if slot is not None:
            strategy = PlacementGroupSchedulingStrategy(self.groups[slot], placement_group_bundle_index=0)
        actor = _actor(WORKERS[role], self._settings[role], self._plans[role][0], self._args[role], strategy)
        if slot is not None:
            self._slot[actor] = slot
        self.actors[role].append(actor)

    def submit(self, role: str, work: Work) -> Any:
        """Send a request to the least busy actor of the role (a pool of image actors, one per GPU)."""
        actor = min(self.actors[role], key=lambda a: self._busy.get(a, 0))
        ref = actor.perform.remote(work)
        self._busy[actor] = self._busy.get(actor, 0) + 1
        self._owner[ref] = actor
        return ref

    def done(self, ref: Any) -> None:
        actor = self._owner.pop(ref, None)
        if actor is not None:
            self._busy[actor] -= 1

    def lost_requests(self) -> list[Any]:
        """Requests held by pinned actors whose node has died since the last call.

        Ray would restart such an actor only when its GPU reservation finds a GPU again, which may
        be never, so the slot's actors are dropped, their requests handed back, and the GPU asked
        for again: an autoscaler adds a node, and the slot's actors start there once it is placed.
        Actors left to Ray's placement restart wherever there is room and Ray replays their requests.
        """
        if not self.groups:
            return []
        for slot in [s for s in self._waiting if ray.wait([self.groups[s].ready()], timeout=0)[0]]:
            for role in self._waiting.pop(slot):
                self._start(role, slot)
            log.info("GPU slot %d is back: its actors start again", slot)
        alive = {node["NodeID"] for node in ray.nodes() if node["Alive"]}
        requests: list[Any] = []
        for slot, node in enumerate(group_nodes(self.groups)):
            if slot not in self._waiting and node not in alive:
                requests += self._drop_slot(slot)
        return requests

    def _drop_slot(self, slot: int) -> list[Any]:
        gone = {actor for actor, s in self._slot.items() if s == slot}
        held = [ref for ref, owner in self._owner.items() if owner in gone]
        for ref in held:
            del self._owner[ref]
        roles = []
        for role, actors in self.actors.items():
            for actor in [a for a in actors if a in gone]:
                actors.remove(actor)
                roles.append(role)
                del self._slot[actor]
                self._busy.pop(actor, None)
                ray.kill(actor, no_restart=True)
        remove_placement_group(self.groups[slot])
        self.groups[slot] = placement_group([self._bundles[slot]])
        # A role left with no actor at all gets its actor now, waiting on the new reservation.
        later = [role for role in roles if self.actors[role]]
        for role in roles:
            if not self.actors[role]:
                self._start(role, slot)
        self._waiting[slot] = later
        log.warning(
            "GPU slot %d lost its node: %d model request(s) go to the other GPUs; asking for a GPU again",
            slot,
            len(held),
        )
        return held

    def shutdown(self) -> None:
        for actors in self.actors.values():
            for actor in actors:
                ray.kill(actor, no_restart=True)
        self.actors.clear()
        for group in self.groups:
            remove_placement_group(group)
        self.groups = []
