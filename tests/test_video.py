"""zray.media.video: still GOPs repeated into one MP4, checked by decoding what comes out."""

from __future__ import annotations

import itertools
import struct
from fractions import Fraction
from pathlib import Path

import av
import av.logging
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from zray.media.video import (
    PRESETS,
    Segment,
    VideoError,
    VideoSettings,
    aac,
    assemble,
    bitstream,
    encode_clip,
    encode_still,
    encoder,
    probe,
)
from zray.media.video.mux import _packet_order

W, H, FPS, GOP = 320, 176, 24, 8
SETTINGS = VideoSettings(width=W, height=H, fps=FPS, gop=GOP)
COLOURS = [(220, 40, 40), (40, 200, 60), (50, 60, 220), (230, 210, 40)]
# Shorter than the GOP, several GOPs plus a remainder, GOPs plus exactly one frame, exactly one GOP.
SCENE_FRAMES = [5, 3 * GOP + 5, 2 * GOP + 1, GOP]
INTRO_SOURCE_FRAMES, INTRO_SOURCE_FPS = 30, 30  # one second of 4:3 video at 30 fps
INTRO_LEVELS = [40 + 6 * i for i in range(INTRO_SOURCE_FRAMES)]


def write_intro(path: Path, *, frames: int = INTRO_SOURCE_FRAMES) -> None:
    """A 160x120 (4:3) clip at 30 fps whose grey level counts its frames, with 44.1 kHz stereo audio."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=INTRO_SOURCE_FPS)
        video.width, video.height, video.pix_fmt = 160, 120, "yuv420p"
        video.options = {"preset": "ultrafast", "qp": "0"}
        sound = out.add_stream("aac", rate=44_100, layout="stereo")
        for index in range(frames):
            level = INTRO_LEVELS[index]
            picture = np.full((120, 160, 3), level, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts = index
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        tone = np.sin(np.arange(44_100 * frames // INTRO_SOURCE_FPS) / 10).astype(np.float32)
        chunk = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
        chunk.sample_rate, chunk.pts = 44_100, 0
        out.mux(sound.encode(chunk))
        out.mux(sound.encode(None))


def decoded_rgb(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def top_level_boxes(path: Path) -> list[str]:
    data = path.read_bytes()
    boxes, at = [], 0
    while at < len(data):
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        boxes.append(kind.decode("latin-1"))
        at += size
    return boxes


def expected_scene_of_each_frame(intro_frames: int) -> list[int]:
    """-1 for the intro, then the index of the colour every following frame must show."""
    plan = [-1] * intro_frames
    for scene, frames in enumerate(SCENE_FRAMES):
        plan += [scene] * frames
    return plan


@pytest.fixture(scope="module")
def episode(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("episode")
    intro_source = root / "intro_4x3_30fps.mp4"
    write_intro(intro_source)
    intro_frames = encode_clip(intro_source, root / "intro.h264", settings=SETTINGS)
    segments = [Segment(str(root / "intro.h264"), intro_frames)]
    for index, (colour, frames) in enumerate(zip(COLOURS, SCENE_FRAMES, strict=True)):
        still = root / f"scene{index}.h264"
        # One scene from a file path, the others from PIL images.
        image: Path | Image.Image = Image.new("RGB", (W, H), colour)
        if index == 0:
            image.save(root / "scene0.png")
            image = root / "scene0.png"
        encode_still(image, still, settings=SETTINGS)
        segments.append(Segment(str(still), frames))
    total = sum(segment.frames for segment in segments)
    # Mono and 300 samples too long: assemble duplicates the channel and trims the excess.
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(total * 2000 + 300) / 48_000)).astype(np.float32)
    stripped = root / "stripped.mp4"
    info = assemble(segments, tone, stripped, settings=SETTINGS)
    kept = root / "kept.mp4"
    kept_settings = VideoSettings(width=W, height=H, fps=FPS, gop=GOP, keep_metadata=True)
    assemble(segments, np.stack([tone, -tone])[:, : total * 2000 - 700], kept, settings=kept_settings)
    return {
        "root": root,
        "segments": segments,
        "intro_frames": intro_frames,
        "total": total,
        "info": info,
        "stripped": stripped,
        "kept": kept,
    }


def test_every_frame_shows_its_scene_and_scenes_switch_on_their_first_frame(episode: dict) -> None:
    frames = decoded_rgb(episode["stripped"])
    plan = expected_scene_of_each_frame(episode["intro_frames"])
    assert len(frames) == len(plan) == episode["total"]
    for index, (frame, scene) in enumerate(zip(frames, plan, strict=True)):
        if scene < 0:
            continue
        mean = frame.reshape(-1, 3).mean(axis=0)
        assert np.abs(mean - COLOURS[scene]).max() < 6, (index, scene, mean)
    # The frame before each scene's first frame still shows the previous picture.
    first = episode["intro_frames"]
    for scene, frames_in_scene in enumerate(SCENE_FRAMES):
        if scene:
            before = frames[first - 1].reshape(-1, 3).mean(axis=0)
            assert np.abs(before - COLOURS[scene - 1]).max() < 6
        first += frames_in_scene


def test_intro_is_fps_converted_by_timestamp_and_letterboxed(episode: dict) -> None:
    # 1 s at 30 fps becomes 24 frames; output tick k shows the source frame on screen at k/24.
    assert episode["intro_frames"] == 24
    frames = decoded_rgb(episode["stripped"])[:24]
    for tick, frame in enumerate(frames):
        source = tick * INTRO_SOURCE_FPS // FPS
        centre = frame[40:136, 120:200].mean()
        assert abs(centre - INTRO_LEVELS[source]) < 3, (tick, source, centre)
    # 4:3 into 320x176 fits as 234x176: black bars of 42 and 44 columns at the sides, none above.
    frame, level = frames[-1].astype(float), INTRO_LEVELS[23 * INTRO_SOURCE_FPS // FPS]
    assert frame[:, :38].max() < 8 and frame[:, -40:].max() < 8
    assert np.abs(frame[:, 50:270] - level).max() < 6
    assert np.abs(frame[:2, 120:200] - level).max() < 6


def test_output_is_constant_rate_h264_with_aac_stereo_ending_together(episode: dict) -> None:
    info = probe(episode["stripped"])
    assert (info.width, info.height, info.frames, info.fps) == (W, H, episode["total"], Fraction(FPS))
    assert (info.video_codec, info.audio_codec, info.sample_rate, info.channels) == ("h264", "aac", 48_000, 2)
    assert abs(info.video_duration - episode["total"] / FPS) < 1e-6
    assert abs(info.audio_duration - info.video_duration) < 1 / FPS
    assert episode["info"].frames == episode["total"]
    assert episode["info"].file_bytes == episode["stripped"].stat().st_size
    with av.open(str(episode["stripped"])) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.pix_fmt == "yuv420p"
        packets = [packet for packet in container.demux(stream) if packet.size]
        step = round(1 / (FPS * stream.time_base))
        assert [packet.pts for packet in packets] == [index * step for index in range(len(packets))]
        assert {packet.duration for packet in packets} == {step}
    with av.open(str(episode["stripped"])) as container:
        audio = sum(frame.samples for frame in container.decode(audio=0))
    assert abs(audio - episode["total"] * 2000) < 2000


def test_sample_entry_is_avc1_with_parameter_sets_and_moov_comes_first(episode: dict) -> None:
    boxes = top_level_boxes(episode["stripped"])
    assert boxes.index("moov") < boxes.index("mdat")
    with av.open(str(episode["stripped"])) as container:
        context = container.streams.video[0].codec_context
        assert context.codec_tag == "avc1"
        avcc = context.extradata
    # avcC: version 1, then at byte 5 the SPS count, a 16-bit length and an SPS NAL unit (type 7).
    assert avcc[0] == 1 and avcc[5] & 0x1F == 1
    assert avcc[8] & 0x1F == 7


def test_decodes_without_any_warning_and_no_two_idr_pictures_touch(episode: dict) -> None:
    previous = av.logging.get_level()
    av.logging.set_level(av.logging.WARNING)
    try:
        with av.logging.Capture(local=False) as logs, av.open(str(episode["stripped"])) as container:
            keyframes = []
            for packet in container.demux(video=0):
                for frame in packet.decode():
                    keyframes.append(frame.key_frame)
    finally:
        av.logging.set_level(previous)
    assert logs == []
    assert len(keyframes) == episode["total"]
    # A scene of 2 GOPs + 1 frame would otherwise end on a lone IDR right before the next scene's IDR.
    assert not any(a and b for a, b in itertools.pairwise(keyframes))


def test_metadata_is_stripped_unless_kept(episode: dict) -> None:
    def tags(path: Path) -> list[dict[str, str]]:
        with av.open(str(path)) as container:
            return [dict(container.metadata)] + [dict(stream.metadata) for stream in container.streams]

    stripped, kept = tags(episode["stripped"]), tags(episode["kept"])
    assert not any("encoder" in found or "creation_time" in found for found in stripped)
    assert b"x264 - core" not in episode["stripped"].read_bytes()
    assert b"Lavf" not in episode["stripped"].read_bytes()
    assert "Lavf" in kept[0]["encoder"]
    assert "creation_time" in kept[0]
    assert b"x264 - core" in episode["kept"].read_bytes()
    # Keeping metadata changes nothing about the pictures.
    assert probe(episode["kept"]).frames == episode["total"]


def test_a_still_is_cover_cropped_not_letterboxed(tmp_path: Path) -> None:
    # 640x240 with red, green and blue thirds; 320x176 keeps the middle 436 source columns.
    image = np.zeros((240, 640, 3), dtype=np.uint8)
    image[:, :213] = (220, 30, 30)
    image[:, 213:427] = (30, 220, 30)
    image[:, 427:] = (30, 30, 220)
    encode_still(Image.fromarray(image), tmp_path / "wide.h264", settings=SETTINGS)
    assemble(
        [Segment(str(tmp_path / "wide.h264"), 3)],
        np.zeros(6000, np.float32),
        tmp_path / "w.mp4",
        settings=SETTINGS,
    )
    frame = decoded_rgb(tmp_path / "w.mp4")[0].astype(float)
    assert np.abs(frame[:, :60].mean(axis=(0, 1)) - (220, 30, 30)).max() < 10
    assert np.abs(frame[:, 130:190].mean(axis=(0, 1)) - (30, 220, 30)).max() < 10
    assert np.abs(frame[:, -60:].mean(axis=(0, 1)) - (30, 30, 220)).max() < 10
    # No black border on any side: every edge strip is one of the bright colours.
    for strip in (frame[:2], frame[-2:], frame[:, :2], frame[:, -2:]):
        assert strip.max(axis=-1).mean() > 150


def test_fast_preset_and_a_clip_never_ending_on_an_idr(tmp_path: Path) -> None:
    settings = VideoSettings(width=W, height=H, fps=FPS, gop=GOP, preset="fast")
    source = tmp_path / "short.mp4"
    # 21 frames at 30 fps fill 17 ticks at 24 fps; tick 16 would be an IDR, so the clip holds one more.
    write_intro(source, frames=21)
    frames = encode_clip(source, tmp_path / "short.h264", settings=settings)
    assert frames == 2 * GOP + 2
    assemble(
        [Segment(str(tmp_path / "short.h264"), frames)],
        np.zeros((2, 10), np.float32),
        tmp_path / "s.mp4",
        settings=settings,
    )
    with av.open(str(tmp_path / "s.mp4")) as container:
        keys = [packet.is_keyframe for packet in container.demux(video=0) if packet.size]
    assert keys == [index % GOP == 0 for index in range(frames)]
    assert PRESETS["fast"].x264_preset == "ultrafast" and PRESETS["final"].crf == 18


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"width": 321}, "width"),
        ({"height": 0}, "height"),
        ({"fps": 0}, "fps"),
        ({"fps": 23.976}, "fps"),
        ({"preset": "slow"}, "preset"),
        ({"gop": 1}, "gop"),
        ({"gop": 2}, "gop"),
        ({"fps": 7}, "fps 7 does not divide 48000"),
        ({"fps": 24, "sample_rate": 22_050}, "fps 24 does not divide 22050.*use 25, 30 or 50"),
        ({"sample_rate": 47_000}, "sample_rate"),
    ],
)
def test_bad_settings_name_the_setting(change: dict, named: str) -> None:
    with pytest.raises(VideoError, match=named):
        VideoSettings(**change)


def test_unreadable_inputs_raise_video_error_naming_the_file(tmp_path: Path) -> None:
    junk = tmp_path / "not_a_video.mp4"
    junk.write_text("hello")
    with pytest.raises(VideoError, match=r"not_a_video\.mp4"):
        encode_clip(junk, tmp_path / "x.h264", settings=SETTINGS)
    with pytest.raises(VideoError, match=r"missing\.mp4"):
        encode_clip(tmp_path / "missing.mp4", tmp_path / "x.h264", settings=SETTINGS)
    silent = tmp_path / "audio_only.m4a"
    with av.open(str(silent), "w", format="mp4") as out:
        sound = out.add_stream("aac", rate=48_000, layout="stereo")
        chunk = av.AudioFrame.from_ndarray(np.zeros((2, 4800), np.float32), format="fltp", layout="stereo")
        chunk.sample_rate, chunk.pts = 48_000, 0
        out.mux(sound.encode(chunk))
        out.mux(sound.encode(None))
    with pytest.raises(VideoError, match=r"audio_only\.m4a.*no video"):
        encode_clip(silent, tmp_path / "x.h264", settings=SETTINGS)
    assert not (tmp_path / "x.h264").exists()
    with pytest.raises(VideoError, match=r"not_a_video\.mp4"):
        assemble([Segment(str(junk), 5)], np.zeros(100, np.float32), tmp_path / "o.mp4", settings=SETTINGS)
    with pytest.raises(VideoError, match=r"missing\.png"):
        encode_still(tmp_path / "missing.png", tmp_path / "s.h264", settings=SETTINGS)


def test_assemble_refuses_mismatched_segments_and_bad_audio(episode: dict, tmp_path: Path) -> None:
    scene = episode["segments"][1]
    other = VideoSettings(width=W, height=H, fps=FPS, gop=GOP, preset="fast")
    encode_still(Image.new("RGB", (W, H)), tmp_path / "fast.h264", settings=other)
    with pytest.raises(VideoError, match=r"fast\.h264"):
        assemble(
            [scene, Segment(str(tmp_path / "fast.h264"), 4)],
            np.zeros(1),
            tmp_path / "o.mp4",
            settings=SETTINGS,
        )
    bigger = VideoSettings(width=W * 2, height=H, fps=FPS, gop=GOP)
    with pytest.raises(VideoError, match="320x176"):
        assemble([scene], np.zeros(1), tmp_path / "o.mp4", settings=bigger)
    with pytest.raises(VideoError, match="channels"):
        assemble([scene], np.zeros((5, 100), np.float32), tmp_path / "o.mp4", settings=SETTINGS)
    with pytest.raises(VideoError, match="frames"):
        Segment("x.h264", 0)


def test_audio_encoded_in_parallel_chunks_matches_one_encoder(tmp_path: Path, monkeypatch) -> None:
    # Chunks of 1.25 s instead of minutes, so a 5 s track is joined at three seams.
    monkeypatch.setattr(aac, "_AUDIO_CHUNK_MIN_SECONDS", 0.5)
    encode_still(Image.new("RGB", (W, H)), tmp_path / "black.h264", settings=SETTINGS)
    frames = 5 * FPS
    t = np.arange(frames * 2000) / 48_000
    rng = np.random.default_rng(3)
    track = 0.3 * np.stack([np.sin(2 * np.pi * 300 * t), np.sin(2 * np.pi * 450 * t + 1)])
    track += rng.normal(0, 0.01, track.shape)
    for click in range(5000, t.size, 17_000):  # transients make the encoder switch to short windows
        track[:, click : click + 300] += 0.5 * rng.normal(0, 1, 300) * np.hanning(300)
    track = track.astype(np.float32)

    errors = []
    for threads in (1, 4):
        out = tmp_path / f"audio{threads}.mp4"
        assemble(
            [Segment(str(tmp_path / "black.h264"), frames)], track, out, settings=SETTINGS, threads=threads
        )
        with av.open(str(out)) as container:
            decoded = np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1)
        error = decoded[:, : t.size] - track
        errors.append(
            np.sqrt((error[:, : t.size // 2048 * 2048].reshape(2, -1, 2048) ** 2).mean(axis=(0, 2)))
        )
    single, chunked = errors
    # No frame lost or repeated at a seam (that would shift everything after it), and no click:
    # every 43 ms stretch is coded about as well as by one encoder.
    assert (chunked / single).max() < 1.25
    assert chunked.mean() < 1.05 * single.mean()


@given(count=st.integers(min_value=3, max_value=60), frames=st.integers(min_value=1, max_value=400))
def test_packet_order_repeats_whole_gops_and_never_ends_a_copy_on_a_lone_idr(count: int, frames: int) -> None:
    order = list(_packet_order(count, frames))
    assert len(order) == frames
    assert order[0] == 0 and max(order) < count
    # Each copy starts over at the IDR (index 0) and otherwise steps through the GOP in order.
    assert all(b == a + 1 or b == 0 for a, b in itertools.pairwise(order))
    copies = [index for index, position in enumerate(order) if position == 0] + [frames]
    lengths = [b - a for a, b in itertools.pairwise(copies)]
    assert frames == 1 or 1 not in lengths
    if frames % count != 1:
        assert lengths == [count] * (frames // count) + ([frames % count] if frames % count else [])


def x264_full_gop(image: Image.Image, settings: VideoSettings, *, threads: int) -> list[bytes]:
    """Every packet of the still GOP the way x264 codes it when fed the whole GOP and flushed."""
    frame = encoder.to_yuv(av.VideoFrame.from_image(image), settings.width, settings.height)
    ctx = encoder.open_encoder(settings, still=True, threads=threads)
    packets = []
    for index in range(settings.gop):
        frame.pts = index
        packets += [bytes(packet) for packet in ctx.encode(frame)]
    return packets + [bytes(packet) for packet in ctx.encode(None)]


@pytest.mark.parametrize(
    ("preset", "width", "height", "gop"),
    [
        ("final", 1920, 1072, 48),  # CABAC; the IDR comes out of x264's lookahead before the GOP ends
        ("final", W, H, GOP),  # a GOP shorter than the lookahead: x264 codes it in full
        ("fast", 1920, 1080, 12),  # CAVLC, and a height that is cropped from 68 macroblock rows
    ],
)
def test_a_still_segment_is_x264s_idr_then_skip_pictures_that_copy_it(
    tmp_path: Path, preset: str, width: int, height: int, gop: int
) -> None:
    settings = VideoSettings(width=width, height=height, fps=FPS, gop=gop, preset=preset)
    rng = np.random.default_rng(5)
    # Detail in every macroblock, so a wrongly decoded skip slice could not look like a copy.
    image = Image.fromarray(rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)).resize(
        (width, height), Image.Resampling.BILINEAR
    )
    # x264's output depends on its thread count; the pipeline runs one thread per encode.
    encode_still(image, tmp_path / "still.h264", settings=settings, threads=1)
    data = (tmp_path / "still.h264").read_bytes()
    # The picture is the IDR that x264 writes for the whole GOP, byte for byte.
    idr = x264_full_gop(image, settings, threads=1)[0]
    assert data.startswith(idr)
    skips = bitstream.access_units(data[len(idr) :])
    assert len(skips) == gop - 1
    assert all(len(b"".join(units)) < 100 for units in skips)

    previous = av.logging.get_level()
    av.logging.set_level(av.logging.WARNING)
    try:
        with (
            av.logging.Capture(local=False) as logs,
            av.open(str(tmp_path / "still.h264"), format="h264") as raw,
        ):
            frames = [frame.to_ndarray() for frame in raw.decode(video=0)]
    finally:
        av.logging.set_level(previous)
    assert logs == []
    assert len(frames) == gop
    assert frames[0].shape == (height * 3 // 2, width)
    assert all(np.array_equal(frame, frames[0]) for frame in frames[1:])


@given(data=st.binary(max_size=40).map(lambda payload: payload + b"\x80"))
def test_emulation_prevention_round_trips_and_leaves_no_start_code(data: bytes) -> None:
    escaped = bitstream.escaped(data)
    assert bitstream.unescaped(b"\x41" + escaped) == data
    for forbidden in (b"\x00\x00\x00", b"\x00\x00\x01", b"\x00\x00\x02"):
        assert forbidden not in escaped
