"""The levels of the final audio (loudness target, true-peak ceiling): their rules, in one place.

`zray.config.AudioConfig` calls these for its fields and the mastering code (`zray.media.master`)
for its arguments, so a value the config accepts is one the encoder accepts. `AudioError` lives
here so that this module stays stdlib only (reading a config never loads numpy or PyAV);
`zray.media.audio` re-exports it.
"""

from __future__ import annotations

import math

from zray.errors import ZrayError

# BS.1770's absolute gate is -70 LUFS; anything near it is inaudible. Above -5 LUFS a programme is
# louder than any delivery spec and the limiter would crush it.
MIN_TARGET_LUFS, MAX_TARGET_LUFS = -40.0, -5.0
# A true-peak ceiling above 0 dBTP clips in every decoder; below -12 the limiter flattens speech.
MIN_PEAK_DBFS, MAX_PEAK_DBFS = -12.0, 0.0


class AudioError(ZrayError, ValueError):
    """An audio file, array or level the pipeline cannot use; the message names it."""


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise AudioError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def check_target_lufs(value: object) -> float:
    """The integrated loudness (BS.1770, LUFS) the final mix is brought to."""
    target = _number("target_lufs", value)
    if not MIN_TARGET_LUFS <= target <= MAX_TARGET_LUFS:
        raise AudioError(
            f"target_lufs {target:g} is outside {MIN_TARGET_LUFS:g}..{MAX_TARGET_LUFS:g} LUFS; "
            "use -14 (YouTube, streaming) or -23 (EBU R128 broadcast)"
        )
    return target


def check_peak_dbfs(value: object) -> float:
    """The true-peak ceiling (dBTP) that the encoded audio itself must stay under."""
    peak = _number("peak_dbfs", value)
    if not MIN_PEAK_DBFS <= peak <= MAX_PEAK_DBFS:
        raise AudioError(
            f"peak_dbfs {peak:g} is outside {MIN_PEAK_DBFS:g}..{MAX_PEAK_DBFS:g} dBTP; "
            "use -1 (the usual ceiling for AAC delivery)"
        )
    return peak
