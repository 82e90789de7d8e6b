"""An episode made by zray 0.1 (key format 1) is migrated, not regenerated.

tests/fixtures/format1_episode.tgz was written by the old code (see make_format1_episode.py beside
it): its run.json holds format-1 keys, its files are named after them, and its published.json and
review.json name the long video's format-1 key.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tarfile
from pathlib import Path

from zray.keys import KEY_FORMAT
from zray.pipeline.run import RunRequest, run_episode

FIXTURES = Path(__file__).resolve().parent / "fixtures"
sys.path.insert(0, str(FIXTURES))
from make_format1_episode import config  # noqa: E402


def unpack(tmp_path: Path) -> tuple[Path, Path]:
    with tarfile.open(FIXTURES / "format1_episode.tgz") as archive:
        archive.extractall(tmp_path, filter="data")
    return (
        tmp_path / "scripts" / "proj" / "SAGA_01_Episode_02.json",
        tmp_path / "out" / "proj" / "SAGA_01_Episode_02",
    )


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(tmp_path: Path, script: Path):
    cfg = config(tmp_path)
    # force: the record names the script where the fixture was made, which may exist on this machine.
    return run_episode(RunRequest(script=script, force=True), cfg)


def steps_unchanged_since_format_1(monkeypatch) -> None:
    """An upgrade in which every step still writes what it wrote under format 1."""
    from zray import nodes
    from zray.engines import storyboard

    for kind in list(nodes.STEP_VERSION):
        monkeypatch.setitem(nodes.STEP_VERSION, kind, 1)
    monkeypatch.setattr(storyboard, "ENGINE_VERSION", "1")  # the fixture's thumbnail bases are its cards


def node_kind(node_id: str) -> str:
    return "image" if node_id.startswith("thumb_base:") else node_id.split(":")[0]


def test_a_format_1_episode_keeps_its_work_and_its_records_follow_the_video(tmp_path, monkeypatch):
    steps_unchanged_since_format_1(monkeypatch)
    script, folder = unpack(tmp_path)
    before = json.loads((folder / "run.json").read_text())
    assert "key_format" not in before
    old_video_key = before["nodes"]["video:es"]["key"]
    video = folder / "S01E02-ES-Título_de_prueba.mp4"
    video_sha, video_mtime = sha(video), video.stat().st_mtime_ns
    raw_old = sorted(p.name for p in (folder / "assets/es/raw").iterdir())

    report = run(tmp_path, script)

    assert report.ok, report.failed
    after = json.loads((folder / "run.json").read_text())
    assert after["key_format"] == KEY_FORMAT
    # Every node was recognised (the pictures are the studio's own): nothing ran.
    assert (report.built, report.executor) == (0, None)
    new_video_key = after["nodes"]["video:es"]["key"]
    assert new_video_key != old_video_key
    assert {n: e["key"] for n, e in after["nodes"].items()}.keys() == before["nodes"].keys()
    assert not {e["key"] for e in after["nodes"].values()} & {e["key"] for e in before["nodes"].values()}
    # The video is the same file, untouched.
    assert (sha(video), video.stat().st_mtime_ns) == (video_sha, video_mtime)
    # Files named after their key were renamed to the new key, not rebuilt; the record names them.
    raw_new = sorted(p.name for p in (folder / "assets/es/raw").iterdir())
    assert len(raw_new) == len(raw_old) and not set(raw_new) & set(raw_old)
    for node_id in ("tts:es:0", "pad:es:1", "segment:2", "music"):
        entry = after["nodes"][node_id]
        assert entry["key"][:8] in entry["outputs"][0]
        assert (folder / entry["outputs"][0]).is_file()
        assert entry["files"][entry["outputs"][0]]["sha256"] == sha(folder / entry["outputs"][0])
    # The upload record and the approval follow the video: its bytes are the ones uploaded and approved.
    published = json.loads((folder / "published.json").read_text())["videos"]["es"]
    assert published["content_key"] == new_video_key
    from zray.keys import content_tag

    assert published["content_tag"] == content_tag(old_video_key)  # what YouTube's copy is tagged with
    review = json.loads((folder / "review.json").read_text())
    assert review["approvals"]["es"]["keys"] == {"video:es": new_video_key}

    # A second run finds everything current under the new keys and migrates nothing again.
    again = run(tmp_path, script)
    assert again.ok and again.built == 0
    assert json.loads((folder / "run.json").read_text())["nodes"]["video:es"]["key"] == new_video_key


def test_a_format_1_node_whose_request_changed_since_is_rebuilt_and_its_video_unapproved(
    tmp_path, monkeypatch
):
    steps_unchanged_since_format_1(monkeypatch)
    script, folder = unpack(tmp_path)
    data = json.loads(script.read_text())
    data["scenes"][1]["script_es"] = "Buenas noches."
    script.write_text(json.dumps(data, ensure_ascii=False))
    video = folder / "S01E02-ES-Título_de_prueba.mp4"
    old_sha = sha(video)

    report = run(tmp_path, script)

    assert report.ok, report.failed
    steps = json.loads((folder / "run.json").read_text())["last_run"]["steps"]
    built = {node_id for node_id, info in steps.items() if info["state"] == "built"}
    assert built == {"tts:es:1", "pad:es:1", "subs:es", "video:es"}
    assert sha(video) != old_sha
    review = json.loads((folder / "review.json").read_text())
    new_key = json.loads((folder / "run.json").read_text())["nodes"]["video:es"]["key"]
    assert review["approvals"]["es"]["keys"]["video:es"] != new_key  # approved was another video


def test_a_kind_whose_step_changed_since_format_1_is_rebuilt_and_only_what_it_feeds(tmp_path, monkeypatch):
    from zray import nodes
    from zray.engines import storyboard

    monkeypatch.setattr(storyboard, "ENGINE_VERSION", "1")  # only the step versions differ
    script, folder = unpack(tmp_path)
    moved_on = {kind for kind, version in nodes.STEP_VERSION.items() if version != 1}
    before = json.loads((folder / "run.json").read_text())["nodes"]

    report = run(tmp_path, script)

    assert report.ok, report.failed
    steps = json.loads((folder / "run.json").read_text())["last_run"]["steps"]
    built = {node_id for node_id, info in steps.items() if info["state"] == "built"}
    expected = {node_id for node_id in before if nodes.Kind(node_kind(node_id)) in moved_on}
    assert expected and built == expected  # what they feed is final: nothing else to rebuild


def test_a_video_made_again_with_the_same_bytes_keeps_its_upload_record_and_approval(tmp_path, monkeypatch):
    """A step version bump that changes nothing in this video: it is rebuilt under a new key, and
    since its bytes are the ones uploaded and approved, the records follow it."""
    from zray import nodes
    from zray.nodes import Kind

    script, folder = unpack(tmp_path)
    assert run(tmp_path, script).ok
    key = json.loads((folder / "run.json").read_text())["nodes"]["video:es"]["key"]
    video_sha = sha(folder / "S01E02-ES-Título_de_prueba.mp4")
    # This video is the one uploaded and approved (as the fixture's records say of its own).
    for name, section, entry in (
        ("published.json", "videos", "content_key"),
        ("review.json", "approvals", "keys"),
    ):
        record = json.loads((folder / name).read_text())
        record[section]["es"][entry] = key if entry == "content_key" else {"video:es": key}
        (folder / name).write_text(json.dumps(record))

    monkeypatch.setitem(nodes.STEP_VERSION, Kind.VIDEO, nodes.STEP_VERSION[Kind.VIDEO] + 1)
    report = run(tmp_path, script)

    assert report.ok and report.built == 1
    after = json.loads((folder / "run.json").read_text())["nodes"]["video:es"]
    assert after["key"] != key and after["made_from"]["step_version"] == nodes.STEP_VERSION[Kind.VIDEO]
    assert sha(folder / "S01E02-ES-Título_de_prueba.mp4") == video_sha
    assert json.loads((folder / "published.json").read_text())["videos"]["es"]["content_key"] == after["key"]
    review = json.loads((folder / "review.json").read_text())
    assert review["approvals"]["es"]["keys"] == {"video:es": after["key"]}


def test_explain_on_a_format_1_episode_says_only_what_a_run_would_make_and_changes_nothing(
    tmp_path, monkeypatch
):
    from zray.pipeline.run import preview

    steps_unchanged_since_format_1(monkeypatch)
    script, folder = unpack(tmp_path)
    data = json.loads(script.read_text())
    data["scenes"][2]["script_es"] = "Hasta luego."
    script.write_text(json.dumps(data, ensure_ascii=False))
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}

    prep = preview(RunRequest(script=script, force=True), config(tmp_path))

    assert set(prep.reasons) == {"tts:es:2", "pad:es:2", "subs:es", "video:es"}
    # Format 1 kept nothing to compare with: the reason says so.
    assert prep.reasons["tts:es:2"] == "what it is made from changed (recorded before zray kept why)"
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()} == before
