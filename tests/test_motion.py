"""Gentle motion, crossfades and studio clips (issue 12), checked on decoded frames and samples.

Unit tests cover moves (speed-defined, eased in, never past the picture's edge), the shot layout
(whole GOPs shared, tails never a lone IDR), frame sources and segment encoding; one episode run
through the in-process executor at a small frame size checks what a viewer sees and hears.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import av
import av.logging
import numpy as np
import pytest
from conftest import FAST_VIDEO, small_script, write_script
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from zray.config import load_config
from zray.media import moves, shots
from zray.media.frames import ClipFrames, MovingStill, Picture, SegmentFrames, crossfade
from zray.media.video import Segment, VideoSettings, assemble, bitstream, encode_clip, encode_still
from zray.media.video.sequence import encode_frames
from zray.pipeline.run import RunRequest, preview, run_episode

W, H, FPS = 320, 176, 24
SMOOTH = 2.0  # mean absolute luma step between consecutive frames, on a 32x18 grey downscale
REPO = Path(__file__).resolve().parent.parent
INTRO = REPO / "inputs" / "assets" / "demo" / "intro.mp4"


def grey(rgb: np.ndarray) -> np.ndarray:
    small = Image.fromarray(rgb.astype(np.uint8)).convert("L").resize((32, 18), Image.Resampling.BOX)
    return np.asarray(small).astype(np.float64)


def step(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(grey(a) - grey(b)).mean())


def yuv_to_rgb(packed: np.ndarray) -> np.ndarray:
    frame = av.VideoFrame.from_ndarray(packed, format="yuv420p")
    return frame.to_ndarray(format="rgb24")


def textured(width: int = 640, height: int = 360, seed: int = 0) -> Image.Image:
    """Shapes with hard edges at every scale, so any movement of the window shows."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (height // 20 + 1, width // 20 + 1, 3), dtype=np.uint8)
    blocks = np.kron(base, np.ones((20, 20, 1), dtype=np.uint8))[:height, :width]
    return Image.fromarray(blocks)


# --- moves ---------------------------------------------------------------------------------------


def test_a_move_starts_at_rest_eases_in_and_keeps_its_speed():
    move = moves.choose_move("scene")
    dt = 1 / FPS
    speeds = [(move.progress(t + dt) - move.progress(t)) / dt for t in np.arange(0, 6, dt)]
    assert move.progress(0) == 0 and speeds[0] < 0.002 * speeds[-1] + 1e-9
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(speeds[: int(move.ease_seconds * FPS)]))
    # Past the ease-in the speed is constant: defined by speed, whatever the scene's length.
    assert max(speeds[60:]) - min(speeds[60:]) < 1e-9 and speeds[-1] == pytest.approx(1 / move.span_seconds)


@settings(max_examples=60, deadline=None)
@given(key=st.text(max_size=20), seconds=st.floats(0, 3600))
def test_a_window_never_leaves_the_picture(key, seconds):
    move = moves.choose_move(key)
    base = moves.cover_box(1000, 700, frame_width=1920, frame_height=1072)
    box = moves.window(move, seconds, base=base)
    assert base.left - 1e-9 <= box.left < box.right <= base.right + 1e-9
    assert base.top - 1e-9 <= box.top < box.bottom <= base.bottom + 1e-9
    zoom = (base.right - base.left) / (box.right - box.left)
    assert 1 - 1e-9 <= zoom <= 1 + moves.ZOOM + 1e-9
    assert moves.window(move, seconds, base=base) == box  # deterministic: every language agrees
    assert move.progress(seconds) <= 1


def test_moves_are_chosen_per_scene_and_vary():
    chosen = [moves.choose_move(f"scene-{i}") for i in range(40)]
    assert moves.choose_move("scene-3") == chosen[3]
    assert len({m.name for m in chosen}) >= 4
    assert len({(m.focus_from, m.focus_to) for m in chosen}) >= 8


# --- shots ---------------------------------------------------------------------------------------


