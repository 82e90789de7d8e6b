"""zray's CPU steps with a simulated cost, so the benchmark measures scheduling, not two busy cores.

Typed steps like zray's own (`step(store, request, inputs) -> result`), handed to `execute(...,
steps=SIM_STEPS)`: the executor runs them wherever it runs the real ones (Ray tasks, by reference,
so workers need this folder on their PYTHONPATH). Two modes, picked by `SimSettings.real_steps`:

- simulated (the default): the step sleeps for its cost and writes small placeholder files at every
  output path, returning results shaped like the real step's (frame counts from the narration's
  length), so the driver, the records and everything downstream run unchanged;
- real: the real step runs on the benchmark's tiny media, then sleeps out the rest of its cost. On
  a 2-core machine the real audio work of many simultaneous steps overruns its cost, which the
  events file records, so that mode is for checking the outputs rather than for scaling figures.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from sim_engines import SimSettings, record

from zray.nodes import (
    CaptionedInputs,
    CaptionedRequest,
    ImageResult,
    ImportRequest,
    IntroRequest,
    IntroResult,
    Kind,
    MotionInputs,
    MotionRequest,
    PadInputs,
    PadRequest,
    PadResult,
    Request,
    Result,
    SegmentInputs,
    SegmentRequest,
    SegmentResult,
    ShortsInputs,
    ShortsRequest,
    ShortsResult,
    SubsInputs,
    SubsRequest,
    SubsResult,
    TailInputs,
    TailRequest,
    TailResult,
    ThumbsInputs,
    ThumbsRequest,
    ThumbsResult,
    VideoInputs,
    VideoRequest,
    VideoResult,
)
from zray.store import Store

Step = Callable[[Store, Any, Any], Result]


def _timed(kind: Kind, store: Store, request: Request, inputs: Any) -> Result:
    settings = SimSettings.from_env()
    cost = settings.cpu_s.get(kind.value, 0.0) * settings.time_scale
    start = time.time()
    if settings.real_steps:
        from zray.pipeline.steps import STEPS  # media libraries: only in this mode

        result = STEPS[kind](store, request, inputs)
    else:
        result = PLACEHOLDERS[kind](store, request, inputs)
    real = time.time() - start
    if real < cost:
        time.sleep(cost - real)
    record(settings, kind.value, start, time.time(), gpu=False, nominal=cost, real=real)
    return result


def pad(store: Store, request: PadRequest, inputs: PadInputs) -> Result:
    return _timed(Kind.PAD, store, request, inputs)


def segment(store: Store, request: SegmentRequest, inputs: SegmentInputs) -> Result:
    return _timed(Kind.SEGMENT, store, request, inputs)


def intro(store: Store, request: IntroRequest, inputs: Any) -> Result:
    return _timed(Kind.INTRO, store, request, inputs)


def import_image(store: Store, request: ImportRequest, inputs: Any) -> Result:
    return _timed(Kind.IMPORT, store, request, inputs)


def motion(store: Store, request: MotionRequest, inputs: MotionInputs) -> Result:
    return _timed(Kind.MOTION, store, request, inputs)


def tail(store: Store, request: TailRequest, inputs: TailInputs) -> Result:
    return _timed(Kind.TAIL, store, request, inputs)


def thumbs(store: Store, request: ThumbsRequest, inputs: ThumbsInputs) -> Result:
    return _timed(Kind.THUMBS, store, request, inputs)


def subs(store: Store, request: SubsRequest, inputs: SubsInputs) -> Result:
    return _timed(Kind.SUBS, store, request, inputs)


def assemble(store: Store, request: VideoRequest, inputs: VideoInputs) -> Result:
    return _timed(Kind.VIDEO, store, request, inputs)


def captioned(store: Store, request: CaptionedRequest, inputs: CaptionedInputs) -> Result:
    return _timed(Kind.CAPTIONED, store, request, inputs)


def shorts(store: Store, request: ShortsRequest, inputs: ShortsInputs) -> Result:
    return _timed(Kind.SHORTS, store, request, inputs)


SIM_STEPS: dict[Kind, Step] = {
    Kind.IMPORT: import_image,
    Kind.PAD: pad,
    Kind.SEGMENT: segment,
    Kind.MOTION: motion,
    Kind.TAIL: tail,
    Kind.INTRO: intro,
    Kind.THUMBS: thumbs,
    Kind.SUBS: subs,
    Kind.VIDEO: assemble,
    Kind.CAPTIONED: captioned,
    Kind.SHORTS: shorts,
}


# --- placeholders: what each step returns, without the media work --------------------------------


def _write(store: Store, request: Request) -> None:
    for key in request.outputs:
        store.write_bytes(key, f"simulated {request.kind.value} {key}\n".encode())


def _pad(store: Store, request: PadRequest, inputs: PadInputs) -> PadResult:
    _write(store, request)
    seconds = inputs.speech.seconds
    return PadResult(
        path=request.output,
        frames=math.ceil(seconds * request.fps) + 1,  # the seed's frame-perfect padding
        speech_seconds=seconds,
        words=inputs.speech.words,
    )


def _segment(store: Store, request: SegmentRequest, inputs: SegmentInputs) -> SegmentResult:
    _write(store, request)
    return SegmentResult(path=request.output)


def _import(store: Store, request: ImportRequest, inputs: Any) -> ImageResult:
    _write(store, request)
    return ImageResult(path=request.output)


def _motion(store: Store, request: MotionRequest, inputs: MotionInputs) -> SegmentResult:
    _write(store, request)
    return SegmentResult(path=request.output)


def _tail(store: Store, request: TailRequest, inputs: TailInputs) -> TailResult:
    _write(store, request)
    return TailResult(path=request.output, frames=request.transition)


def _intro(store: Store, request: IntroRequest, inputs: Any) -> IntroResult:
    _write(store, request)
    return IntroResult(path=request.output, frames=3 * request.video.fps)


def _thumbs(store: Store, request: ThumbsRequest, inputs: ThumbsInputs) -> ThumbsResult:
    _write(store, request)
    return ThumbsResult(path=request.official, variants=request.variants)


def _subs(store: Store, request: SubsRequest, inputs: SubsInputs) -> SubsResult:
    _write(store, request)
    return SubsResult(path=request.srt, cues=len(request.scenes), chapters=0)


def _assemble(store: Store, request: VideoRequest, inputs: VideoInputs) -> VideoResult:
    _write(store, request)
    frames = sum(p.frames for p in inputs.pads) + (inputs.intro.frames if inputs.intro else 0)
    return VideoResult(
        path=request.output,
        frames=frames,
        duration=frames / request.video.fps,
        size=store.size(request.output),
    )


def _captioned(store: Store, request: CaptionedRequest, inputs: CaptionedInputs) -> SegmentResult:
    _write(store, request)
    return SegmentResult(path=request.output)


def _shorts(store: Store, request: ShortsRequest, inputs: ShortsInputs) -> ShortsResult:
    # Its files are known only once it runs; a simulated run makes none.
    return ShortsResult(path=request.folder)


PLACEHOLDERS: dict[Kind, Step] = {
    Kind.IMPORT: _import,
    Kind.PAD: _pad,
    Kind.SEGMENT: _segment,
    Kind.MOTION: _motion,
    Kind.TAIL: _tail,
    Kind.INTRO: _intro,
    Kind.THUMBS: _thumbs,
    Kind.SUBS: _subs,
    Kind.VIDEO: _assemble,
    Kind.CAPTIONED: _captioned,
    Kind.SHORTS: _shorts,
}
