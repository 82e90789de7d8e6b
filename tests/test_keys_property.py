"""Every request type's key covers every field that decides its bytes, and nothing else.

The kinds are read from zray.nodes (REQUESTS, INPUTS, RESULTS, STEP_VERSION), so a new kind is
covered without touching this file. Values are drawn from each field's type hint.

Covered for every kind: changing any key field, any input's key or the engine's identity changes the
key; changing an output path does not. That an excluded field changes no byte the step writes is
shown by running the cheap steps (pad, segment, thumbs, subs) twice with other output paths (the
others write through the same `Store.writer` from the same request less its paths).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zray.media.video.settings import VideoSettings
from zray.nodes import (
    INPUTS,
    REQUESTS,
    RESULTS,
    STEP_VERSION,
    Kind,
    Request,
    canonical,
    node_key,
)

KINDS = sorted(RESULTS, key=str)
FAST = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VIDEO = st.builds(
    VideoSettings,
    width=st.sampled_from([96, 320, 1920]),
    height=st.sampled_from([64, 176, 1072]),
    fps=st.sampled_from([24, 25, 30]),
    preset=st.sampled_from(["fast", "final"]),
    gop=st.sampled_from([3, 24, 48]),
    keep_metadata=st.booleans(),
)
KEYS = st.text(alphabet="0123456789abcdef", min_size=16, max_size=16)


def values(hint) -> st.SearchStrategy:
    """Values of a request field's type (finite floats: NaN has no stable JSON)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(st.none() if a is type(None) else values(a) for a in typing.get_args(hint)))
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return st.lists(values(args[0]), max_size=3).map(tuple)
        return st.tuples(*(values(a) for a in args))
    if hint is VideoSettings:
        return VIDEO
    if dataclasses.is_dataclass(hint):
        hints = typing.get_type_hints(hint)
        return st.builds(hint, **{f.name: values(hints[f.name]) for f in dataclasses.fields(hint) if f.init})
    if hint is str:
        return st.text(max_size=8)
    if hint is bool:
        return st.booleans()
    if hint is int:
        return st.integers(-5, 10_000)
    if hint is float:
        return st.floats(-1e6, 1e6, allow_nan=False)
    raise AssertionError(f"no strategy for {hint!r}: teach values() the new field type")