@given(body=st.integers(2, 5000), gop=st.integers(3, 120), fade=st.sampled_from([0, 2, 3, 12, 48]))
def test_a_tail_starts_on_a_whole_gop_and_is_never_one_frame(body, gop, fade):
    start = shots.tail_start(body, gop=gop, transition=fade)
    assert start % gop == 0 and 0 <= start <= body
    assert 2 <= body - start + fade < 2 * gop + fade


def test_transitions_fit_the_gap_and_short_ones_are_cuts():
    assert shots.transition_frames(0.5, fps=24, room=12) == 12
    assert shots.transition_frames(0.5, fps=24, room=7) == 7
    assert shots.transition_frames(0.5, fps=24, room=1) == 0
    assert shots.transition_frames(0.04, fps=24, room=12) == 0
    assert shots.transition_frames(0, fps=24, room=12) == 0


# --- frames --------------------------------------------------------------------------------------


def test_a_moving_still_glides_smoothly_without_stair_steps():
    picture = Picture(textured(), width=W, height=H, zoom=1 + moves.ZOOM)
    source = MovingStill(picture, moves.Move("pan-right", 1.06, 1.08, (0, 0.5), (1, 0.5)), fps=FPS)
    rgb = [yuv_to_rgb(f) for f in source.frames(0, 10 * FPS)]
    steps = [step(a, b) for a, b in itertools.pairwise(rgb)]
    assert max(steps) <= SMOOTH
    assert step(rgb[0], rgb[-1]) > 10 * max(steps)
    # Sub-pixel: at full speed every frame moves a little, none jumps (integer-pixel windows would
    # give runs of identical frames, then a step).
    moving = [float(np.abs(a.astype(int) - b).mean()) for a, b in itertools.pairwise(rgb[3 * FPS :])]
    assert min(moving) > 0.2 * np.median(moving) and max(moving) < 3 * np.median(moving)
    # Frames are the same function of time whatever the scene's length: any window is a prefix.
    assert np.array_equal(next(source.frames(100, 1)), list(source.frames(90, 20))[10])


def test_a_still_without_a_move_is_its_picture_cover_fitted():
    wide = np.zeros((200, 600, 3), np.uint8)
    wide[:, :200], wide[:, 200:400], wide[:, 400:] = (220, 30, 30), (30, 220, 30), (30, 30, 220)
    frames = list(MovingStill(Picture(Image.fromarray(wide), width=W, height=H), None, fps=FPS).frames(0, 3))
    assert all(np.array_equal(frames[0], f) for f in frames)
    rgb = yuv_to_rgb(frames[0]).astype(int)
    # 600x200 shown at 320x176 keeps the middle 364 columns: green in the middle, red and blue at the edges.
    assert rgb[:, 150:170, 1].mean() > 200 and rgb[:, :10, 0].mean() > 200 and rgb[:, -10:, 2].mean() > 200


