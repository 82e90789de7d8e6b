"""One writer per episode folder: an exclusive flock locally, a lease object on S3 (moto's server
honours S3's conditional writes, so the lease is not advisory there)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import needs_extra
from s3server import moto_server

from zray.lock import LockedError, episode_lock
from zray.store import Store

BUCKET = "zray-locks"
ACQUIRE = textwrap.dedent(
    """
    import sys, time
    from zray.lock import LockedError, episode_lock
    from zray.store import Store
    try:
        with episode_lock(Store(sys.argv[1]), command="racer " + sys.argv[2]):
            print("won", flush=True)
            time.sleep(float(sys.argv[3]))
    except LockedError as exc:
        print("refused:", exc, flush=True)
    """
)


def acquire(url: str, name: str, hold: float = 0.0) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", ACQUIRE, url, name, str(hold)], stdout=subprocess.PIPE, text=True
    )


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    needs_extra("cloud")
    with moto_server(tmp_path_factory.mktemp("moto"), bucket=BUCKET) as (endpoint, _):
        yield endpoint


def test_the_same_process_may_take_its_own_lock_again(tmp_path):
    folder = Store(str(tmp_path / "out" / "proj" / "EP"))
    with episode_lock(folder, command="zray run"), episode_lock(folder, command="zray upload"):
        pass
    with episode_lock(folder, command="zray run"):
        pass


def test_a_lease_on_s3_refuses_a_second_writer_and_names_the_first(s3):
    url = f"s3://{BUCKET}/out/proj/EP1"
    first = acquire(url, "one", hold=20)
    assert first.stdout.readline().strip() == "won"
    try:
        second = acquire(url, "two")
        out, _ = second.communicate(timeout=60)
        assert out.startswith("refused:") and "racer one" in out and f"pid {first.pid}" in out
        assert "delete s3://" in out  # how to release a stale lease
    finally:
        first.kill()
        first.wait()


def test_only_one_of_several_racers_gets_the_lease(s3):
    url = f"s3://{BUCKET}/out/proj/EP2"
    racers = [acquire(url, str(n), hold=8) for n in range(4)]
    outputs = [p.communicate(timeout=90)[0] for p in racers]
    assert sum(out.startswith("won") for out in outputs) == 1, outputs


def test_an_expired_lease_is_taken_over(s3):
    url = f"s3://{BUCKET}/out/proj/EP3"
    parent = Store(f"s3://{BUCKET}/out/proj")
    stale = {
        "command": "zray run (killed)",
        "pid": 1,
        "host": "gone",
        "user": "x",
        "since": "2026-01-01T00:00:00+00:00",
        "expires": time.time() - 1,
    }
    parent.write_bytes(".EP3.zray-lock", json.dumps(stale).encode())
    with episode_lock(Store(url), command="zray run") as lock:
        holder = json.loads(parent.read_bytes(".EP3.zray-lock"))
        assert holder["command"] == "zray run" and holder["expires"] > time.time()
        assert not lock.lost
    assert not parent.exists(".EP3.zray-lock")  # released


def test_a_live_lease_is_refused_in_one_line(s3):
    url = f"s3://{BUCKET}/out/proj/EP4"
    parent = Store(f"s3://{BUCKET}/out/proj")
    live = {
        "command": "zray upload",
        "pid": 7,
        "host": "h",
        "user": "u",
        "since": "s",
        "expires": time.time() + 60,
    }
    parent.write_bytes(".EP4.zray-lock", json.dumps(live).encode())
    with pytest.raises(LockedError) as caught, episode_lock(Store(url), command="zray run"):
        pass
    assert "zray upload" in str(caught.value) and "\n" not in str(caught.value)


def test_every_spelling_of_a_folder_and_a_link_to_it_take_one_lock(tmp_path):
    proj = tmp_path / "out" / "proj"
    (proj / "EP").mkdir(parents=True)
    (tmp_path / "link").symlink_to(proj / "EP")
    first = acquire(str(proj / "EP"), "one", hold=30)
    assert first.stdout.readline().strip() == "won"
    try:
        for spelling in (f"{proj}/EP/.", f"{proj}/EP/", f"{proj}/../proj/EP", str(tmp_path / "link")):
            out, _ = acquire(spelling, "two").communicate(timeout=60)
            assert out.startswith("refused:") and "racer one" in out, (spelling, out)
            assert f"{proj / 'EP'} is being written" in out  # named by its real path
        relative = subprocess.Popen(
            [sys.executable, "-c", ACQUIRE, "./EP", "two", "0"], stdout=subprocess.PIPE, text=True, cwd=proj
        )
        assert relative.communicate(timeout=60)[0].startswith("refused:")
    finally:
        first.kill()
        first.wait()
    assert sorted(p.name for p in proj.iterdir()) == [".EP.zray-lock", "EP"]  # one lock, beside the folder
