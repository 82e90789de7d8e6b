"""Publishing settings: `[youtube]` and `[web]` in the config file.

This module imports no Google library, so the base install can read and validate a config
that mentions YouTube without the `publish` extra.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, field_validator

Privacy = Literal["private", "unlisted", "public"]

KIB = 1024
MIB = 1024 * KIB
# Resumable uploads take chunks in multiples of 256 KiB (only the last chunk may be shorter).
CHUNK_GRANULE = 256 * KIB

# Unit costs from YouTube's quota table (https://developers.google.com/youtube/v3/determine_quota_cost,
# checked 2026-11). Since 2026-06-01 `videos.insert` is charged to its own bucket, 100 calls a day at
# 1 unit each; before that it cost 1,600 units, and from 2025-12-04 about 100, of the shared 10,000.
# Every other method below draws on the shared daily budget.
DEFAULT_QUOTA_COSTS: dict[str, int] = {
    "videos.insert": 1,
    "videos.update": 50,
    "videos.list": 1,
    "thumbnails.set": 50,
    "captions.insert": 400,
    "captions.update": 450,
    "captions.list": 50,
    # The look-up for an upload a lost record forgot (the channel's uploads playlist, then tags).
    "channels.list": 1,
    "playlistItems.list": 1,
}
# Methods with a daily bucket of their own (the value is `YouTubeConfig` field holding its limit).
SEPARATE_BUCKETS: dict[str, str] = {"videos.insert": "daily_uploads"}


class WebConfig(BaseModel):
    """The `[web]` table: where `zray publish` and `zray run --publish` put the episode."""

    model_config = ConfigDict(extra="forbid")

    site: str | None = None  # fsspec URL of the site root
    layout: Literal["seed", "hugo"] = "seed"
    essays_dir: Path = Path("inputs/essays")


def default_token_dir() -> Path:
    return Path(platformdirs.user_config_dir("zray")) / "tokens"


class YouTubeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_secret: Path = Path("client_secret.json")
    token_dir: Path = Field(default_factory=default_token_dir)
    privacy: Privacy = "private"
    category_id: str = "28"  # Science & Technology
    made_for_kids: bool = False
    synthetic_media: bool = True  # the images and voices are AI-made: YouTube asks creators to say so
    notify_subscribers: bool = True
    daily_quota: int = Field(10_000, gt=0)  # units of the shared bucket, per OAuth client and Pacific day
    daily_uploads: int = Field(100, gt=0)  # videos.insert's own bucket, in calls
    quota_costs: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_QUOTA_COSTS))
    chunk_size: int = Field(8 * MIB, gt=0)
    retries: int = Field(8, ge=0)  # consecutive failed attempts tolerated per request
    backoff_seconds: float = Field(1.0, ge=0)  # first wait; doubles on each consecutive failure
    timeout_seconds: float = Field(120.0, gt=0)
    api_endpoint: str | None = None  # None: Google's; tests point it at a fake on 127.0.0.1
    token_uri: str | None = None  # None: the one in client_secret.json / the token
    hashtags: int = Field(3, ge=0, le=15)  # YouTube shows the first three above the title
    thumbnail_max_bytes: int = Field(2 * MIB, gt=0)  # larger PNGs are re-encoded as JPEG

    @field_validator("chunk_size")
    @classmethod
    def _whole_granules(cls, value: int) -> int:
        if value % CHUNK_GRANULE:
            fixed = max(CHUNK_GRANULE, value - value % CHUNK_GRANULE)
            raise ValueError(f"{value} is not a multiple of 256 KiB ({CHUNK_GRANULE} bytes); try {fixed}")
        return value

    @field_validator("quota_costs")
    @classmethod
    def _over_defaults(cls, value: dict[str, int]) -> dict[str, int]:
        # A config that names one method keeps the defaults for the others.
        bad = {method: cost for method, cost in value.items() if cost < 0}
        if bad:
            raise ValueError(f"quota costs cannot be negative: {bad}")
        return {**DEFAULT_QUOTA_COSTS, **value}

    def cost(self, method: str) -> int:
        return self.quota_costs.get(method, 1)  # YouTube charges at least one unit for any request

    def bucket_limit(self, bucket: str) -> int:
        field = SEPARATE_BUCKETS.get(bucket)
        return int(getattr(self, field)) if field else self.daily_quota
