"""Audio in the episode's store, as the long video's and the Shorts' steps read and keep it: a WAV
or an intro's sound decoded to the pipeline's rate, and the AAC chunk cache as files."""

from __future__ import annotations

import numpy as np
import soundfile

from zray.media import audio
from zray.media.constants import SAMPLE_RATE
from zray.store import Store


def read_audio(store: Store, key: str, *, channels: int | None = 1) -> np.ndarray:
    """A stored audio file at SAMPLE_RATE, float32 (channels, samples); `channels=None` keeps the
    file's own (mono or stereo; more are mixed down to two)."""
    with store.local_copy(key) as local:
        if channels is None:
            channels = min(soundfile.info(str(local)).channels, 2)
        return audio.decode_audio(local, sample_rate=SAMPLE_RATE, channels=channels)


def intro_audio(store: Store, key: str, frames: int, fps: int) -> np.ndarray:
    """The intro's own sound, fitted to its frame count (silence if it has none)."""
    n = frames * audio.samples_per_frame(sample_rate=SAMPLE_RATE, fps=fps)
    try:
        with store.local_copy(key) as local:
            sound = audio.decode_audio(local, sample_rate=SAMPLE_RATE, channels=2)
    except audio.AudioError:
        sound = np.zeros((2, 0), dtype=np.float32)
    if sound.shape[1] >= n:
        return sound[:, :n]
    return np.pad(sound, ((0, 0), (0, n - sound.shape[1])))


class StoreChunkCache:
    """The AAC chunk cache (`zray.media.chunk_store.ChunkCache`) as files in the episode folder, one
    folder per language; it remembers which records this encode used, so the rest can go."""

    def __init__(self, store: Store, folder: str):
        self.store, self.folder = store, folder
        self.used: set[str] = set()

    def _path(self, key: str) -> str:
        return f"{self.folder}/{key}.bin"

    def get(self, key: str) -> bytes | None:
        path = self._path(key)
        self.used.add(path)
        try:
            return self.store.read_bytes(path)
        except FileNotFoundError:
            return None

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        self.used.add(path)
        self.store.write_bytes(path, data)

    def forget_unused(self) -> None:
        """Records of earlier versions of this language's audio: no later encode can use them."""
        for path in self.store.list(self.folder):
            if path not in self.used:
                self.store.remove(path)
