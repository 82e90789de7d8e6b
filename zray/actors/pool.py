"""Ray at the edge: long-lived actors for the engines, with resources and restarts from config."""

from __future__ import annotations

from typing import Any

import ray

from zray.actors.workers import ImageWorker, MusicWorker, TTSWorker
from zray.config import ActorConfig, Config
from zray.engines.registry import GPU_ENGINES, EngineChoice

WORKERS = {"image": ImageWorker, "tts": TTSWorker, "music": MusicWorker}
# Default GPU shares when all three models live on one card (see the README's VRAM budget).
GPU_SHARE = {"image": 0.5, "tts": 0.2, "music": 0.3}


def actor_plan(
    role: str, settings: ActorConfig, engine_names: set[str], cluster_gpus: float
) -> tuple[float, int]:
    """(num_gpus per actor, number of actors) for a role, filling in config left unset."""
    wants_gpu = bool(engine_names & GPU_ENGINES) and cluster_gpus > 0
    num_gpus = settings.num_gpus if settings.num_gpus is not None else (GPU_SHARE[role] if wants_gpu else 0.0)
    count = settings.count
    if count is None:
        count = max(1, int(cluster_gpus)) if role == "image" and wants_gpu else 1
    return num_gpus, count


def _actor(cls: type, settings: ActorConfig, num_gpus: float, *args: Any) -> Any:
    # max_task_retries lets Ray replay a request on a restarted actor; requests are idempotent
    # because each writes a content-addressed store key.
    return (
        ray.remote(cls)
        .options(
            num_cpus=settings.num_cpus,
            num_gpus=num_gpus,
            max_restarts=settings.max_restarts,
            max_task_retries=settings.max_task_retries,
        )
        .remote(*args)
    )


class ActorPool:
    """Actors per role (several image actors on a multi-GPU cluster), fed round-robin."""

    def __init__(self, config: Config, engines: EngineChoice, roles: set[str]):
        self.actors: dict[str, list[Any]] = {}
        args = {"image": (engines.image,), "tts": (engines.tts,), "music": (engines.music,)}
        names = {
            "image": {engines.image.name},
            "tts": {s.name for s in engines.tts.values()},
            "music": {engines.music.name},
        }
        gpus = float(ray.cluster_resources().get("GPU", 0))
        for role in sorted(roles):
            settings: ActorConfig = getattr(config.actors, role)
            num_gpus, count = actor_plan(role, settings, names[role], gpus)
            self.actors[role] = [_actor(WORKERS[role], settings, num_gpus, *args[role]) for _ in range(count)]
        self._busy: dict[Any, int] = {}  # outstanding requests per actor
        self._owner: dict[Any, Any] = {}  # request ref -> actor

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
