"""What a run tells its caller about each episode: what it made, what failed and why."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The scope of a failure that stops the whole episode (a bad intro, an unwritable folder, an
# interrupted run); other failures are a language's. run.json records it under this key.
EPISODE = "all"


class Failures(dict[str, str]):
    """Why an episode did not finish: a language (or EPISODE, the whole episode) -> its first failure's
    reason. A dict, as run.json records it; ask it through its methods."""

    @classmethod
    def of_episode(cls, reason: str) -> Failures:
        return cls({EPISODE: reason})

    @classmethod
    def of_language(cls, lang: str, reason: str) -> Failures:
        return cls({lang: reason})

    def reason(self, lang: str) -> str | None:
        """Why the language's video was not finished; None if nothing stopped it."""
        return self.get(lang) or self.get(EPISODE)

    def finished(self, languages: Iterable[str]) -> list[str]:
        return [lang for lang in languages if lang not in self and EPISODE not in self]


@dataclass
class RunReport:
    script: Path
    episode: str
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: Failures = field(default_factory=Failures)
    languages: list[str] = field(default_factory=list)
    built: int = 0
    cached: int = 0
    seconds: float = 0.0
    executor: str | None = None  # None: nothing ran
    video_names: dict[str, str] = field(default_factory=dict)
    why: dict[str, str] = field(default_factory=dict)  # each step this run made -> why it ran (--explain's)

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def finished(self) -> list[str]:
        """The languages whose video this run finished."""
        return self.failed.finished(self.languages)

    @property
    def ray_started(self) -> bool:
        return self.executor == "ray"
