"""Where the engine actors land on a multi-GPU cluster, and how the driver admits episodes.

The cluster is `ray.cluster_utils.Cluster` on this machine: two worker nodes that declare two GPUs
each. No CUDA is needed: Ray hands out GPU ids all the same, and the draft engines ignore them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import FAST_VIDEO, small_script, write_script

from zray.actors.placement import GPU_SHARE, actor_plans, gpu_bundles
from zray.actors.pool import ActorPool
from zray.config import ActorsConfig, load_config
from zray.pipeline.engine_setup import prepare_engines
from zray.pipeline.prepare import RunRequest, open_store, prepare_episode
from zray.pipeline.run import run_episode
from zray.script import load_script

# Only Ray does this (placement, node loss, a cluster): kept apart from the fast in-process tests.
pytestmark = pytest.mark.slow

ray = pytest.importorskip("ray")


def shares_config(output: Path, **extra):
    """Draft engines given production's GPU shares, as a GPU cluster's config would."""
    actors = {role: {"num_gpus": share} for role, share in GPU_SHARE.items()}
    return load_config(
        None,
        output=str(output),
        profile="draft",
        quiet=True,
        video=FAST_VIDEO,
        shared_storage=True,  # every node of the test cluster is this machine
        actors=actors,
        executor="ray",
        **extra,
    )


PRODUCTION = {"image": True, "tts": True, "music": True}  # roles whose engines use a GPU


def test_gpu_engines_get_their_share_and_one_actor_per_gpu():
    plans = actor_plans(ActorsConfig(), PRODUCTION, 4)
    assert plans == {"image": (0.5, 4, 0.25), "tts": (0.2, 4, 0.25), "music": (0.3, 4, 0.25)}
    # Without GPUs, and for CPU engines, one actor of each role and no share.
    assert actor_plans(ActorsConfig(), PRODUCTION, 0) == {r: (0.0, 1, 0.25) for r in PRODUCTION}
    draft = {"image": False, "tts": False, "music": False}
    assert actor_plans(ActorsConfig(), draft, 4) == {r: (0.0, 1, 0.25) for r in draft}


def test_an_autoscaling_cluster_gets_a_full_set_of_models_per_gpu_it_will_have():
    """cluster/zray.toml's case: explicit shares and two image actors, and no GPU node up yet."""
    actors = ActorsConfig.model_validate(
        {"image": {"num_gpus": 0.75, "count": 2}, "tts": {"num_gpus": 0.1}, "music": {"num_gpus": 0.15}}
    )
    plans = actor_plans(actors, PRODUCTION, 0)
    assert [count for _, count, _ in plans.values()] == [2, 2, 2]
    assert gpu_bundles(plans, 0) == [{"GPU": 1.0, "CPU": 0.75}] * 2


def test_one_bundle_per_gpu_holds_one_actor_of_each_role():
    plans = {"image": (0.5, 4, 0.25), "tts": (0.2, 4, 0.25), "music": (0.3, 4, 0.25)}
    assert gpu_bundles(plans, 4) == [{"GPU": 1.0, "CPU": 0.75}] * 4


def test_bundles_follow_the_configured_count_when_the_cluster_has_fewer_gpus_yet():
    # An autoscaling cluster may start with no GPU node: the bundles are what makes it add them.
    plans = {"image": (0.75, 2, 0.25), "tts": (0.1, 1, 0.0), "music": (0.15, 1, 0.0)}
    assert gpu_bundles(plans, 0) == [{"GPU": 1.0, "CPU": 0.25}, {"GPU": 1.0, "CPU": 0.25}]


def test_no_bundles_without_gpu_shares_or_when_shares_overflow_a_card(caplog):
    assert gpu_bundles({"image": (0.0, 1, 0.25), "tts": (0.0, 1, 0.25)}, 2) is None
    assert gpu_bundles({"image": (1.0, 2, 0.25), "tts": (0.2, 2, 0.25)}, 2) is None
    assert "add up to 1.20 GPUs on one card" in caplog.text


@pytest.fixture(scope="module")
def gpu_cluster():
    from ray.cluster_utils import Cluster

    ray.shutdown()
    cluster = Cluster(
        initialize_head=True,
        connect=False,
        head_node_args={"num_cpus": 1, "num_gpus": 0, "include_dashboard": False},
    )
    nodes = [cluster.add_node(num_cpus=2, num_gpus=2) for _ in range(2)]
    cluster.wait_for_nodes()
    tests = str(Path(__file__).resolve().parent)
    ray.init(address=cluster.address, runtime_env={"env_vars": {"PYTHONPATH": tests}}, log_to_driver=False)
    yield cluster, nodes
    ray.shutdown()
    cluster.shutdown()


def where(actor) -> tuple[str, tuple[int, ...]]:
    return ray.get(
        actor.__ray_call__.remote(
            lambda self: (ray.get_runtime_context().get_node_id(), tuple(ray.get_gpu_ids()))
        )
    )


def test_every_gpu_gets_one_image_one_voice_and_one_music_actor(gpu_cluster, tmp_path):
    _, nodes = gpu_cluster
    config = shares_config(tmp_path / "out")
    engines = prepare_engines(["es"], config, "draft")
    pool = ActorPool(config, engines, {"image", "tts", "music"})
    try:
        assert {role: len(actors) for role, actors in pool.actors.items()} == {
            "image": 4,
            "tts": 4,
            "music": 4,
        }
        places = {role: [where(a) for a in actors] for role, actors in pool.actors.items()}
        for role, spots in places.items():
            assert len(set(spots)) == 4, f"two {role} actors share a GPU: {spots}"
            assert all(len(gpus) == 1 for _, gpus in spots)
        # Actor i of every role shares bundle i's card: each GPU holds a full set of models.
        assert places["image"] == places["tts"] == places["music"]
        assert {node for node, _ in places["image"]} == {n.node_id for n in nodes}
        group_ids = [group.id.hex() for group in pool.groups]
    finally:
        pool.shutdown()
    table = ray.util.placement_group_table()
    assert len(group_ids) == 4 and all(table[g]["state"] == "REMOVED" for g in group_ids)