def request_fields(cls: type[Request]) -> dict[str, typing.Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def requests(cls: type[Request]) -> st.SearchStrategy:
    hints = request_fields(cls)
    return st.builds(cls, **{name: values(hints[name]) for name in cls.key_field_names()})


def input_keys(kind: Kind) -> st.SearchStrategy:
    """Input keys shaped as the kind's inputs: a key, a list of keys (None for a missing item), None."""
    hints = typing.get_type_hints(INPUTS[kind])

    def shape(hint) -> st.SearchStrategy:
        origin = typing.get_origin(hint)
        if origin in (typing.Union, types.UnionType):
            return st.one_of(*(st.none() if a is type(None) else shape(a) for a in typing.get_args(hint)))
        if origin is tuple:
            return st.lists(shape(typing.get_args(hint)[0]), min_size=1, max_size=3).map(tuple)
        return KEYS

    return st.fixed_dictionaries({name: shape(h) for name, h in hints.items()})


def different(strategy: st.SearchStrategy, than) -> st.SearchStrategy:
    return strategy.filter(lambda v: canonical(v) != canonical(than))


def test_every_kind_is_registered_everywhere():
    assert set(REQUESTS) == set(INPUTS) == set(RESULTS) == set(STEP_VERSION) == set(Kind)
    for kind, cls in REQUESTS.items():
        assert cls.kind == kind
        assert all(reason.strip() for reason in cls.unkeyed.values()), f"{cls.__name__}: say why"
        assert set(cls.unkeyed) <= set(request_fields(cls)), f"{cls.__name__}.unkeyed names no field"


@pytest.mark.parametrize("kind", KINDS)
@FAST
@given(data=st.data())
def test_every_key_field_input_and_engine_changes_the_key(kind, data):
    cls = REQUESTS[kind]
    hints = request_fields(cls)
    request = data.draw(requests(cls), label="request")
    inputs = data.draw(input_keys(kind), label="inputs")
    engine = data.draw(st.none() | st.dictionaries(st.text(max_size=4), st.integers(0, 3), max_size=2))
    key = node_key(request, inputs=inputs, engine=engine)
    assert key == node_key(request, inputs=dict(inputs), engine=engine)  # a function of what it is given

    for name in cls.key_field_names():
        other = data.draw(different(values(hints[name]), getattr(request, name)), label=name)
        changed = dataclasses.replace(request, **{name: other})
        assert node_key(changed, inputs=inputs, engine=engine) != key, f"{cls.__name__}.{name}"
    for name, ref in inputs.items():
        other = data.draw(different(input_keys(kind).map(lambda d, n=name: d[n]), ref), label=f"input {name}")
        assert node_key(request, inputs={**inputs, name: other}, engine=engine) != key, f"input {name}"
    other_engine = data.draw(different(st.dictionaries(st.text(max_size=4), st.integers(0, 3)), engine))
    assert node_key(request, inputs=inputs, engine=other_engine) != key, "engine"

    for name in cls.path_fields() + tuple(cls.unkeyed):
        value = getattr(request, name)
        other = ("elsewhere/x.bin",) if isinstance(value, tuple) else "elsewhere/x.bin"
        moved = dataclasses.replace(request, **{name: other})
        assert node_key(moved, inputs=inputs, engine=engine) == key, f"{cls.__name__}.{name} is not keyed"


def test_no_two_kinds_share_a_key():
    """The kind is in the key: two kinds with equal fields and inputs never collide."""
    from zray.nodes import SegmentRequest

    @dataclasses.dataclass(frozen=True)
    class Lookalike(SegmentRequest):
        kind = Kind.MOTION

    video, inputs = VideoSettings(), {"image": "a" * 16}
    assert node_key(SegmentRequest(video=video), inputs=inputs) != node_key(
        Lookalike(video=video), inputs=inputs
    )


# --- excluded fields change no byte ----------------------------------------------------------------


def _bytes(store_root: Path, paths) -> list[bytes]:
    return [(store_root / p).read_bytes() for p in paths]


def test_output_paths_change_no_byte_the_cheap_steps_write(tmp_path):
    from PIL import Image

    from zray.media import audio
    from zray.media.constants import SAMPLE_RATE
    from zray.nodes import (
        ImageResult,
        PadInputs,
        PadRequest,
        PadResult,
        SceneText,
        SegmentInputs,
        SegmentRequest,
        SpeechResult,
        SubsInputs,
        SubsRequest,
        ThumbsInputs,
        ThumbsRequest,
    )
    from zray.pipeline import steps
    from zray.store import Store

    store = Store(str(tmp_path))
    rng = np.random.default_rng(0)
    speech = (rng.standard_normal((1, SAMPLE_RATE // 2)) * 0.1).astype(np.float32)
    audio.write_wav(str(tmp_path / "speech.wav"), speech, sample_rate=SAMPLE_RATE)
    Image.new("RGB", (96, 64), (200, 40, 40)).save(tmp_path / "picture.png")
    Image.new("RGB", (1280, 720), (20, 40, 90)).save(tmp_path / "base.png")
    video = VideoSettings(width=96, height=64, fps=24, preset="fast", gop=24)
    speech_result = SpeechResult(path="speech.wav", seconds=0.5)

    def twice(make, run, paths_of):
        written = []
        for where in ("a", "b"):
            request = make(where)
            run(request)
            written.append(_bytes(tmp_path, paths_of(request)))
        assert written[0] == written[1]
        return written[0]

    twice(
        lambda w: PadRequest(fps=24, lead_frames=3, gap_frames=5, output=f"{w}/pad.wav"),
        lambda r: steps.pad(store, r, PadInputs(speech=speech_result)),
        lambda r: r.outputs,
    )
    twice(
        lambda w: SegmentRequest(video=video, output=f"{w}/seg.h264"),
        lambda r: steps.segment(store, r, SegmentInputs(image=ImageResult(path="picture.png"))),
        lambda r: r.outputs,
    )
    twice(
        lambda w: ThumbsRequest(
            texts=("Uno", "Dos"),
            lang="es",
            official=f"{w}/thumb.png",
            variants=(f"{w}/v1.png", f"{w}/v2.png"),
        ),
        lambda r: steps.thumbs(store, r, ThumbsInputs(base=ImageResult(path="base.png"))),
        lambda r: r.outputs,
    )
    pad = steps.pad(
        store, PadRequest(fps=24, gap_frames=6, output="pad.wav"), PadInputs(speech=speech_result)
    )
    assert isinstance(pad, PadResult)
    twice(
        lambda w: SubsRequest(
            lang="es",
            scenes=(SceneText(text="Hola a todos.", chapter="Uno", label="0"),),
            fps=24,
            srt=f"{w}/s.srt",
            vtt=f"{w}/s.vtt",
            chapters=f"{w}/c.txt",
            words=f"{w}/w.json",
        ),
        lambda r: steps.subs(store, r, SubsInputs(pads=(pad,))),
        lambda r: r.outputs,
    )