def test_a_crossfade_ends_just_before_the_incoming_picture():
    a = np.full((H * 3 // 2, W), 40, np.uint8)
    b = np.full((H * 3 // 2, W), 200, np.uint8)
    blended = list(crossfade(itertools.repeat(a), b, 3))
    assert [int(f[0, 0]) for f in blended] == [80, 120, 160]


def write_clip(path: Path, *, frames: int, fps: int = 30, size=(160, 120), tone: float = 0.0) -> list[int]:
    """A clip whose grey level counts its frames (and, with `tone`, a 1 kHz tone at that amplitude)."""
    levels = [20 + 5 * i for i in range(frames)]
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        video.options = {"preset": "ultrafast", "qp": "0"}
        sound = out.add_stream("aac", rate=48_000, layout="stereo") if tone else None
        for index, level in enumerate(levels):
            frame = av.VideoFrame.from_ndarray(
                np.full((size[1], size[0], 3), level, np.uint8), format="rgb24"
            )
            frame.pts = index
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound is not None:
            n = 48_000 * frames // fps
            wave = (tone * np.sin(2 * np.pi * 1000 * np.arange(n) / 48_000)).astype(np.float32)
            chunk = av.AudioFrame.from_ndarray(np.stack([wave, wave]), format="fltp", layout="stereo")
            chunk.sample_rate, chunk.pts = 48_000, 0
            out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))
    return levels


@pytest.mark.parametrize("fill", ["hold", "loop"])
def test_a_clip_plays_on_the_frame_grid_then_holds_or_loops(tmp_path, fill):
    levels = write_clip(tmp_path / "clip.mp4", frames=15)  # half a second at 30 fps: 12 output frames
    clip = ClipFrames(tmp_path / "clip.mp4", width=W, height=H, fps=FPS, fit="cover", fill=fill)
    shown = [int(np.median(yuv_to_rgb(f))) for f in clip.frames(0, 30)]
    expected = [levels[min(14, k * 30 // 24)] for k in range(12)]
    assert all(abs(a - b) <= 3 for a, b in zip(shown[:12], expected, strict=True)), (shown, expected)
    rest = shown[12:]
    if fill == "hold":
        assert all(abs(v - expected[-1]) <= 3 for v in rest)
    else:
        assert all(abs(a - b) <= 3 for a, b in zip(rest, (expected * 3)[: len(rest)], strict=True))
    # Asking for a later range gives the same frames as the whole run does.
    assert [int(np.median(yuv_to_rgb(f))) for f in clip.frames(20, 5)] == shown[20:25]


def test_a_clip_is_cover_cropped_or_letterboxed(tmp_path):
    write_clip(tmp_path / "clip.mp4", frames=3, size=(160, 160))  # square, grey 20, into 320x176

    def first(fit: str) -> np.ndarray:
        clip = ClipFrames(tmp_path / "clip.mp4", width=W, height=H, fps=FPS, fit=fit, fill="hold")
        return yuv_to_rgb(next(clip.frames(0, 1))).astype(int)

    covered, boxed = first("cover"), first("contain")
    assert covered.min() > 12  # the grey everywhere, no black bars
    assert boxed[:, :60].max() < 5 and boxed[:, -60:].max() < 5 and boxed[:, 100:220].min() > 12


# --- segments ------------------------------------------------------------------------------------


def keyframes(path: Path) -> list[int]:
    units = bitstream.access_units(path.read_bytes())
    return [i for i, unit in enumerate(units) if any(u[0] & 0x1F == bitstream.NAL_IDR for u in unit)]


def headers(path: Path) -> list[bytes]:
    first = bitstream.access_units(path.read_bytes())[0]
    return [u for u in first if u[0] & 0x1F in (bitstream.NAL_SPS, bitstream.NAL_PPS)]


@pytest.mark.parametrize("count", [2, 3, 8, 9, 17, 20])
def test_a_moving_segment_has_closed_gops_and_never_ends_on_an_idr(tmp_path, count):
    video = VideoSettings(width=W, height=H, fps=FPS, gop=8, preset="fast")
    source = MovingStill(Picture(textured(), width=W, height=H, zoom=1.08), moves.choose_move("k"), fps=FPS)
    encode_frames(source.frames(0, count), tmp_path / "m.h264", count=count, settings=video, threads=1)
    keys = keyframes(tmp_path / "m.h264")
    assert len(bitstream.access_units((tmp_path / "m.h264").read_bytes())) == count
    assert keys[: count // 8] == [8 * g for g in range(count // 8)] or count < 8
    assert keys[-1] != count - 1


@pytest.mark.parametrize("preset", ["fast", "final"])
def test_still_motion_clip_tail_and_intro_segments_share_one_sps_pps(tmp_path, preset):
    video = VideoSettings(width=W, height=H, fps=FPS, gop=8, preset=preset)
    encode_still(textured(), tmp_path / "still.h264", settings=video, threads=1)
    source = MovingStill(Picture(textured(), width=W, height=H, zoom=1.08), moves.choose_move("a"), fps=FPS)
    encode_frames(source.frames(0, 16), tmp_path / "motion.h264", count=16, settings=video, threads=1)
    encode_frames(source.frames(16, 9), tmp_path / "tail.h264", count=9, settings=video, threads=1)
    write_clip(tmp_path / "clip.mp4", frames=20)
    clip = ClipFrames(tmp_path / "clip.mp4", width=W, height=H, fps=FPS, fit="contain", fill="loop")
    encode_frames(clip.frames(0, 10), tmp_path / "clip.h264", count=10, settings=video, threads=1)
    encode_clip(INTRO, tmp_path / "intro.h264", settings=video, threads=1)
    first = headers(tmp_path / "still.h264")
    for name in ("motion", "tail", "clip", "intro"):
        assert headers(tmp_path / f"{name}.h264") == first, name
    # Joined as a language plays them: whole GOPs of the intro and of the shared segment, tails.
    segments = [
        Segment(str(tmp_path / "intro.h264"), 16),
        Segment(str(tmp_path / "still.h264"), 11),
        Segment(str(tmp_path / "motion.h264"), 8),
        Segment(str(tmp_path / "tail.h264"), 9),
        Segment(str(tmp_path / "clip.h264"), 10),
    ]
    out = tmp_path / "joined.mp4"
    assemble(segments, np.zeros((2, 54 * 2000), np.float32), out, settings=video)
    previous = av.logging.get_level()
    av.logging.set_level(av.logging.WARNING)
    try:
        with av.logging.Capture(local=False) as logs, av.open(str(out)) as container:
            keys = [f.key_frame for p in container.demux(video=0) for f in p.decode()]
    finally:
        av.logging.set_level(previous)
    assert logs == [] and len(keys) == 54
    assert not any(a and b for a, b in itertools.pairwise(keys))


def test_segment_frames_decode_an_encoded_segment(tmp_path):
    video = VideoSettings(width=W, height=H, fps=FPS, gop=8, preset="final")
    frames = encode_clip(INTRO, tmp_path / "intro.h264", settings=video, threads=1)
    decoded = list(SegmentFrames(tmp_path / "intro.h264").frames(frames - 5, 5))
    assert len(decoded) == 5 and decoded[0].shape == (H * 3 // 2, W)


# --- an episode ----------------------------------------------------------------------------------

SCENE_GAP, LEAD, TAIL = 0.5, 0.3, 2.0
FADE = 12  # 0.5 s at 24 fps


def motion_config(out: Path, **video):
    return load_config(
        None,
        output=str(out),
        profile="draft",
        quiet=True,
        executor="in-process",
        video={**FAST_VIDEO, "motion": "gentle", "transition": 0.5, **video},
    )


@pytest.fixture(scope="module")
def episode(tmp_path_factory):
    """Three scenes in Spanish and Catalan after the demo intro: a generated picture under a camera
    move, the studio's own picture held still (its `motion` is none), a studio clip with its sound."""
    tmp = tmp_path_factory.mktemp("motion")
    folder = tmp / "scripts" / "proj"
    folder.mkdir(parents=True)
    studio = np.zeros((400, 720, 3), np.uint8)
    studio[:, :360], studio[:, 360:] = (240, 220, 30), (30, 200, 230)
    Image.fromarray(studio).save(folder / "studio.png")
    levels = write_clip(folder / "clip.mp4", frames=45, tone=0.5)  # 1.5 s
    data = small_script()
    data["scenes"][1].update(image_file="studio.png", motion="none")
    data["scenes"][2].update(clip_file="clip.mp4", clip_audio=0.8)
    script = write_script(folder, data)
    out = tmp / "out"
    report = run_episode(RunRequest(script=script, intro=INTRO), motion_config(out))
    assert report.ok, report.failed
    folder_out = out / "proj" / script.stem
    record = json.loads((folder_out / "run.json").read_text())
    return {"script": script, "out": out, "folder": folder_out, "record": record, "levels": levels}


def decoded(path: Path) -> tuple[list[np.ndarray], np.ndarray, str]:
    with av.open(str(path)) as container:
        rgb = [f.to_ndarray(format="rgb24").astype(np.int16) for f in container.decode(video=0)]
    with av.open(str(path)) as container:
        language = container.streams.audio[0].language
        sound = np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1)
    return rgb, sound.mean(axis=0), language


@pytest.fixture(scope="module")
def languages(episode):
    nodes = episode["record"]["nodes"]
    out = {}
    for lang, name in (("es", "S01E02-ES-Título_de_prueba.mp4"), ("ca", "S01E02-CA-Prueba_de_zray.mp4")):
        frames, sound, tag = decoded(episode["folder"] / name)
        pads = [nodes[f"pad:{lang}:{i}"]["result"]["frames"] for i in range(3)]
        intro = nodes["intro"]["result"]["frames"]
        starts = [intro + sum(pads[:i]) for i in range(3)]
        out[lang] = {
            "frames": frames,
            "sound": sound,
            "tag": tag,
            "pads": pads,
            "intro": intro,
            "starts": starts,
        }
    return out


def test_frame_count_and_scene_starts_follow_the_padded_narration(languages):
    for lang, v in languages.items():
        assert len(v["frames"]) == v["intro"] + sum(v["pads"]), lang
        assert v["tag"] == {"es": "spa", "ca": "cat"}[lang]


def test_inside_a_moving_scene_frames_glide_and_the_picture_moves(languages):
    for lang, v in languages.items():
        frames, (s0, s1, _) = v["frames"], v["starts"]
        inside = frames[s0 : s1 - FADE]
        assert max(step(a, b) for a, b in itertools.pairwise(inside)) <= SMOOTH, lang
        assert step(inside[0], inside[-1]) > 1.0, lang  # clearly moved (a still measures ~0.1)
        assert np.abs(inside[0] - inside[-1]).mean() > 4


def test_each_scene_starts_on_its_own_picture_after_a_crossfade(languages, episode):
    folder = episode["folder"]
    generated = np.asarray(Image.open(folder / "assets" / "common" / "img_0.png").convert("RGB")).astype(
        np.int16
    )
    for lang, v in languages.items():
        frames, starts = v["frames"], v["starts"]
        # Scene 1 is the studio's yellow and cyan picture, scene 2 the clip's grey.
        first_1 = frames[starts[1]]
        assert first_1[:, :100, 0].mean() > 200 and first_1[:, -100:, 2].mean() > 200, lang
        assert abs(np.median(frames[starts[2]]) - episode["levels"][0]) <= 4
        assert np.abs(frames[starts[0]] - generated).mean() < 25
        for index, start in enumerate(starts):
            before, after, earlier = frames[start - 1], frames[start], frames[start - FADE - 1]
            # The frame before a scene's first is a blend weighing the new picture 12/13.
            delta = (after - earlier).astype(np.float64)
            alpha = float(((before - earlier) * delta).sum() / (delta * delta).sum())
            assert 0.85 < alpha < 0.99, (lang, index, alpha)
            residual = np.abs(before - (earlier + alpha * delta)).mean()
            assert residual < 0.25 * np.abs(delta).mean(), (lang, index, residual)
            middle = frames[start - FADE // 2 - 1]
            alpha_mid = float(((middle - earlier) * delta).sum() / (delta * delta).sum())
            assert 0.3 < alpha_mid < 0.7, (lang, index, alpha_mid)


def test_the_still_scene_holds_and_the_clip_plays_then_holds(languages, episode):
    levels = episode["levels"]
    for lang, v in languages.items():
        frames, (_, s1, s2) = v["frames"], v["starts"]
        still = frames[s1 : s2 - FADE]
        assert max(step(a, b) for a, b in itertools.pairwise(still)) < 0.2
        clip = [float(np.median(f)) for f in frames[s2 : s2 + 60]]
        expected = [levels[min(44, k * 30 // 24)] for k in range(60)]
        assert max(abs(a - b) for a, b in zip(clip, expected, strict=True)) <= 4, lang


def rms(sound: np.ndarray, start: float, stop: float) -> float:
    part = sound[int(start * 48_000) : int(stop * 48_000)]
    return float(np.sqrt(np.mean(part**2))) if len(part) else 0.0


def test_pauses_lead_and_tail_are_heard_in_the_final_mix(languages):
    for lang, v in languages.items():
        sound, starts, intro = v["sound"], v["starts"], v["intro"]
        speech = rms(sound, intro / FPS + 1, intro / FPS + 4)
        quiet = speech / 4  # the music bed sits far below the narration
        # Before each later scene: its whole gap is quiet, and narration came right before it.
        for start in starts[1:]:
            t = start / FPS
            assert rms(sound, t - SCENE_GAP + 0.02, t - 0.02) < quiet, (lang, t)
            windows = [rms(sound, t - SCENE_GAP - w - 0.1, t - SCENE_GAP - w) for w in np.arange(0, 1.5, 0.1)]
            assert max(windows) > quiet
        # The lead: quiet after the intro, before the first word.
        assert rms(sound, intro / FPS + 0.02, intro / FPS + LEAD - 0.02) < quiet
        # The tail: no narration, the music fading to silence on the last sample.
        end = len(v["frames"]) / FPS
        quarters = [rms(sound, end - TAIL + q * TAIL / 4, end - TAIL + (q + 1) * TAIL / 4) for q in range(4)]
        assert max(quarters) < quiet and quarters[0] > 0.002, quarters
        assert quarters[0] > quarters[1] > quarters[2] > quarters[3]
        assert rms(sound, end - 0.02, end) < quarters[0] / 10


def test_the_clips_own_sound_plays_in_its_scene_only(languages):
    def tone_share(sound: np.ndarray, start: float, stop: float) -> float:
        part = sound[int(start * 48_000) : int(stop * 48_000)]
        spectrum = np.abs(np.fft.rfft(part * np.hanning(len(part))))
        freqs = np.fft.rfftfreq(len(part), 1 / 48_000)
        return float(spectrum[np.abs(freqs - 1000) < 15].sum() / spectrum.sum())

    for lang, v in languages.items():
        s0, _, s2 = (s / FPS for s in v["starts"])
        assert tone_share(v["sound"], s2 + 0.1, s2 + 1.3) > 5 * tone_share(v["sound"], s0 + 0.5, s0 + 1.7), (
            lang
        )


def test_languages_share_moving_scenes_and_crossfades(episode):
    nodes = episode["record"]["nodes"]
    assert {n for n in nodes if n.startswith("motion:")} == {"motion:0", "motion:2"}
    # A still's crossfade does not depend on the scene's length: one for both languages.
    assert {n for n in nodes if n.startswith("tail:")} == {
        "tail:intro",
        "tail:es:0",
        "tail:ca:0",
        "tail:1",
        "tail:es:2",
        "tail:ca:2",
    }
    for lang in ("es", "ca"):
        for scene in (0, 2):
            # A tail is the last partial GOP and the crossfade: never more than a GOP and the fade.
            assert nodes[f"tail:{lang}:{scene}"]["result"]["frames"] < 2 * FAST_VIDEO["gop"] + FADE


def test_a_rerun_reuses_everything_and_a_narration_edit_rebuilds_its_language(episode):
    config = motion_config(episode["out"])
    assert run_episode(RunRequest(script=episode["script"], intro=INTRO), config).built == 0
    data = json.loads(episode["script"].read_text(encoding="utf-8"))
    data["scenes"][1]["script_ca"] += " I una frase més."
    episode["script"].write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    report = run_episode(RunRequest(script=episode["script"], intro=INTRO), config)
    assert report.ok
    steps = json.loads((episode["folder"] / "run.json").read_text())["last_run"]["steps"]
    rebuilt = {k for k, v in steps.items() if v["state"] == "built"}
    # The still scene's crossfade and every moving segment are reused; Spanish is untouched.
    assert rebuilt == {"tts:ca:1", "pad:ca:1", "subs:ca", "video:ca"}


def test_a_small_studio_picture_under_a_move_is_warned_about(tmp_path):
    folder = tmp_path / "scripts" / "proj"
    folder.mkdir(parents=True)
    Image.new("RGB", (320, 176), (200, 40, 40)).save(folder / "small.png")
    data = small_script()
    data["scenes"][0]["image_file"] = "small.png"
    script = write_script(folder, data)
    prepared = preview(RunRequest(script=script), motion_config(tmp_path / "out"))
    (warning,) = [w for w in prepared.warnings if "small.png" in w]
    assert warning.startswith("scenes.0.image_file: small.png is 320x176") and "346x191" in warning
    # Held still, the same picture is shown at its own size: nothing to warn about.
    data["scenes"][0]["motion"] = "none"
    write_script(folder, data)
    assert not [
        w
        for w in preview(RunRequest(script=script), motion_config(tmp_path / "out")).warnings
        if "small" in w
    ]
