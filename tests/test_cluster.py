"""`zray batch` on a multi-node Ray cluster (on one machine) against a real S3 endpoint (moto server).

These tests start their own cluster, so they shut down the session's shared Ray first; later tests
that need Ray start an embedded one.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path

import pytest
from conftest import FAST_VIDEO, needs_extra, small_script
from s3server import moto_server

from zray.actors.cluster import ClusterError
from zray.config import load_config
from zray.pipeline.batch import run_batch
from zray.store import Store

# Only Ray does this (placement, node loss, a cluster): kept apart from the fast in-process tests.
pytestmark = pytest.mark.slow

needs_extra("cloud", "s3fs")
pytest.importorskip("moto")
BUCKET = "zray-test"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server on 127.0.0.1; credentials and endpoint go through the environment, as on a
    real cluster's nodes, before any Ray node starts."""
    with moto_server(tmp_path_factory.mktemp("moto"), bucket=BUCKET) as (endpoint, _):
        yield endpoint


@pytest.fixture(scope="module")
def cluster(s3):
    import ray
    from ray.cluster_utils import Cluster

    ray.shutdown()
    tests = str(Path(__file__).resolve().parent)
    cluster = Cluster(
        initialize_head=True,
        connect=False,
        head_node_args={"num_cpus": 1, "resources": {"head": 1}, "include_dashboard": False},
    )
    workers = [
        cluster.add_node(num_cpus=2, resources={"worker_a": 1}),
        cluster.add_node(num_cpus=2, resources={"worker_b": 1}),
    ]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, runtime_env={"env_vars": {"PYTHONPATH": tests}}, log_to_driver=False)
    yield cluster, workers
    ray.shutdown()
    cluster.shutdown()


def make_scripts(root: Path, *, broken_intro: bool, gate: Path | None = None) -> Path:
    """Three valid episodes in two projects (one with a broken intro if asked) and one invalid script.

    With `gate`, episode 3's last image waits for that file (run with `GatedImageEngine`).
    """
    scripts = root / "inputs" / "scripts"
    for project, episode in (("alpha", 1), ("alpha", 2), ("beta", 3)):
        folder = scripts / project
        folder.mkdir(parents=True, exist_ok=True)
        data = small_script(episode=episode)
        data["scenes"] = data["scenes"][:2]
        if gate is not None and episode == 3:
            data["scenes"][-1]["image_prompt"] = f"GATE:{gate} {data['scenes'][-1]['image_prompt']}"
        (folder / f"SAGA_01_Episode_{episode:02d}.json").write_text(json.dumps(data, ensure_ascii=False))
    (scripts / "alpha" / "SAGA_01_Episode_09.json").write_text('{"project_title": "no scenes"}')
    if broken_intro:
        (root / "inputs" / "assets" / "beta").mkdir(parents=True)
        (root / "inputs" / "assets" / "beta" / "intro.mp4").write_bytes(b"this is not a video")
    return scripts


def config(output: str, **extra):
    return load_config(
        None, output=output, profile="draft", quiet=True, video=FAST_VIDEO, executor="ray", **extra
    )


