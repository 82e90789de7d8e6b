"""`zray run` end to end on a real (shared) Ray instance, with the draft engines; outputs decoded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import FAST_VIDEO, small_script, write_script
from PIL import Image
from typer.testing import CliRunner

from zray.cli import app
from zray.config import load_config
from zray.media import subtitles
from zray.pipeline.run import RunError, RunRequest, run_episode

REPO = Path(__file__).resolve().parent.parent
INTRO = REPO / "inputs" / "assets" / "demo" / "intro.mp4"


def config(tmp_path: Path, **extra):
    """Draft engines, small fast video, and the in-process executor: no Ray needed."""
    extra.setdefault("executor", "in-process")
    return load_config(
        None, output=str(tmp_path / "out"), profile="draft", quiet=True, video=FAST_VIDEO, **extra
    )


def run(tmp_path: Path, script: Path, *, intro: Path | None = None, **extra):
    return run_episode(RunRequest(script=script, intro=intro), config(tmp_path, **extra))


def episode_dir(tmp_path: Path, script: Path) -> Path:
    return tmp_path / "out" / script.parent.name / script.stem


def manifest(folder: Path) -> dict:
    return json.loads((folder / "run.json").read_text())


def decode_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24").astype(np.int16) for f in container.decode(video=0)]


def mtimes(folder: Path) -> dict[str, int]:
    return {
        str(p.relative_to(folder)): p.stat().st_mtime_ns
        for p in folder.rglob("*")
        if p.is_file() and p.name != "run.json" and "logs" not in p.parts
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    script = write_script(tmp / "scripts" / "proj")
    report = run(tmp, script, intro=INTRO)
    return tmp, script, report


def test_run_produces_synchronized_videos(finished):
    tmp, script, report = finished
    assert report.ok, report.failed
    folder = episode_dir(tmp, script)
    record = manifest(folder)
    nodes = record["nodes"]
    intro_frames = nodes["intro"]["result"]["frames"]
    assert intro_frames == 72  # the 3 s, 30 fps demo intro at 24 fps
    for lang, name in (("es", "S01E02-ES-Título_de_prueba.mp4"), ("ca", "S01E02-CA-Prueba_de_zray.mp4")):
        video_path = folder / name
        assert record["outputs"][name]["size"] == video_path.stat().st_size
        pad_frames = [nodes[f"pad:{lang}:{i}"]["result"]["frames"] for i in range(3)]
        frames = decode_frames(video_path)
        assert len(frames) == intro_frames + sum(pad_frames)

        # Each scene's picture starts exactly on its boundary frame.
        images = [
            np.asarray(
                Image.open(folder / "assets" / "common" / f"img_{i}.png").convert("RGB").resize((320, 176))
            ).astype(np.int16)
            for i in range(3)
        ]
        boundary = intro_frames
        for i, count in enumerate(pad_frames):
            distances = [np.abs(frames[boundary] - img).mean() for img in images]
            assert int(np.argmin(distances)) == i, (lang, i, distances)
            if i:
                before = [np.abs(frames[boundary - 1] - img).mean() for img in images]
                assert int(np.argmin(before)) == i - 1
            boundary += count

        # Audio and video end within one frame of each other.
        with av.open(str(video_path)) as container:
            v, a = container.streams.video[0], container.streams.audio[0]
            assert a.codec_context.sample_rate == 48_000 and a.codec_context.channels == 2
            audio_seconds = sum(f.samples for f in container.decode(audio=0)) / 48_000
        assert abs(audio_seconds - len(frames) / 24) <= 1 / 24 + 0.03, (audio_seconds, len(frames) / 24)
        assert v.codec_context.name == "h264"

        # Subtitles: the whole narration, word for word, after the intro.
        cues = subtitles.parse_srt((folder / f"subtitles_{lang}.srt").read_text(encoding="utf-8"))
        narration = " ".join(s[f"script_{lang}"] for s in small_script()["scenes"])
        assert " ".join(" ".join(c.text.split()) for c in cues).split() == narration.split()
        assert cues[0].start >= intro_frames / 24 - 1e-3
        assert cues[-1].end <= len(frames) / 24 + 1e-3
        assert (folder / f"subtitles_{lang}.vtt").read_text(encoding="utf-8").startswith("WEBVTT")

        # Chapters start at 0:00 and where the chapter changes (scene boundaries).
        chapters = (folder / f"chapters_{lang}.txt").read_text(encoding="utf-8").splitlines()
        starts = [intro_frames + sum(pad_frames[:i]) for i in range(3)]
        expected = ["0:00 Uno"] + [
            f"{subtitles.format_timestamp(s / 24)} {title}"
            for s, title in zip(starts[1:], ("Dos", "Tres"), strict=True)
        ]
        assert chapters == expected

        # Thumbnails: 1280x720; Catalan has no variants, so its thumbnail is the bare image.
        with Image.open(folder / f"thumbnail_{lang}.png") as thumb:
            assert thumb.size == (1280, 720)
    assert (folder / "assets" / "thumbnails" / "thumbnail_es_v1.png").exists()
    assert not list((folder / "assets" / "thumbnails").glob("thumbnail_ca_v*.png"))
    assert record["cache"]["hits"] == 0 and record["engines"]["espeak"]
    assert list((folder / "logs").glob("Prueba_de_zray_*.log"))


def test_rerun_rewrites_nothing_then_one_line_rebuilds_one_language(finished, tmp_path):
    tmp, script, _ = finished
    folder = episode_dir(tmp, script)
    before = mtimes(folder)
    report = run(tmp, script, intro=INTRO)
    assert report.ok and not report.ray_started and report.built == 0
    assert mtimes(folder) == before

    data = small_script()
    data["scenes"][1]["script_es"] = "Una frase nueva para la segunda escena, bastante larga para durar."
    script.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    try:
        report = run(tmp, script, intro=INTRO)
    finally:
        script.write_text(json.dumps(small_script(), ensure_ascii=False), encoding="utf-8")
    assert report.ok and report.built == 4  # tts:es:1, pad:es:1, subs:es, video:es
    after = mtimes(folder)
    changed = {name for name in before if after.get(name) != before[name]}
    # The Spanish audio's cached AAC chunks change with it (and only those): zray's own cache.
    chunks = {name for name in changed | (set(after) - set(before)) if name.startswith("assets/tmp/audio/")}
    assert chunks and all(name.startswith("assets/tmp/audio/es/") for name in chunks)
    changed -= chunks
    assert changed == {
        "S01E02-ES-Título_de_prueba.mp4",
        "subtitles_es.srt",
        "subtitles_es.vtt",
        "subtitles_es.words.json",
        "chapters_es.txt",
        "script.json",  # the script as run, kept beside the outputs
        "report.html",  # the run report, which now tells of this run
    }
    new_files = set(after) - set(before) - chunks
    assert all(
        name.startswith(("assets/es/raw/audio_es_1_", "assets/es/padding/audio_es_1_")) for name in new_files
    )


def test_title_change_renames_the_video(tmp_path):
    script = write_script(tmp_path / "scripts" / "proj")
    assert run(tmp_path, script).ok
    folder = episode_dir(tmp_path, script)
    data = small_script()
    data["seo"]["es"]["variants"][0]["title"] = "Nuevo título"
    script.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    report = run(tmp_path, script)
    assert report.ok and report.built == 0
    assert (folder / "S01E02-ES-Nuevo_título.mp4").exists()
    assert not (folder / "S01E02-ES-Título_de_prueba.mp4").exists()

    # --clean rebuilds everything but never forgets what was uploaded.
    (folder / "published.json").write_text('{"es": {"video_id": "abc"}}')
    report = run_episode(RunRequest(script=script, clean=True), config(tmp_path))
    assert report.ok and report.cached == 0
    assert (folder / "published.json").read_text() == '{"es": {"video_id": "abc"}}'


@pytest.mark.slow
def test_crashed_actor_is_restarted_and_its_request_retried(ray_session, tmp_path):
    marker = tmp_path / "crashed"
    data = small_script()
    data["scenes"][0]["image_prompt"] = f"CRASH-ONCE:{marker} a red desert"
    script = write_script(tmp_path / "scripts" / "proj", data)
    report = run(tmp_path, script, executor="ray", engines={"image": "fault_engines:CrashOnceImageEngine"})
    assert marker.exists(), "the engine never crashed: the test proves nothing"
    assert report.ok, report.failed
    assert len(decode_frames(episode_dir(tmp_path, script) / "S01E02-ES-Título_de_prueba.mp4")) > 0


@pytest.mark.slow
def test_killed_run_resumes(tmp_path):
    """kill -9 of the whole run (driver and its embedded Ray), then the same command finishes the job.

    The last scene's image waits on a gate file, so the kill always lands after some steps are recorded
    and before any video could exist, however fast the machine is.
    """
    gate = tmp_path / "gate"
    data = small_script()
    data["scenes"][-1]["image_prompt"] = f"GATE:{gate} a last scene"
    script = write_script(tmp_path / "scripts" / "proj", data)
    folder = episode_dir(tmp_path, script)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]),
        "ZRAY_ENGINES__IMAGE": "fault_engines:GatedImageEngine",
        "ZRAY_VIDEO__WIDTH": "320",
        "ZRAY_VIDEO__HEIGHT": "176",
        "ZRAY_VIDEO__PRESET": "fast",
    }
    cmd = [
        sys.executable,
        "-m",
        "zray",
        "run",
        str(script),
        "--output",
        str(tmp_path / "out"),
        "--profile",
        "draft",
        "--quiet",
    ]
    proc = subprocess.Popen(
        cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if len(manifest(folder).get("nodes", {})) >= 4:
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        assert proc.poll() is None, (
            f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
        )
    finally:
        import psutil

        ray_processes = psutil.Process(proc.pid).children(recursive=True)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        # Ray's processes of the killed run go with it (zray's watchdog); a worker still dying could
        # otherwise leave a temp file after the next run's sweep.
        psutil.wait_procs(ray_processes, timeout=30)
    recorded = set(manifest(folder)["nodes"])
    assert len(recorded) >= 4 and not any(n.startswith("video:") for n in recorded)

    gate.touch()
    result = CliRunner().invoke(app, cmd[3:], env=env)
    assert result.exit_code == 0, result.output
    record = manifest(folder)
    assert record["cache"]["hits"] >= len(recorded)
    for name in ("S01E02-ES-Título_de_prueba.mp4", "S01E02-CA-Prueba_de_zray.mp4"):
        assert (
            len(decode_frames(folder / name))
            == record["nodes"][f"video:{name[7:9].lower()}"]["result"]["frames"]
        )
    assert not [p for p in folder.rglob("*") if ".zray-tmp-" in p.name]


def test_bad_inputs_fail_before_any_work(tmp_path):
    script = write_script(tmp_path / "scripts" / "proj")
    runner = CliRunner()
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    result = runner.invoke(
        app, ["run", str(script), "--output", str(tmp_path / "o1"), "--intro", str(broken)]
    )
    assert result.exit_code == 1 and "--intro" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o1").exists()

    result = runner.invoke(app, ["run", str(script), "--output", str(tmp_path / "o2"), "--lang", "fr"])
    assert result.exit_code == 1 and "--lang fr" in result.output

    bad = write_script(
        tmp_path / "scripts" / "bad", {"project_title": "x", "scenes": []}, name="SAGA_01_Episode_01.json"
    )
    result = runner.invoke(app, ["run", str(bad), "--output", str(tmp_path / "o3")])
    assert result.exit_code == 2 and "scenes: needs at least one scene" in result.output
    assert not (tmp_path / "o3").exists()

    result = runner.invoke(
        app, ["run", str(script), "--output", str(tmp_path / "o4"), "--config", str(tmp_path / "no.toml")]
    )
    assert result.exit_code == 1 and "cannot read the config file" in result.output

    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = runner.invoke(app, ["run", str(script), "--output", str(blocker / "sub")])
    assert result.exit_code == 1 and "cannot write" in result.output


def test_unknown_language_for_the_voice_engine(tmp_path):
    data = small_script()
    for scene in data["scenes"]:
        scene["script_xx"] = "text"
    script = write_script(tmp_path / "scripts" / "proj", data)
    with pytest.raises(RunError, match="no voice for language 'xx'"):
        run(tmp_path, script)


def test_batch_episode_in_a_language_without_voice_fails_alone(tmp_path):
    from zray.pipeline.batch import run_batch

    good = write_script(
        tmp_path / "scripts" / "proj", small_script(episode=1), name="SAGA_01_Episode_01.json"
    )
    data = small_script()
    for scene in data["scenes"]:
        scene["script_xx"] = "text"
    write_script(tmp_path / "scripts" / "proj", data, name="SAGA_01_Episode_02.json")
    report = run_batch([str(tmp_path / "scripts")], config(tmp_path))
    by_name = {r.script.name: r for r in report.reports}
    assert by_name[good.name].ok
    failed = by_name["SAGA_01_Episode_02.json"]
    assert not failed.ok and "no voice for language 'xx'" in failed.failed["xx"]
    assert (tmp_path / "out" / "proj" / "SAGA_01_Episode_01" / "S01E01-ES-Título_de_prueba.mp4").exists()


def test_unreachable_cluster_is_one_line_and_writes_nothing(tmp_path):
    script = write_script(tmp_path / "scripts" / "proj")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["run", str(script), "--output", str(out), "--profile", "draft", "--address", "127.0.0.1:1"]
    )
    assert result.exit_code == 1
    assert "--address 127.0.0.1:1: cannot reach a Ray cluster there" in result.output
    assert not out.exists()


def test_publish_command_on_a_finished_episode(finished, tmp_path):
    tmp, script, _ = finished
    folder = episode_dir(tmp, script)
    site = tmp_path / "site"
    runner = CliRunner()
    first = runner.invoke(app, ["publish", str(folder), "--site", str(site)])
    assert first.exit_code == 0, first.output
    assert (site / "saga-01" / "episode-02" / "content.es.md").exists()
    second = runner.invoke(app, ["publish", str(folder), "--site", str(site)])
    assert "0 files written" in second.output
    missing = runner.invoke(app, ["publish", str(folder)])
    assert missing.exit_code == 1 and "--site" in missing.output


def test_run_flags_parse_without_side_effects(monkeypatch, tmp_path):
    """--upload and --publish are opt-in: a plain run must never reach the uploader."""
    import zray.cli as cli

    calls = []
    monkeypatch.setattr(cli, "_upload", lambda *a, **k: calls.append("upload") or True)
    monkeypatch.setattr(cli, "_publish", lambda *a, **k: calls.append("publish"))
    monkeypatch.setattr(
        "zray.pipeline.run.run_episode",
        lambda request, config: type(
            "R", (), {"ok": True, "languages": ["es"], "failed": {}, "finished": ["es"], "episode": "e"}
        )(),
    )
    script = write_script(tmp_path / "scripts" / "proj")
    assert CliRunner().invoke(app, ["run", str(script)]).exit_code == 0
    assert calls == []
    assert (
        CliRunner().invoke(app, ["run", str(script), "--upload", "--publish", "--site", "x"]).exit_code == 0
    )
    assert calls == ["upload", "publish"]
