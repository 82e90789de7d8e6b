"""The run's own log file: everything a person needs to see what a run did, one file per episode.

Records carry the episode they are about (`extra={"episode": ...}`); a record without one (the
engines chosen, a shared warning) belongs to every episode of the run. The file is written when
the episode's run ends, also when it failed or was interrupted; a rerun that did nothing writes
none.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys

from zray import __version__
from zray import episode as layout
from zray.store import Store, StoreError

log = logging.getLogger("zray")


class RunLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[tuple[str | None, str]] = []
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s"))
        self.started = dt.datetime.now()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((getattr(record, "episode", None), self.format(record)))

    def lines_for(self, episode: str) -> list[str]:
        return [line for owner, line in self.records if owner in (None, episode)]

    def warnings_for(self, episode: str) -> list[str]:
        return [line.split(" ", 3)[-1] for line in self.lines_for(episode) if " WARNING " in line]

    def write(self, store: Store, *, title: str, episode: str, extra: list[str] | None = None) -> str | None:
        """Write the episode's log into its folder; returns its path there (None if it could not)."""
        stamp = self.started.strftime("%Y%m%d_%H%M%S")
        key = layout.log_file(title, stamp)
        header = [
            f"zray {__version__}: {' '.join(['zray', *sys.argv[1:]])}",
            f"started {self.started.isoformat(timespec='seconds')}",
        ]
        body = header + self.lines_for(episode) + (extra or [])
        try:
            store.write_text(key, "\n".join(body) + "\n")
        except (OSError, StoreError) as exc:
            log.warning("could not write the run log to %s: %s", store.url(key), exc)
            return None
        return key


def episode_extra(episode: str) -> dict[str, str]:
    return {"episode": episode}