def decoded_frames(store: Store, key: str, tmp: Path) -> int:
    import av

    local = store.get(key, tmp / Path(key).name)
    with av.open(str(local)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_batch_across_nodes_on_s3(cluster, tmp_path):
    scripts = make_scripts(tmp_path, broken_intro=True)
    out = f"s3://{BUCKET}/run1"
    report = run_batch([str(scripts)], config(out), max_episodes=3)

    assert not report.ok  # one invalid script and one broken intro
    assert list(report.invalid) == [str(scripts / "alpha" / "SAGA_01_Episode_09.json")]
    by_name = {r.script.name: r for r in report.reports}
    assert (
        by_name["SAGA_01_Episode_03.json"].failed
        and "--intro" in by_name["SAGA_01_Episode_03.json"].failed["all"]
    )
    good = [by_name["SAGA_01_Episode_01.json"], by_name["SAGA_01_Episode_02.json"]]
    assert all(r.ok for r in good)

    store = Store(out)
    nodes_used = set()
    for _report, episode in zip(good, ("alpha/SAGA_01_Episode_01", "alpha/SAGA_01_Episode_02"), strict=True):
        record = json.loads(store.read_text(f"{episode}/run.json"))
        for lang in ("es", "ca"):
            video = record["nodes"][f"video:{lang}"]
            frames = sum(record["nodes"][f"pad:{lang}:{i}"]["result"]["frames"] for i in range(2))
            assert decoded_frames(store, f"{episode}/{video['outputs'][0]}", tmp_path) == frames
        nodes_used |= {n["step"]["node"] for n in record["nodes"].values() if "node" in n.get("step", {})}
    assert len(nodes_used) >= 2, f"CPU tasks ran on one node only: {nodes_used}"

    batch = json.loads(store.read_text("batch.json"))
    assert [e["status"] for e in batch["episodes"]] == ["ok", "ok", "failed"]
    assert list(batch["invalid"]) == [str(scripts / "alpha" / "SAGA_01_Episode_09.json")]

    # Rerunning redoes only what is missing: nothing, for the finished episodes.
    again = run_batch([str(scripts / "alpha")], config(out), max_episodes=3)
    assert all(r.built == 0 for r in again.reports)


def test_worker_node_removed_mid_batch(cluster, tmp_path):
    """A worker leaves while one episode's image is held at a gate, so the removal always lands mid-batch."""
    head_cluster, workers = cluster
    gate = tmp_path / "gate"
    scripts = make_scripts(tmp_path, broken_intro=False, gate=gate)
    out = f"s3://{BUCKET}/run2"
    store = Store(out)
    result: dict = {}

    def go():
        result["report"] = run_batch(
            [str(scripts)], config(out, engines={"image": "fault_engines:GatedImageEngine"}), max_episodes=3
        )

    thread = threading.Thread(target=go)
    thread.start()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and thread.is_alive():
        recorded = 0
        for episode in ("alpha/SAGA_01_Episode_01", "alpha/SAGA_01_Episode_02", "beta/SAGA_01_Episode_03"):
            with contextlib.suppress(OSError, ValueError):
                recorded += len(json.loads(store.read_text(f"{episode}/run.json")).get("nodes", {}))
        if recorded >= 6:
            break
        time.sleep(0.2)
    assert thread.is_alive(), f"the batch ended before a node could be removed: {result}"
    head_cluster.remove_node(workers[0])
    gate.touch()
    thread.join(timeout=600)
    assert not thread.is_alive()
    report = result["report"]
    assert [r.ok for r in report.reports] == [True, True, True], [r.failed for r in report.reports]
    for episode in ("alpha/SAGA_01_Episode_01", "beta/SAGA_01_Episode_03"):
        record = json.loads(store.read_text(f"{episode}/run.json"))
        video = record["nodes"]["video:es"]
        frames = sum(record["nodes"][f"pad:es:{i}"]["result"]["frames"] for i in range(2))
        assert decoded_frames(store, f"{episode}/{video['outputs'][0]}", tmp_path) == frames
    # Nothing half-written is left where a later run would look.
    assert not [k for k in store.list("") if ".zray-tmp-" in k]


def test_local_output_refused_on_multi_node_cluster(cluster, tmp_path):
    scripts = make_scripts(tmp_path, broken_intro=False)
    with pytest.raises(ClusterError, match=r"local folder but the cluster has .* nodes"):
        run_batch([str(scripts / "alpha" / "SAGA_01_Episode_01.json")], config(str(tmp_path / "out")))
    assert not (tmp_path / "out" / "alpha").exists()


def test_batch_cli_exit_code_and_table(cluster, tmp_path):
    from typer.testing import CliRunner

    from zray.cli import app

    scripts = make_scripts(tmp_path, broken_intro=False)
    env = {"ZRAY_VIDEO__WIDTH": "320", "ZRAY_VIDEO__HEIGHT": "176", "ZRAY_VIDEO__PRESET": "fast"}
    result = CliRunner().invoke(
        app,
        ["batch", str(scripts / "alpha"), "--output", f"s3://{BUCKET}/run3", "--profile", "draft", "--quiet"],
        env=env,
    )
    assert result.exit_code == 1, result.output  # the invalid script in alpha/
    assert "INVALID" in result.output
    assert "zray batch: 2 episodes" in result.output


def test_scripts_from_s3_bring_their_projects_intro(s3, tmp_path):
    """The seed's layout in a bucket: inputs/scripts/<project>/X.json finds inputs/assets/<project>/intro.mp4."""
    import fsspec

    from zray.pipeline.batch import find_scripts
    from zray.pipeline.prepare import find_intro

    intro = Path(__file__).resolve().parent.parent / "inputs" / "assets" / "demo" / "intro.mp4"
    fs = fsspec.filesystem("s3")
    root = f"{BUCKET}/season/inputs"
    fs.pipe(f"{root}/scripts/alpha/SAGA_01_Episode_01.json", json.dumps(small_script(episode=1)).encode())
    fs.pipe(f"{root}/scripts/beta/SAGA_01_Episode_02.json", json.dumps(small_script()).encode())
    fs.put_file(str(intro), f"{root}/assets/alpha/intro.mp4")
    found, missing = find_scripts([f"s3://{root}/scripts"], tmp_path / "work")
    assert not missing and [p.name for p, _ in found] == [
        "SAGA_01_Episode_01.json",
        "SAGA_01_Episode_02.json",
    ]
    assert [origin for _, origin in found] == [
        f"s3://{root}/scripts/alpha/SAGA_01_Episode_01.json",
        f"s3://{root}/scripts/beta/SAGA_01_Episode_02.json",
    ]
    (alpha, _), (beta, _) = found
    assert find_intro(alpha, "alpha").read_bytes() == intro.read_bytes()
    assert find_intro(beta, "beta") is None
