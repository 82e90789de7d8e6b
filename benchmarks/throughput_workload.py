"""The throughput benchmark's batch: its shape, its scripts, zray's settings for it, and the GPU time
it must take at the measured costs (sim_engines.MEASURED)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sim_engines import SimSettings

from zray.config import Config, load_config
from zray.engines.musicgen import MusicGenSettings
from zray.engines.vram import engine_footprint, shares
from zray.engines.zimage import ZImageSettings
from zray.pipeline.prepare import RunRequest
from zray.script import Script, load_script

LANGUAGES = ("es", "en", "ca", "fr", "it", "pt", "de", "ja")


@dataclass(frozen=True)
class Workload:
    episodes: int
    scenes: int
    languages: int
    music_s: float  # seconds of music generated per episode (zray's audio.music_seconds)

    @property
    def langs(self) -> list[str]:
        return list(LANGUAGES[: self.languages])

    def image_seconds(self, sim: SimSettings) -> float:
        """Simulated seconds of the image actor: scene images and a thumbnail base per language.
        On one GPU this is the batch's image-bound limit: images never wait for each other's actor."""
        return sim.time_scale * self.episodes * (self.scenes * sim.image_s + self.languages * sim.thumb_s)

    def tts_seconds(self, sim: SimSettings) -> float:
        return (
            sim.time_scale * self.episodes * self.scenes * self.languages * sim.narration_s * sim.tts_s_per_s
        )

    def music_seconds(self, sim: SimSettings) -> float:
        return sim.time_scale * self.episodes * self.music_s * sim.music_s_per_s

    def gpu_seconds(self, sim: SimSettings) -> float:
        return self.image_seconds(sim) + self.tts_seconds(sim) + self.music_seconds(sim)

    def cpu_seconds(self, sim: SimSettings) -> float:
        c = sim.cpu_s
        per_episode = (
            self.scenes * c["segment"]
            + self.scenes * self.languages * c["pad"]
            + self.languages * (c["video"] + c["thumbs"] + c["subs"])
        )
        return sim.time_scale * self.episodes * per_episode


def gpu_shares() -> dict[str, float]:
    """The actors' shares zray derives for the production engines (Z-Image resident, Kokoro, MusicGen
    small): the simulated engines are custom ones, which zray would give no share of its own."""
    gib = {
        "image": engine_footprint("zimage", ZImageSettings()),
        "tts": engine_footprint("kokoro", None),
        "music": engine_footprint("musicgen", MusicGenSettings()),
    }
    return shares({role: row.gib for role, row in gib.items() if row is not None})


def write_scripts(folder: Path, workload: Workload) -> list[Path]:
    """One script per episode; short narration, since the simulated engines ignore the text."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for episode in range(1, workload.episodes + 1):
        scenes = [
            {
                "scene_id": i,
                "image_prompt": f"Episode {episode}, scene {i}: a quiet landscape",
                **{f"script_{lang}": f"Scene {i} of episode {episode} ({lang})." for lang in workload.langs},
                **{f"chapter_{lang}": f"Part {i // 3 + 1}" for lang in workload.langs},
            }
            for i in range(workload.scenes)
        ]
        data = {
            "project_title": "Throughput benchmark",
            "saga": 1,
            "episode": episode,
            "global_music_prompt": "calm ambient pads",
            "scenes": scenes,
            "seo": {
                lang: {"variants": [{"title": f"Episode {episode}", "thumb_text": f"EP {episode}"}]}
                for lang in workload.langs
            },
        }
        path = folder / f"SAGA_01_Episode_{episode:02d}.json"
        path.write_text(json.dumps(data), encoding="utf-8")
        paths.append(path)
    return paths


def bench_config(output: Path, *, workload: Workload, max_in_flight: int) -> Config:
    """zray's settings for the batch: the simulated engines, production's GPU shares, zray's default
    counts and placement (an image, narration and music actor pinned to each GPU)."""
    engines = {
        "image": "sim_engines:SimImageEngine",
        "music": "sim_engines:SimMusicEngine",
        "tts_default": "sim_engines:SimTTSEngine",
    }
    actors = {role: {"num_gpus": share} for role, share in gpu_shares().items()}
    return load_config(
        None,
        output=str(output),
        profile="draft",
        quiet=True,
        shared_storage=True,  # every simulated node is this machine
        max_in_flight=max_in_flight,
        video={"width": 64, "height": 64, "fps": 24, "preset": "fast", "gop": 24},
        audio={"music_seconds": workload.music_s},
        engines=engines,
        actors=actors,
        executor="ray",
    )


def load_items(paths: list[Path], workload: Workload) -> list[tuple[RunRequest, Script]]:
    return [(RunRequest(script=p, languages=workload.langs), load_script(p)[0]) for p in paths]
