"""One word and where it is spoken: the single shape word timings take from voice engines,
through padding and the intro offset, to subtitles and burned-in captions. Stdlib only."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WordTiming:
    """A spoken word, in seconds from the start of its audio (or of the final video, once placed)."""

    word: str
    start: float
    end: float

    def shifted(self, seconds: float) -> WordTiming:
        return WordTiming(self.word, self.start + seconds, self.end + seconds)

    def to_json(self) -> dict[str, object]:
        return {"word": self.word, "start": round(self.start, 4), "end": round(self.end, 4)}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> WordTiming:
        word = data.get("word", data.get("text"))  # run.json records before 0.2 said "text"
        return cls(str(word), float(data["start"]), float(data["end"]))  # type: ignore[arg-type]
