"""YouTube API quota: what zray has spent today, per OAuth client, so an upload that cannot finish
is refused before it starts.

Quota belongs to the Google Cloud project behind client_secret.json and is shared by every
channel that project uploads to; it resets at midnight Pacific time. `videos.insert` has its own
daily bucket (counted in calls), everything else shares `daily_quota` units. The ledger only
knows what this machine spent: it is a guard against surprises, not Google's own count.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from zray.publish.auth import write_private
from zray.publish.errors import QuotaError
from zray.publish.settings import SEPARATE_BUCKETS, YouTubeConfig

PACIFIC = ZoneInfo("America/Los_Angeles")
LEDGER_FILE = "quota.json"
SHARED = "shared"
KEEP_DAYS = 7


def quota_day(now: datetime) -> str:
    """The Pacific-time date that Google's quota counter is on."""
    return _aware(now).astimezone(PACIFIC).date().isoformat()


def until_reset(now: datetime) -> timedelta:
    local = _aware(now).astimezone(PACIFIC)
    midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), tzinfo=PACIFIC)
    return midnight - local


def bucket_of(method: str) -> str:
    return method if method in SEPARATE_BUCKETS else SHARED


def plan_units(calls: Mapping[str, int], config: YouTubeConfig) -> dict[str, int]:
    """Units per bucket for a number of calls per method (`{"videos.insert": 2, ...}`)."""
    units: dict[str, int] = {}
    for method, count in calls.items():
        if count:
            bucket = bucket_of(method)
            units[bucket] = units.get(bucket, 0) + count * config.cost(method)
    return units


class QuotaLedger:
    def __init__(
        self,
        *,
        client_id: str,
        config: YouTubeConfig,
        now: datetime | None = None,
        path: Path | None = None,
    ):
        self.client_id = client_id
        self.config = config
        self._now = now
        self.path = path or Path(config.token_dir).expanduser() / LEDGER_FILE

    def now(self) -> datetime:
        return self._now or datetime.now(UTC)

    # --- reading ---------------------------------------------------------------------------------

    def spent(self, bucket: str = SHARED) -> int:
        return int(self._today(self._read()).get(bucket, 0))

    def check(self, calls: Mapping[str, int]) -> dict[str, int]:
        """Refuse (QuotaError) a plan of calls that does not fit in what is left today."""
        needed = plan_units(calls, self.config)
        data = self._read()
        for bucket, units in needed.items():
            spent = int(self._today(data).get(bucket, 0))
            limit = self.config.bucket_limit(bucket)
            if spent + units > limit:
                raise QuotaError(self._refusal(bucket, units, spent, limit))
        return needed

    def _refusal(self, bucket: str, units: int, spent: int, limit: int) -> str:
        left = max(limit - spent, 0)
        wait = until_reset(self.now())
        hours, minutes = divmod(int(wait.total_seconds()) // 60, 60)
        what = (
            "units of the shared daily quota" if bucket == SHARED else f"{bucket} calls of its daily bucket"
        )
        setting = "youtube.daily_quota" if bucket == SHARED else f"youtube.{SEPARATE_BUCKETS[bucket]}"
        return (
            f"YouTube quota: this upload needs {units:,} {what} but only {left:,} of {limit:,} are left "
            f"today for OAuth client {self.client_id} ({spent:,} spent); it resets at midnight Pacific "
            f"time, in {hours} h {minutes:02d} min (raise {setting} if Google granted more)"
        )

    # --- recording -------------------------------------------------------------------------------

    def record(self, method: str, count: int = 1) -> None:
        """Count a call that YouTube answered (it charges for every request it receives)."""
        units = count * self.config.cost(method)
        with self._locked():
            data = self._read()
            day = quota_day(self.now())
            clients = data.setdefault("clients", {})
            days = clients.setdefault(self.client_id, {})
            today = days.setdefault(day, {})
            bucket = bucket_of(method)
            today[bucket] = int(today.get(bucket, 0)) + units
            for old in sorted(days)[:-KEEP_DAYS]:
                del days[old]
            write_private(self.path, json.dumps(data, indent=1, sort_keys=True))

    # --- internals -------------------------------------------------------------------------------

    def _today(self, data: dict[str, Any]) -> dict[str, int]:
        return data.get("clients", {}).get(self.client_id, {}).get(quota_day(self.now()), {})

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError:
            return {}  # a damaged ledger counts nothing rather than blocking uploads forever
        return data if isinstance(data, dict) else {}

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # Two zray processes (two episodes) may spend the same client's quota at once.
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(self.path.with_name(f".{LEDGER_FILE}.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
