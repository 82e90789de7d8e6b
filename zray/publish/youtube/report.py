"""What an upload did, per video slot, as the CLI prints it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class VideoResult:
    lang: str
    # uploaded, resumed, restored, replaced, updated, completed, skipped, changed, planned, failed,
    # unapproved (held back by the review gate: its message is the whole line)
    action: str
    video_id: str | None = None
    message: str = ""
    warnings: list[str] = field(default_factory=list)
    slot: str = ""  # the record entry (`es/short-01`) when it is not the language itself

    @property
    def name(self) -> str:
        return self.slot or self.lang

    @property
    def failed(self) -> bool:
        return self.action in ("failed", "unapproved")

    def line(self) -> str:
        if self.action == "unapproved":
            return self.message
        where = f" https://youtu.be/{self.video_id}" if self.video_id else ""
        text = f"{self.name}: {self.action}{where}"
        return f"{text}: {self.message}" if self.message else text


LanguageResult = VideoResult  # the name before Shorts made a language hold several videos


@dataclass
class UploadReport:
    results: list[VideoResult]
    units: dict[str, int] = field(default_factory=dict)  # planned quota units by bucket
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def failed(self) -> list[VideoResult]:
        return [r for r in self.results if r.failed]

    def result(self, name: str) -> VideoResult:
        return next(r for r in self.results if r.name == name)

    def lines(self) -> list[str]:
        lines = [r.line() for r in self.results]
        lines += [f"{r.name}: warning: {w}" for r in self.results for w in r.warnings]
        return lines
