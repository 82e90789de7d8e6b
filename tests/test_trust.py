"""What a rerun trusts is what was written, and a run only ever touches its own episode's files.

Fault classes a studio meets over months: a copied folder, a hand-edited or damaged record, a
damaged artifact, two scripts claiming one folder, two runs at once. Everything here runs in
process (no Ray): the guarantees live in the plan, the records and the store, not in Ray.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import av
import pytest
from conftest import FAST_VIDEO, needs_extra, small_script, write_script
from typer.testing import CliRunner

from zray.cli import app
from zray.config import load_config
from zray.lock import LockedError
from zray.pipeline.batch import run_batch
from zray.pipeline.records import RunRecordConflict
from zray.pipeline.run import RunRequest, run_episode


def config(out: Path, **extra):
    extra.setdefault("executor", "in-process")
    extra.setdefault("video", FAST_VIDEO)
    return load_config(None, output=str(out), profile="draft", quiet=True, **extra)


def one_language(**overrides) -> dict:
    data = small_script(**overrides)
    for scene in data["scenes"]:
        scene.pop("script_ca"), scene.pop("chapter_ca")
    data["seo"].pop("ca")
    return data


def run(out: Path, script: Path, **request):
    return run_episode(RunRequest(script=script, **request), config(out))


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def frames_of(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


@pytest.fixture
def made(tmp_path):
    """One finished single-language episode."""
    script = write_script(
        tmp_path / "scripts" / "proj", one_language(episode=1), name="SAGA_01_Episode_01.json"
    )
    out = tmp_path / "out"
    report = run(out, script)
    assert report.ok, report.failed
    return out, script, out / "proj" / "SAGA_01_Episode_01"


# --- a run never touches another episode's files ------------------------------------------------


def test_a_copied_folder_never_touches_the_episode_it_was_copied_from(made, caplog):
    out, script, folder = made
    before = files(folder)
    copy = out / "proj" / "SAGA_01_Episode_02"
    shutil.copytree(folder, copy)
    other = write_script(
        script.parent, one_language(episode=2, project_title="Otro episodio"), name="SAGA_01_Episode_02.json"
    )
    report = run(out, other)
    assert report.ok, report.failed
    assert files(folder) == before, "running episode 2 changed episode 1's folder"
    assert any("set aside" in r.getMessage() for r in caplog.records)
    assert list(copy.glob("run.json.set-aside-*"))
    record = json.loads((copy / "run.json").read_text())
    assert record["identity"] == {"project": "proj", "saga": 1, "episode": 2}
    assert (copy / "S01E02-ES-Título_de_prueba.mp4").exists()


def test_a_record_naming_files_outside_the_folder_is_set_aside(made):
    out, script, folder = made
    precious = out / "proj" / "OTHER" / "precious.txt"
    precious.parent.mkdir(parents=True)
    precious.write_text("keep me")
    record = json.loads((folder / "run.json").read_text())
    for path in ("../OTHER/precious.txt", "proj/OTHER/precious.txt", "/etc/hostname"):
        record["nodes"]["video:es"]["outputs"] = [path]
        (folder / "run.json").write_text(json.dumps(record))
        # A title change would rename (move) the video; a rebuild would delete the replaced file.
        data = one_language(episode=1)
        data["seo"]["es"]["variants"][0]["title"] = f"Nuevo {len(path)}"
        script.write_text(json.dumps(data))
        assert run(out, script).ok
        assert precious.read_text() == "keep me"
        assert list(folder.glob("run.json.set-aside-*"))
        record = json.loads((folder / "run.json").read_text())


def test_clean_deletes_exactly_what_zray_generated(made):
    out, script, folder = made
    (folder / "notes.txt").write_text("my notes")
    (folder / "published.json").write_text('{"es": {"video_id": "abc"}}')
    (folder / "review.json").write_text("{}")
    generated = {
        p for p in files(folder) if p not in ("notes.txt", "published.json", "review.json", "run.json")
    }

    result = CliRunner().invoke(
        app, ["run", str(script), "--output", str(out), "--profile", "draft", "--clean", "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert re.fullmatch(
        rf"{len(generated)} files \(\d+\.\d MB\) would be removed; nothing deleted", lines[-1]
    )
    listed, folder_name = set(), ""
    for line in lines[:-1]:  # `folder/ (N files, X MB)` then its files, indented
        if line.startswith("  "):
            listed.add(f"{folder_name}/{line.strip()}".removeprefix("./"))
        else:
            folder_name = line.split("/ (")[0]
    assert listed == generated
    assert set(files(folder)) >= generated  # a dry run deletes nothing

    report = run_episode(RunRequest(script=script, clean=True), config(out))
    assert report.ok and report.cached == 0
    assert (folder / "notes.txt").read_text() == "my notes"
    assert (folder / "published.json").read_text() == '{"es": {"video_id": "abc"}}'
    assert (folder / "review.json").read_text() == "{}"


# --- one episode, one script, one writer --------------------------------------------------------


def test_batch_refuses_two_scripts_for_one_folder(tmp_path):
    a = write_script(tmp_path / "A" / "proj", one_language(), name="SAGA_01_Episode_01.json")
    b = write_script(
        tmp_path / "B" / "proj", one_language(project_title="Otro"), name="SAGA_01_Episode_01.json"
    )
    report = run_batch([str(a), str(b)], config(tmp_path / "out"))
    assert not report.ok
    for r in report.reports:
        reason = r.failed["all"]
        assert (
            str(a.resolve()) in reason and str(b.resolve()) in reason and "proj/SAGA_01_Episode_01" in reason
        )
    assert not (tmp_path / "out" / "proj").exists(), "a refused collision still did work"


def test_another_script_for_the_same_episode_needs_force(made, tmp_path):
    out, _script, _folder = made
    other = write_script(
        tmp_path / "elsewhere" / "proj", one_language(episode=1), name="SAGA_01_Episode_01.json"
    )
    with pytest.raises(RunRecordConflict, match="two scripts claim one folder"):
        run(out, other)
    assert run(out, other, force=True).ok


def hold_lock(folder: Path) -> subprocess.Popen:
    """Another process that holds the episode's lock until it is killed."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from zray.lock import episode_lock
                from zray.store import Store
                with episode_lock(Store({str(folder)!r}), command="zray upload test"):
                    print("held", flush=True)
                    time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_writer_is_refused_with_who_and_since(made):
    out, script, folder = made
    holder = hold_lock(folder)
    try:
        with pytest.raises(LockedError) as caught:
            run(out, script)
        message = str(caught.value)
        assert "zray upload test" in message and f"pid {holder.pid}" in message and "since" in message
        assert "\n" not in message
    finally:
        holder.kill()
        holder.wait()
    assert run(out, script).ok  # the kernel released the dead holder's lock


