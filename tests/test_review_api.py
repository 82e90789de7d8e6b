"""`zray review` as a real server on 127.0.0.1: the token, the Host check, the file table, the JSON
API, and a Rebuild that changes exactly what review asked for (one finished episode per module)."""

from __future__ import annotations

import http.client
import io
import json
import os
import signal
from pathlib import Path

import pytest
from conftest import skip_reason
from PIL import Image
from review_episode import make_episode, review_record, review_server, run_record

pytest.importorskip("starlette", reason=skip_reason("review", "starlette"))
pytest.importorskip("uvicorn", reason=skip_reason("review", "uvicorn"))

from zray.config import load_config
from zray.episode import open_episode
from zray.review.preview import PREVIEW_WIDTH
from zray.review.record import unapproved


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_episode(tmp_path_factory.mktemp("review-api"))


@pytest.fixture(scope="module")
def server(folder: Path):
    with review_server(folder) as running:
        yield running


ROUTES = [
    ("GET", "/"),
    ("GET", "/static/app.js"),
    ("GET", "/api/episode"),
    ("GET", "/api/rebuild"),
    ("GET", "/report"),
    ("GET", "/files/thumbnail_es.png"),
    ("GET", "/previews/assets/common/img_0.png"),
    ("POST", "/api/approve"),
    ("POST", "/api/withdraw"),
    ("POST", "/api/scene/0/seed"),
    ("POST", "/api/scene/0/clip_seed"),
    ("POST", "/api/thumbnail"),
    ("POST", "/api/rebuild"),
]


