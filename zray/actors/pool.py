"""Ray at the edge: long-lived actors for the engines, with resources and restarts from config."""

from __future__ import annotations

import itertools
from typing import Any

import ray

from zray.actors.workers import ImageWorker, MusicWorker, TTSWorker
from zray.config import ActorConfig, Config
from zray.engines.registry import EngineChoice

WORKERS = {"image": ImageWorker, "tts": TTSWorker, "music": MusicWorker}


def _actor(cls: type, settings: ActorConfig, *args: Any) -> Any:
    # max_task_retries lets Ray replay a request on a restarted actor; requests are idempotent
    # because each writes a content-addressed store key.
    return (
        ray.remote(cls)
        .options(
            num_cpus=settings.num_cpus,
            num_gpus=settings.num_gpus,
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
        for role in sorted(roles):
            settings: ActorConfig = getattr(config.actors, role)
            self.actors[role] = [_actor(WORKERS[role], settings, *args[role]) for _ in range(settings.count)]
        self._next = {role: itertools.cycle(actors) for role, actors in self.actors.items()}

    def submit(self, role: str, *args: Any) -> Any:
        return next(self._next[role]).run.remote(*args)

    def shutdown(self) -> None:
        for actors in self.actors.values():
            for actor in actors:
                ray.kill(actor, no_restart=True)
        self.actors.clear()