@pytest.mark.parametrize(
    "command",
    [
        ["upload", "--dry-run"],
        ["publish", "--site", "SITE"],
        ["review", "--approve", "es"],
    ],
    ids=["upload", "publish", "review"],
)
def test_every_command_that_writes_the_folder_waits_its_turn(made, tmp_path, command):
    """Uploading, publishing and review decisions write the episode's records: while another process
    holds the folder each is refused in one line, before it reads or writes anything."""
    _, _, folder = made
    if command[0] == "upload":
        needs_extra("publish")  # without it, upload stops on the missing extra before the lock
    before = files(folder)
    args = [a.replace("SITE", str(tmp_path / "site")) for a in command]
    holder = hold_lock(folder)
    try:
        result = CliRunner().invoke(app, [args[0], str(folder), *args[1:]])
    finally:
        holder.kill()
        holder.wait()
    lines = result.output.strip().splitlines()
    assert result.exit_code != 0 and len(lines) == 1, result.output
    assert "zray upload test" in lines[0] and f"pid {holder.pid}" in lines[0]
    assert files(folder) == before and not (tmp_path / "site").exists()


# --- what is read back is what was written ------------------------------------------------------


def test_a_truncated_video_is_noticed_and_rebuilt(made, caplog):
    out, script, folder = made
    video = folder / "S01E01-ES-Título_de_prueba.mp4"
    good = video.read_bytes()
    video.write_bytes(good[: len(good) // 2])
    report = run(out, script)
    assert report.ok and report.built == 1
    assert any(
        "S01E01-ES-Título_de_prueba.mp4 changed since it was made" in r.getMessage() for r in caplog.records
    )
    record = json.loads((folder / "run.json").read_text())
    assert record["outputs"][video.name]["size"] == video.stat().st_size == len(good)


def test_a_same_size_damage_with_a_new_mtime_is_noticed(made):
    out, script, folder = made
    video = folder / "S01E01-ES-Título_de_prueba.mp4"
    data = bytearray(video.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 200_000] = bytes(min(200_000, len(data) // 2))
    video.write_bytes(bytes(data))
    report = run(out, script)
    assert report.built == 1
    assert frames_of(video) > 0


def test_verify_finds_what_a_rerun_cannot(made):
    """Same size and same mtime: the fingerprint cannot see it, `zray verify` hashes everything."""
    out, script, folder = made
    image = folder / "assets" / "common" / "img_1.png"
    stat = image.stat()
    data = bytearray(image.read_bytes())
    data[-100:] = bytes(100)
    image.write_bytes(bytes(data))
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert run(out, script).built == 0  # documented: a plain rerun trusts the fingerprint
    result = CliRunner().invoke(app, ["verify", str(folder)])
    assert result.exit_code == 1
    assert "assets/common/img_1.png" in result.output and "damaged" in result.output


def test_a_damaged_input_is_rebuilt_before_it_is_used(made, caplog):
    """A padded narration replaced by silence, same size and mtime: the step that reads it checks its
    hash, so the video is never made out of sync; the pad is rebuilt first."""
    out, script, folder = made
    pad = next((folder / "assets" / "es" / "padding").glob("audio_es_1_*.wav"))
    stat = pad.stat()
    data = pad.read_bytes()
    pad.write_bytes(data[:44] + bytes(len(data) - 44))
    os.utime(pad, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    (folder / "S01E01-ES-Título_de_prueba.mp4").unlink()
    report = run(out, script)
    assert report.ok, report.failed
    assert pad.read_bytes() == data
    assert any("changed since it was made" in r.getMessage() for r in caplog.records)


def test_a_truncated_scene_picture_is_rebuilt_when_needed(made):
    out, script, folder = made
    image = folder / "assets" / "common" / "img_0.png"
    image.write_bytes(image.read_bytes()[:100])
    # Another video format needs new segments, so the picture is read again.
    report = run_episode(RunRequest(script=script), config(out, video={**FAST_VIDEO, "preset": "final"}))
    assert report.ok, report.failed
    from PIL import Image

    with Image.open(image) as img:
        img.load()


def test_an_unreadable_record_is_set_aside_not_trusted(made):
    out, script, folder = made
    for broken in ("{not json", '{"nodes": "abc"}', '{"nodes": {"video:es": 1}}', "[1, 2]"):
        (folder / "run.json").write_text(broken)
        report = run(out, script)
        assert report.ok
        assert json.loads((folder / "run.json").read_text())["nodes"]["video:es"]["key"]
    assert len(list(folder.glob("run.json.set-aside-*"))) >= 1


def test_an_upgraded_record_keeps_its_artifacts(made):
    """A run.json written by zray 0.1 (paths from the output root, no hashes) still counts: nothing is
    rebuilt, and the files are hashed once and remembered."""
    out, script, folder = made
    record = json.loads((folder / "run.json").read_text())
    prefix = "proj/SAGA_01_Episode_01/"
    for entry in record["nodes"].values():
        entry["outputs"] = [prefix + p for p in entry["outputs"]]
        entry.pop("files")
        entry["result"]["path"] = prefix + entry["result"]["path"]
    for name in ("format", "identity"):
        record.pop(name)
    record["script"] = str(script)
    (folder / "run.json").write_text(json.dumps(record))
    report = run(out, script)
    assert report.built == 0
    upgraded = json.loads((folder / "run.json").read_text())
    assert upgraded["format"] == 2
    assert all(upgraded["nodes"][f"{kind}:es"]["files"] for kind in ("video", "subs", "thumbs"))


def test_a_full_disk_leaves_nothing_trusted_and_a_rerun_finishes(made, monkeypatch):
    out, script, folder = made
    video = folder / "S01E01-ES-Título_de_prueba.mp4"
    video.unlink()
    real = os.replace

    def full(src, dst, *args, **kwargs):
        if str(dst).endswith(".mp4"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", full)
    report = run(out, script)
    assert (
        not report.ok
        and f"no space left on device: {folder} is full, so {video} was not written" in (report.failed["es"])
    )
    assert not video.exists() and not [p for p in folder.rglob("*") if ".zray-tmp-" in p.name]
    assert "video:es" not in json.loads((folder / "run.json").read_text())["nodes"]
    monkeypatch.undo()
    assert run(out, script).ok and frames_of(video) > 0


def test_a_full_disk_for_the_record_is_one_line(made, monkeypatch):
    out, script, folder = made
    (folder / "S01E01-ES-Título_de_prueba.mp4").unlink()
    real = os.replace

    def full(src, dst, *args, **kwargs):
        if str(dst).endswith("run.json"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", full)
    result = CliRunner().invoke(
        app,
        ["run", str(script), "--output", str(out), "--profile", "draft", "--quiet"],
        env={
            "ZRAY_VIDEO__WIDTH": "320",
            "ZRAY_VIDEO__HEIGHT": "176",
            "ZRAY_VIDEO__PRESET": "fast",
            "ZRAY_EXECUTOR": "in-process",
        },
    )
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("zray:")]
    assert len(errors) == 1 and "Traceback" not in result.output
    assert f"no space left on device: {folder} is full, so {folder / 'run.json'} was not written" in errors[0]


def test_an_episode_folder_that_links_to_another_episode_s_folder_is_refused(tmp_path):
    out = tmp_path / "out"
    first = out / "proj" / "SAGA_01_Episode_01"
    first.mkdir(parents=True)
    record = {"format": 2, "identity": {"project": "proj", "saga": 1, "episode": 1}, "nodes": {}}
    (first / "run.json").write_text(json.dumps(record))
    (out / "proj" / "SAGA_01_Episode_02").symlink_to(first)
    before = files(first)
    script = write_script(
        tmp_path / "scripts" / "proj", one_language(episode=2), name="SAGA_01_Episode_02.json"
    )

    with pytest.raises(LockedError) as caught:
        run(out, script)

    message = str(caught.value)
    assert f"is a link to {first}, the folder of proj/S01E01" in message and "\n" not in message
    assert files(first) == before and not list(first.glob("run.json.set-aside-*"))


def test_a_link_inside_the_episode_folder_is_replaced_never_written_through(made, caplog):
    out, script, folder = made
    mine = out.parent / "my_sounds"
    shutil.copytree(folder / "assets" / "common", mine)  # the same bytes: a link must not be trusted
    before = files(mine)
    shutil.rmtree(folder / "assets" / "common")
    (folder / "assets" / "common").symlink_to(mine)
    video = next(folder.glob("*.mp4"))
    video.unlink()
    video.symlink_to(mine / next(iter(before)))

    result = CliRunner().invoke(app, ["verify", str(folder)])  # what a link points at is not zray's
    assert result.exit_code != 0 and "assets/common/img_0.png" in result.output, result.output
    assert "missing" in result.output

    report = run(out, script)

    assert report.ok, report.failed
    assert files(mine) == before  # never written, deleted or trusted
    assert not (folder / "assets" / "common").is_symlink() and (folder / "assets" / "common").is_dir()
    assert not video.is_symlink() and frames_of(video) > 0
    assert any("is a link" in r.getMessage() and "left alone" in r.getMessage() for r in caplog.records)