def raw(server, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, bytes]:
    """A request sent as written (no client normalises its path or Host)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_the_url_is_the_first_line_and_loopback_only(server):
    assert server.url.startswith("http://127.0.0.1:") and "/?token=" in server.url
    assert len(server.token) >= 32


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_request_without_the_token_is_refused(server, folder, method, path):
    host = {"Host": f"127.0.0.1:{server.port}"}
    before = review_record(folder)
    status, body = raw(server, method, path, host, b"{}" if method == "POST" else b"")
    assert status == 403, (path, body[:200])
    status, _ = raw(server, method, path, host | {"X-Zray-Token": "wrong" + server.token}, b"")
    assert status == 403
    status, _ = raw(server, method, path, host | {"Cookie": f"zray_token_{server.port}=nope"}, b"")
    assert status == 403
    assert review_record(folder) == before


def test_a_post_with_only_the_cookie_is_refused(server, folder):
    """A form on another site can make the browser send the cookie, never the header."""
    cookie = {"Host": f"127.0.0.1:{server.port}", "Cookie": f"zray_token_{server.port}={server.token}"}
    status, _ = raw(server, "POST", "/api/approve", cookie, json.dumps({"lang": "es"}).encode())
    assert status == 403 and "approvals" not in review_record(folder)
    status, _ = raw(server, "GET", "/api/episode", cookie)  # reading with the cookie is the page's way
    assert status == 200


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:80", f"attacker.test:{0}", "127.0.0.2", "localhost:1", ""]
)
def test_a_foreign_host_header_is_refused_even_with_the_token(server, host):
    status, body = raw(server, "GET", "/api/episode", {"Host": host, "X-Zray-Token": server.token})
    assert status == 403 and b"Host" in body


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LOCALHOST", "[::1]"])
def test_loopback_names_are_accepted(server, host):
    status, _ = raw(
        server, "GET", "/api/episode", {"Host": f"{host}:{server.port}", "X-Zray-Token": server.token}
    )
    assert status == 200


@pytest.mark.parametrize(
    "path",
    [
        "/files/../../etc/passwd",
        "/files/..%2f..%2fetc%2fpasswd",
        "/files/%2e%2e/%2e%2e/etc/passwd",
        "/files//etc/passwd",
        "/files/run.json",
        "/files/review.json",
        "/files/script.json",
        "/files/assets/tmp/segments",
        "/previews/../../../etc/passwd",
        "/static/../app.py",
        "/static/index.html",
    ],
)
def test_paths_outside_the_file_table_are_refused(server, path):
    status, body = raw(
        server, "GET", path, {"Host": f"127.0.0.1:{server.port}", "X-Zray-Token": server.token}
    )
    assert status == 404, path
    assert b"root:" not in body and b"identity" not in body and b"import" not in body


def test_the_token_in_the_url_becomes_a_strict_cookie_and_leaves_the_address(server):
    status, _ = raw(server, "GET", f"/?token={server.token}", {"Host": f"127.0.0.1:{server.port}"})
    assert status == 303
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    connection.request("GET", f"/?token={server.token}")
    response = connection.getresponse()
    cookie = response.getheader("set-cookie")
    connection.close()
    assert response.getheader("location") == "/"
    assert f"zray_token_{server.port}={server.token}" in cookie
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower()


def test_episode_api_lists_languages_scenes_files_and_report(server, folder):
    view = server.json("/api/episode")
    assert [lang["lang"] for lang in view["languages"]] == ["es", "ca"]
    assert len(view["scenes"]) == 3 and view["report"] == "/report"
    es = view["languages"][0]
    assert es["approval"]["state"] == "none" and es["published"] is None and es["duration"] > 20
    assert [v["number"] for v in es["thumbnail"]["variants"]] == [1, 2]
    assert es["thumbnail"]["current"] == 1 and es["thumbnail"]["chosen"] == 1
    scene = view["scenes"][1]
    assert scene["index"] == 1 and scene["prompt"] == "A blue ocean at night"
    assert scene["narration"]["es"]["cues"] and scene["narration"]["ca"]["text"].startswith("El mar")
    # Every URL the API gives is served, and is a file run.json lists.
    record = run_record(folder)
    listed = {p for entry in record["nodes"].values() for p in entry["outputs"]}
    urls = [es["video"], es["vtt"], scene["picture"], scene["preview"], scene["narration"]["es"]["audio"]]
    for url in urls:
        status, body = server.request(url)
        assert status == 200 and body, url
        assert url.split("/", 2)[2].split("?")[0].replace("%C3%AD", "í") in listed
    status, preview = server.request(scene["preview"])
    with Image.open(io.BytesIO(preview)) as small:
        assert small.format == "JPEG" and small.width <= PREVIEW_WIDTH
    status, report = server.request("/report")
    assert status == 200 and b"run report" in report


def test_bad_api_requests_are_one_line_errors(server, folder):
    for path, body in [
        ("/api/approve", {"lang": "xx"}),
        ("/api/scene/9/seed", {"seed": 1}),
        ("/api/scene/0/seed", {"seed": "many"}),
        ("/api/scene/0/seed", {"seed": 2**40}),
        ("/api/scene/9/clip_seed", {}),
        ("/api/scene/0/clip_seed", {"seed": "many"}),
        ("/api/scene/0/clip_seed", {"seed": -1}),
        ("/api/scene/0/clip_seed", {"seed": 5}),  # a still scene: no clip to re-seed
        ("/api/thumbnail", {"lang": "es", "variant": 3}),
        ("/api/thumbnail", {"lang": "ca", "variant": 2}),
    ]:
        status, answer = server.request(path, method="POST", body=body)
        assert status == 400, (path, body, answer)
        assert "\n" not in json.loads(answer)["error"]
    assert "scenes" not in review_record(folder) or not review_record(folder)["scenes"]
    assert "clips" not in review_record(folder)


def test_request_bodies_are_bounded_and_any_nesting_is_a_400(server, folder):
    headers = {"Host": f"127.0.0.1:{server.port}", "X-Zray-Token": server.token}
    status, answer = raw(server, "POST", "/api/approve", headers, b'{"lang": "' + b"x" * (2 << 20) + b'"}')
    assert status == 413 and "over 1048576 bytes" in json.loads(answer)["error"]
    deep = b"[" * 200_000 + b"]" * 200_000  # under the bound, deeper than any parser's stack
    for body in (deep, b'{"lang": ' + deep + b"}"):
        status, answer = raw(server, "POST", "/api/approve", headers, body)
        assert status == 400, answer[:200]
        assert "\n" not in json.loads(answer)["error"]
    assert server.json("/api/episode")["languages"]  # the server goes on
    assert "approvals" not in review_record(folder) or not review_record(folder)["approvals"]


def test_the_page_serves_no_link_and_no_damaged_file(server, folder, tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"SECRET" * 100)
    thumbnail = folder / "thumbnail_es.png"
    kept = tmp_path / "kept.png"
    thumbnail.rename(kept)
    thumbnail.symlink_to(secret)
    common = folder / "assets" / "common"
    common.rename(tmp_path / "common")
    common.symlink_to(tmp_path / "common")
    try:
        for url in (
            "/files/thumbnail_es.png",
            "/files/assets/common/img_0.png",
            "/previews/assets/common/img_2.png",
        ):
            status, body = server.request(url)
            assert status == 404 and b"SECRET" not in body, url
        assert server.json("/api/episode")["languages"]  # the page still opens
    finally:
        thumbnail.unlink()
        kept.rename(thumbnail)
        common.unlink()
        (tmp_path / "common").rename(common)

    # A file damaged in place (size and mtime kept) is hashed once and refused with the fix.
    video = next(folder.glob("S01E*-CA-*.mp4"))
    info = video.stat()
    original = video.read_bytes()
    video.write_bytes(original[:1000] + bytes(b ^ 0xFF for b in original[1000:1100]) + original[1100:])
    os.utime(video, ns=(info.st_atime_ns, info.st_mtime_ns))
    try:
        url = "/files/" + video.name.replace("í", "%C3%AD")
        status, body = server.request(url)
        assert status == 409 and b"not the file zray made" in body and b"zray run" in body
    finally:
        video.write_bytes(original)
    assert server.request(url)[0] == 200  # its mtime changed: hashed again, and intact


def test_a_run_leaves_its_report_and_an_unchanged_rerun_writes_nothing(folder):
    from zray.pipeline.run import RunRequest, run_episode

    report = folder / "report.html"
    assert "report.html" in run_record(folder)["generated"]
    stamp = report.stat().st_mtime_ns
    script = Path(run_record(folder)["script"])
    config = load_config(None, **run_record(folder)["last_run"]["options"]["config"])
    assert run_episode(RunRequest(script=script), config).built == 0
    assert report.stat().st_mtime_ns == stamp


def test_rebuild_changes_exactly_the_chosen_scene_and_thumbnail_and_withdraws_approvals(server, folder):
    before = run_record(folder)
    assert server.json("/api/approve", method="POST", body={"lang": "es"})["ok"]
    assert server.json("/api/approve", method="POST", body={"lang": "ca"})["ok"]
    assert review_record(folder)["approvals"]["es"]["keys"] == {
        "video:es": before["nodes"]["video:es"]["key"]
    }
    assert server.json("/api/withdraw", method="POST", body={"lang": "ca"})["ok"]
    assert server.json("/api/scene/1/seed", method="POST", body={"seed": 4242})["ok"]
    assert server.json("/api/thumbnail", method="POST", body={"lang": "es", "variant": 2})["ok"]
    record = review_record(folder)
    assert record["scenes"]["1"]["seed"] == 4242 and record["thumbnails"]["es"]["variant"] == 2

    # The server's own environment must not leak into the rebuild: it runs with the recorded config.
    os.environ.pop("ZRAY_VIDEO__WIDTH", None)
    status, _ = server.request("/api/rebuild", method="POST")
    assert status == 202
    status, body = server.request("/api/rebuild", method="POST")
    assert (status == 409 and b"already running" in body) or status == 202
    result = server.wait_rebuild()
    assert result["exit_code"] == 0, "\n".join(result["lines"])

    after = run_record(folder)
    rebuilt = {n for n in before["nodes"] if before["nodes"][n]["key"] != after["nodes"][n]["key"]}
    assert rebuilt == {"image:1", "segment:1", "video:es", "video:ca", "thumbs:es"}
    steps = {n for n, s in after["last_run"]["steps"].items() if s["state"] == "built"}
    assert steps == rebuilt
    assert (folder / "thumbnail_es.png").read_bytes() == (
        folder / "assets/thumbnails/thumbnail_es_v2.png"
    ).read_bytes()

    view = server.json("/api/episode")
    es = view["languages"][0]
    assert es["approval"]["state"] == "outdated"  # the video it named was rebuilt
    assert es["thumbnail"]["current"] == 2 and view["scenes"][1]["seed"] == 4242
    assert unapproved(open_episode(str(folder)), ["es", "ca"]) == ["es", "ca"]
    # Approving again binds to the new key.
    server.json("/api/approve", method="POST", body={"lang": "es"})
    assert unapproved(open_episode(str(folder)), ["es", "ca"]) == ["ca"]


def test_ctrl_c_says_the_review_page_stopped(folder):
    with review_server(folder) as running:
        assert running.request("/api/episode")[0] == 200
        running.process.send_signal(signal.SIGINT)
        _, err = running.process.communicate()
    assert running.process.returncode == 0, err
    assert "the review page stopped" in err
    assert "finished steps are saved" not in err and "Traceback" not in err