def test_episode_runs_on_the_pinned_actors_and_gives_the_gpus_back(gpu_cluster, tmp_path):
    script = write_script(tmp_path / "scripts" / "proj")
    _, nodes = gpu_cluster
    report = run_episode(RunRequest(script=script), shares_config(tmp_path / "out"))
    assert report.ok, report.failed
    record = json.loads((tmp_path / "out" / "proj" / script.stem / "run.json").read_text())
    models = [
        n["step"] for key, n in record["nodes"].items() if key.split(":")[0] in ("image", "tts", "music")
    ]
    workers = {n.node_id[:12] for n in nodes}
    assert models and all(r["node"] in workers and "gpu" in r for r in models), models
    assert not [g for g in ray.util.placement_group_table().values() if g["state"] != "REMOVED"]


def test_next_episode_starts_when_the_last_one_has_no_model_calls_left(gpu_cluster, tmp_path):
    """With one episode in flight, the second starts while the first is still encoding, and never
    while the first still makes model calls."""
    from zray.actors.executor import RayExecutor
    from zray.nodes import MODEL_KINDS
    from zray.pipeline.driver import Driver, Job
    from zray.pipeline.steps import STEPS

    config = shares_config(tmp_path / "out")
    store = open_store(config.output)
    scripts = [
        write_script(
            tmp_path / "scripts" / "proj", small_script(episode=n), name=f"SAGA_01_Episode_{n:02d}.json"
        )
        for n in (1, 2)
    ]
    engines = prepare_engines(["es", "ca"], config, "draft")
    jobs, preps = [], []
    for path in scripts:
        prep = prepare_episode(RunRequest(script=path), load_script(path)[0], config, store, engines)
        preps.append(prep)
        jobs.append(
            Job(name=prep.episode, plan=prep.plan, record=prep.record, stale=prep.stale, store=prep.store)
        )
    landed: list[tuple[str, str]] = []
    executor = RayExecutor(ActorPool(config, engines, {"image", "tts", "music"}), steps=STEPS, task_retries=1)
    try:
        driver = Driver(
            executor,
            max_in_flight=64,
            max_jobs=1,
            on_node=lambda job, node, ok: landed.append((job.name, node.kind)),
        )
        driver.run(jobs)
    finally:
        executor.close()
        for prep in preps:
            prep.release()
    first, second = jobs
    assert not first.failed and not second.failed
    assert second.started < first.finished, "the second episode waited for the first one's encoding"
    last_model_of_first = max(
        i for i, (name, kind) in enumerate(landed) if name == first.name and kind in MODEL_KINDS
    )
    first_of_second = min(i for i, (name, _) in enumerate(landed) if name == second.name)
    assert first_of_second > last_model_of_first


def test_a_lost_gpu_node_moves_its_requests_to_the_other_gpus(gpu_cluster, tmp_path):
    """Kept last in this module: it removes a node. Its actors cannot restart (every other GPU is
    reserved), so the requests they held must go to the actors on the surviving node."""
    import threading

    import av

    cluster, nodes = gpu_cluster
    gate = tmp_path / "gate"
    data = small_script()
    data["scenes"][-1]["image_prompt"] = f"GATE:{gate} {data['scenes'][-1]['image_prompt']}"
    script = write_script(tmp_path / "scripts" / "proj", data)
    config = shares_config(tmp_path / "out", engines={"image": "fault_engines:GatedImageEngine"})
    result: dict = {}
    thread = threading.Thread(
        target=lambda: result.setdefault("report", run_episode(RunRequest(script=script), config))
    )
    thread.start()
    holder = tmp_path / "gate.holder"
    deadline = time.monotonic() + 300
    while not holder.exists() and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert holder.exists(), f"the gated image never started: {result}"
    lost = next(n for n in nodes if n.node_id == holder.read_text())
    cluster.remove_node(lost)
    gate.touch()
    thread.join(timeout=600)
    assert not thread.is_alive(), "the run hung on the lost node's actors"
    report = result["report"]
    assert report.ok, report.failed
    folder = tmp_path / "out" / "proj" / script.stem
    record = json.loads((folder / "run.json").read_text())
    assert record["nodes"]["image:2"]["step"]["node"] != lost.node_id[:12]
    for lang, name in (("es", "S01E02-ES-Título_de_prueba.mp4"), ("ca", "S01E02-CA-Prueba_de_zray.mp4")):
        with av.open(str(folder / name)) as container:
            frames = sum(1 for _ in container.decode(video=0))
        assert frames == record["nodes"][f"video:{lang}"]["result"]["frames"]


def test_the_embedded_instance_keeps_a_task_slot_per_core_beside_the_actors(monkeypatch):
    """Three resident actors at a quarter CPU each must not cost a 2-core machine one of its two
    task slots (a moving scene's encode takes one; two scenes encode side by side)."""
    import os

    from zray.actors.cluster import local_cpus
    from zray.config import load_config

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert local_cpus(load_config(None)) == 3
    many = load_config(None, actors={"tts": {"num_cpus": 1.5, "count": 2}})
    assert local_cpus(many) == 2 + 4  # 0.25 + 3.0 + 0.25, rounded up
