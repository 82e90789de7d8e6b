"""A Short's picture on its own: the pan, crossfades, captions laid onto yuv420p, the x264 stream."""

from __future__ import annotations

import itertools

import av
import numpy as np
import pytest
from PIL import Image

from zray.media.caption_yuv import burn, composite_yuv, to_yuv_overlay
from zray.media.captions import SHORTS_BOX, caption_states, composite
from zray.media.pan import SPEED, PanPicture, plan_pan
from zray.media.short_video import ShortScene, short_frames
from zray.media.subtitles import time_cues
from zray.media.video.bitstream import NAL_IDR, access_units
from zray.media.video.sequence import encode_frames
from zray.media.video.settings import VideoError, VideoSettings
from zray.media.words import WordTiming

W, H, FPS = 180, 320, 24


def landscape(seed: int, size=(640, 360)) -> Image.Image:
    """A 16:9 picture with detail everywhere and no black (so a black edge would show)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(60, 230, (9, 16, 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)


def luma(frame: np.ndarray) -> np.ndarray:
    return frame[: frame.shape[0] * 2 // 3]


def test_the_pan_crosses_the_middle_of_the_picture_gently_and_never_shows_an_edge():
    picture = PanPicture(landscape(1), width=W, height=H)
    assert picture.margin > 0
    frames = 10 * FPS
    pan = plan_pan(picture.margin, width=W, frames=frames, fps=FPS, rightwards=True)
    assert pan.end > pan.start and pan.end - pan.start <= SPEED * W * 10 + 1e-6
    assert pan.start - 0 == pytest.approx(picture.margin - pan.end)  # centred in the margin
    back = plan_pan(picture.margin, width=W, frames=frames, fps=FPS, rightwards=False)
    assert (back.start, back.end) == (pan.end, pan.start)
    rendered = list(picture.frames(pan, 0, frames))
    for frame in rendered[:: FPS // 2]:
        assert luma(frame).min() > 40  # never a black edge: the picture has none
    # Inside a scene consecutive frames barely differ (a grey 18x32 thumbnail, as issue 12 measures).
    previous = None
    for frame in rendered:
        thumb = np.asarray(Image.fromarray(luma(frame)).resize((18, 32), Image.Resampling.BOX), np.float32)
        if previous is not None:
            assert np.abs(thumb - previous).mean() <= 2.0
        previous = thumb
    # Pushed past either end, the window stops at the picture's edge.
    assert luma(picture.render(-50.0)).min() > 40 and luma(picture.render(picture.margin + 50.0)).min() > 40


def test_a_vertical_picture_is_enlarged_a_little_to_have_room_to_pan():
    picture = PanPicture(landscape(2, size=(360, 640)), width=W, height=H)
    assert 0 < picture.margin <= 0.1 * W


def test_a_crossfade_ends_on_the_scene_s_first_frame():
    red, blue = Image.new("RGB", (640, 360), (200, 30, 30)), Image.new("RGB", (640, 360), (30, 30, 200))
    scenes = [ShortScene(red, 30), ShortScene(blue, 30, transition=6)]
    frames = list(short_frames(scenes, width=W, height=H, fps=FPS))
    assert len(frames) == 60
    v = [int(f[H + H // 4 :].astype(np.int32).mean()) for f in frames]  # the V (red) plane's level
    assert v[23] == v[0]  # before the crossfade: the first picture
    assert v[0] > v[24] > v[29] > v[30]  # fading
    assert v[30] == v[59]  # from the boundary frame on: the second picture, whole


def caption_frames(text: str, seconds: float):
    words = [WordTiming(w, 0.25 * i, 0.25 * (i + 1)) for i, w in enumerate(text.split())]
    cues = time_cues(text, start=0.0, end=seconds, words=words)
    return caption_states(cues, fps=FPS, size=(W, H), box=SHORTS_BOX)


def test_captions_laid_on_yuv_frames_match_the_rgb_blend():
    states = caption_frames("Hola mundo, esto es una prueba", 2.0)
    picture = PanPicture(landscape(3), width=W, height=H)
    frame = picture.render(10.0)
    state = states[2]
    ours = frame.copy()
    composite_yuv(ours, to_yuv_overlay(state.overlay))

    def to_rgb(yuv: np.ndarray) -> np.ndarray:
        return av.VideoFrame.from_ndarray(yuv, format="yuv420p").to_ndarray(format="rgb24").astype(np.int16)

    expected = composite(to_rgb(frame).astype(np.uint8), state.overlay).astype(np.int16)
    got = to_rgb(ours)
    assert np.abs(got - to_rgb(frame)).max() > 100  # the caption is there
    assert np.abs(got - expected).mean() < 2.0


def test_burn_copies_only_the_frames_a_caption_covers():
    states = caption_frames("uno dos tres", 3.0)
    still = np.full((H * 3 // 2, W), 128, np.uint8)
    out = list(burn([still] * 80, states))
    assert out[0] is not still  # the first word starts at once
    assert out[79] is still  # after the last word's end
    assert not np.array_equal(out[0], out[8])  # "uno" then "dos" highlighted


@pytest.mark.parametrize("count", [48 * 2 + 1, 50])
def test_a_stream_never_ends_on_a_lone_idr(tmp_path, count):
    settings = VideoSettings(width=W, height=H, fps=FPS, preset="fast", gop=48)
    picture = PanPicture(landscape(4), width=W, height=H)
    pan = plan_pan(picture.margin, width=W, frames=count, fps=FPS, rightwards=True)
    dest = tmp_path / "s.h264"
    assert (
        encode_frames(picture.frames(pan, 0, count), dest, count=count, settings=settings, threads=1) == count
    )
    pictures = access_units(dest.read_bytes())
    assert len(pictures) == count
    assert not any(unit[0] & 0x1F == NAL_IDR for unit in pictures[-1])
    with av.open(str(dest), format="h264") as container:
        assert sum(1 for _ in container.decode(video=0)) == count


def test_a_clip_is_panned_across_frame_by_frame_and_its_last_frame_held_under_the_moving_window(tmp_path):
    from zray.media.pan import fitted_size, window
    from zray.media.video.clip import write_clip

    # A 16:9 clip whose brightness rises frame by frame: which clip frame a Short's frame shows is
    # read from its mean, whatever window the pan is at.
    base = np.asarray(landscape(3, size=(320, 176)), np.int16)
    clip = tmp_path / "clip.mp4"
    write_clip((np.clip(base - 60 + 6 * i, 0, 255).astype(np.uint8) for i in range(13)), clip, fps=FPS)
    frames = list(short_frames([ShortScene(picture=None, clip=clip, frames=30)], width=W, height=H, fps=FPS))
    assert len(frames) == 30 and all(f.shape == (H * 3 // 2, W) for f in frames)
    means = [float(luma(f).mean()) for f in frames]
    assert all(b - a > 2.0 for a, b in itertools.pairwise(means[:13]))  # the clip plays
    assert max(means[13:]) - min(means[13:]) < 1.0  # then its last frame holds...
    # ...while the window keeps moving across it (no frozen picture).
    assert all(np.abs(luma(a).astype(int) - luma(b)).mean() > 0 for a, b in itertools.pairwise(frames[13:]))
    wide, _ = fitted_size(320, 176, width=W, height=H)
    assert wide > W
    with pytest.raises(VideoError, match="cannot be panned"):
        window(np.zeros((10, wide), np.uint8), left=0, width=W, height=H)
    with pytest.raises(VideoError, match="one of them"):
        ShortScene(picture=landscape(1), clip=clip, frames=5)
