"""The review page's web app (Starlette): the page, its JSON API, and the episode's files.

Every request passes `Guard` first:

- the Host header must name this server (a loopback name, or with `--allow-remote` the host it
  was told to listen on and this machine's names), so a page elsewhere cannot reach it through
  DNS rebinding;
- it must carry the server's random token: the header `X-Zray-Token`, or for GET the cookie the
  page set from the URL (`?token=`, the first and only time the token is in a URL). Requests that
  change something (POST) need the header: a form on another site can make a browser send the
  cookie, never the header. A missing or wrong token is 403.

Files are served only from the table `files.allowed_files` builds from run.json; the request's
path is a key into that table, never a path on disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import stat
import sys
import threading
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zray import episode as layout
from zray.episode import Episode, open_episode
from zray.errors import ZrayError
from zray.review.files import Served, allowed_files
from zray.review.page import episode_view
from zray.review.preview import preview_jpeg
from zray.review.record import ReviewRecord, random_seed, short_keys, shorts_name, update_review, video_keys
from zray.review.report import render_report
from zray.review.runner import Rebuild, RebuildError, rebuild_command
from zray.store import Store, file_digest

TOKEN_HEADER = "x-zray-token"
PAGE_CSP = (
    "default-src 'self'; img-src 'self' data:; media-src 'self'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; frame-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
)
REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'self'"
STATIC = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]", "::1")
MAX_BODY_BYTES = 1 << 20  # an API request is a few hundred bytes; more is refused (413)
DAMAGED = "{path} is not the file zray made (damaged or edited): run `zray run` to rebuild it\n"


def new_token() -> str:
    return secrets.token_urlsafe(24)


def cookie_name(port: int) -> str:
    # Cookies ignore ports: two review servers on one machine must not overwrite each other's.
    return f"zray_token_{port}"


class Guard:
    """Host check, then token check, then the app; security headers on every answer."""

    def __init__(self, app: ASGIApp, *, token: str, port: int, hosts: Iterable[str]):
        self.app, self.token, self.port = app, token, port
        self.hosts = frozenset(h.lower() for h in hosts)
        self.cookie = cookie_name(port)

    def host_ok(self, host: str | None) -> bool:
        if not host:
            return False
        host = host.lower()
        if host.startswith("["):  # an IPv6 address: [::1]:8000
            name, _, rest = host.partition("]")
            name, port = name + "]", rest.removeprefix(":")
        elif host.count(":") == 1:
            name, port = host.split(":")
        else:
            name, port = host, ""
        if port and port != str(self.port):
            return False
        return name in self.hosts

    def token_of(self, scope: Scope, headers: Headers) -> str | None:
        given = headers.get(TOKEN_HEADER)
        if given or scope["method"] not in ("GET", "HEAD"):
            return given
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed Cookie header is no token
            return None
        if self.cookie in cookie:
            return cookie[self.cookie].value
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        return (query.get("token") or [None])[0]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if not self.host_ok(headers.get("host")):
            await _refuse("this server answers only to its own address (Host header refused)")(
                scope, receive, send
            )
            return
        given = self.token_of(scope, headers)
        if not given or not secrets.compare_digest(given.encode(), self.token.encode()):
            await _refuse("a valid review token is needed: open the URL `zray review` printed")(
                scope, receive, send
            )
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = list(message.get("headers", []))
                names = {k.lower() for k, _ in out}
                extra = {
                    b"content-security-policy": PAGE_CSP.encode(),
                    b"x-content-type-options": b"nosniff",
                    b"referrer-policy": b"no-referrer",
                    b"cross-origin-resource-policy": b"same-origin",
                }
                out += [(k, v) for k, v in extra.items() if k not in names]
                message = {**message, "headers": out}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _refuse(message: str) -> Response:
    return Response(message + "\n", status_code=403, media_type="text/plain; charset=utf-8")


@dataclass
class Previews:
    """Small JPEGs of the pictures, made once per picture version and kept in memory."""

    made: dict[tuple[str, str], bytes] = field(default_factory=dict)
    _locks: dict[str, threading.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def get(self, store: Store, served: Served) -> bytes:
        key = (served.path, served.version)
        if key in self.made:
            return self.made[key]
        with self._guard:
            lock = self._locks.setdefault(served.path, threading.Lock())
        with lock:
            if key not in self.made:
                if store.is_local and regular_file(store, served.path) is None:
                    raise FileNotFoundError(f"{served.path} is not a regular file of the folder")
                self.made[key] = preview_jpeg(store.read_bytes(served.path))
        return self.made[key]

    def warm(self, store: Store, table: dict[str, Served]) -> None:
        """Make the previews ahead of the first page load (a background thread calls this)."""
        for served in table.values():
            if served.picture:
                try:
                    self.get(store, served)
                except (OSError, ValueError):
                    continue  # the page shows the file's own error when it asks for it


@dataclass
class Checked:
    """Which served files are the ones zray made: each hashed once per server start (and again
    only when its size or mtime, or the hash run.json records for it, changes)."""

    verdicts: dict[tuple[str, str, int, int], bool] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def intact(self, local: Path, served: Served) -> bool:
        if served.sha256 is None:
            return True  # a record older than file hashes
        info = local.stat()
        key = (served.path, served.sha256, info.st_size, info.st_mtime_ns)
        with self._guard:
            if key not in self.verdicts:
                self.verdicts[key] = file_digest(local) == served.sha256
            return self.verdicts[key]


def regular_file(store: Store, path: str) -> Path | None:
    """The folder's own regular file at path, or None (missing, a link anywhere on its way, a FIFO,
    a device, a folder): the page serves nothing else."""
    try:
        local = store.local_path(path)
    except FileNotFoundError:
        return None
    if local is None:
        return None
    try:
        info = os.lstat(local)
    except OSError:
        return None
    return local if stat.S_ISREG(info.st_mode) else None


@dataclass
class ReviewState:
    store: Store
    token: str
    python: str = sys.executable
    rebuild: Rebuild = field(default_factory=Rebuild)
    previews: Previews = field(default_factory=Previews)
    checked: Checked = field(default_factory=Checked)
    _report: tuple[str, str] | None = None
    _opened: tuple[tuple[object, ...], Episode, dict[str, Served]] | None = None
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def _stamps(self) -> tuple[object, ...]:
        stamps: list[object] = []
        for key in (layout.RUN_FILE, layout.SCRIPT_FILE):
            try:
                stamps.append(self.store.stamp(key))
            except FileNotFoundError:
                stamps.append(None)
        return tuple(stamps)

    def opened(self) -> tuple[Episode, dict[str, Served]]:
        """The episode and its file table, read again only when run.json or script.json changed
        (a stat each, not a parse: the page asks for dozens of pictures at once)."""
        stamps = self._stamps()
        with self._guard:
            if self._opened is None or self._opened[0] != stamps:
                episode = open_episode(self.store)
                self._opened = (stamps, episode, allowed_files(episode))
            return self._opened[1], self._opened[2]

    def episode(self) -> Episode:
        return self.opened()[0]

    def report(self, episode: Episode) -> str:
        """The run report, made again only when run.json changed."""
        digest = hashlib.sha256(json.dumps(episode.record, sort_keys=True).encode()).hexdigest()
        if self._report is None or self._report[0] != digest:
            self._report = (digest, render_report(episode))
        return self._report[1]


def _error(exc: Exception, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": str(exc)}, status_code=status)


class BodyTooLarge(ValueError):
    """A request body over MAX_BODY_BYTES (413)."""


async def _body(request: Request) -> dict[str, Any]:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BodyTooLarge(f"the request body is over {MAX_BODY_BYTES} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():  # a body without a length is bounded as it arrives
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BodyTooLarge(f"the request body is over {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise ValueError("the request body is not JSON") from None
    except RecursionError:
        raise ValueError("the request body is nested too deep") from None
    if not isinstance(data, dict):
        raise ValueError("the request body must be a JSON object")
    return data


def _lang(data: dict[str, Any], episode: Episode) -> str:
    lang = data.get("lang")
    if not isinstance(lang, str) or lang not in episode.script.languages:
        raise ValueError(f"lang {lang!r}: the episode has {', '.join(episode.script.languages)}")
    return lang


def create_app(state: ReviewState, *, port: int, hosts: Iterable[str]) -> ASGIApp:
    """The review app for one episode folder, behind its Guard."""

    def index(request: Request) -> Response:
        if "token" in request.query_params:
            # Keep the token in a cookie, and out of the address bar and the history.
            response: Response = RedirectResponse("/", status_code=303)
            response.set_cookie(cookie_name(port), state.token, httponly=True, samesite="strict", path="/")
            return response
        page = resources.files("zray.review").joinpath("static/index.html").read_text(encoding="utf-8")
        return HTMLResponse(page.replace("{{TOKEN}}", state.token), headers={"Cache-Control": "no-store"})

    def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return Response("not found\n", status_code=404)
        body = resources.files("zray.review").joinpath(f"static/{name}").read_bytes()
        return Response(body, media_type=STATIC[name], headers={"Cache-Control": "no-cache"})

    def files(request: Request) -> Response:
        episode, table = state.opened()
        served = table.get(request.path_params["path"])
        if served is None:
            return Response("not a file of this episode\n", status_code=404)
        headers = {"Cache-Control": "private, max-age=3600"}
        if episode.store.is_local:
            local = regular_file(episode.store, served.path)
            if local is None:
                return Response("missing: run `zray run` again\n", status_code=404)
            if not state.checked.intact(local, served):
                return Response(DAMAGED.format(path=served.path), status_code=409)
            return FileResponse(local, media_type=served.media_type, headers=headers)
        try:
            body = episode.store.read_bytes(served.path)
        except FileNotFoundError:
            return Response("missing: run `zray run` again\n", status_code=404)
        if served.sha256 is not None and hashlib.sha256(body).hexdigest() != served.sha256:
            return Response(DAMAGED.format(path=served.path), status_code=409)
        return Response(body, media_type=served.media_type, headers=headers)

    def previews(request: Request) -> Response:
        episode, table = state.opened()
        served = table.get(request.path_params["path"])
        if served is None or not served.picture:
            return Response("not a picture of this episode\n", status_code=404)
        if episode.store.is_local and regular_file(episode.store, served.path) is None:
            return Response("missing: run `zray run` again\n", status_code=404)  # even if made before
        try:
            body = state.previews.get(episode.store, served)
        except (OSError, ValueError) as exc:
            return Response(f"cannot read {served.path}: {exc}\n", status_code=404)
        return Response(body, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    def report(request: Request) -> Response:
        episode = state.episode()
        return HTMLResponse(
            state.report(episode),
            headers={"Content-Security-Policy": REPORT_CSP, "Cache-Control": "no-store"},
        )

    def api_episode(request: Request) -> Response:
        episode, table = state.opened()
        view = episode_view(episode, ReviewRecord.of(episode), table)
        view["rebuild"] = state.rebuild.status(since=10**9)
        return JSONResponse(view, headers={"Cache-Control": "no-store"})

    async def change(request: Request, what: str) -> Response:
        try:
            data = await _body(request)
            episode = state.episode()
            record = await _apply(request, what, data, episode, state)
        except BodyTooLarge as exc:
            return _error(exc, 413)
        except (ValueError, KeyError) as exc:
            return _error(exc)
        except ZrayError as exc:  # the lock held by a rebuild, a broken record
            return _error(exc, 409)
        return JSONResponse(
            {
                "ok": True,
                "approvals": record.approvals,
                "scenes": record.scenes,
                "clips": record.clips,
                "thumbnails": record.thumbnails,
            }
        )

    async def approve(request: Request) -> Response:
        return await change(request, "approve")

    async def withdraw(request: Request) -> Response:
        return await change(request, "withdraw")

    async def seed(request: Request) -> Response:
        return await change(request, "seed")

    async def clip_seed(request: Request) -> Response:
        return await change(request, "clip_seed")

    async def thumbnail(request: Request) -> Response:
        return await change(request, "thumbnail")

    def rebuild_status(request: Request) -> Response:
        try:
            since = int(request.query_params.get("since", "0"))
        except ValueError:
            since = 0
        return JSONResponse(state.rebuild.status(since=since), headers={"Cache-Control": "no-store"})

    def rebuild_start(request: Request) -> Response:
        try:
            state.rebuild.start(rebuild_command(state.episode(), python=state.python))
        except RebuildError as exc:
            return _error(exc, 409)
        return JSONResponse(state.rebuild.status(), status_code=202)

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/static/{name}", static, methods=["GET"]),
        Route("/files/{path:path}", files, methods=["GET"]),
        Route("/previews/{path:path}", previews, methods=["GET"]),
        Route("/report", report, methods=["GET"]),
        Route("/api/episode", api_episode, methods=["GET"]),
        Route("/api/approve", approve, methods=["POST"]),
        Route("/api/withdraw", withdraw, methods=["POST"]),
        Route("/api/scene/{index:int}/seed", seed, methods=["POST"]),
        Route("/api/scene/{index:int}/clip_seed", clip_seed, methods=["POST"]),
        Route("/api/thumbnail", thumbnail, methods=["POST"]),
        Route("/api/rebuild", rebuild_start, methods=["POST"]),
        Route("/api/rebuild", rebuild_status, methods=["GET"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        state.rebuild.stop()  # a rebuild does not outlive its page

    app = Starlette(routes=routes, lifespan=lifespan)
    return Guard(app, token=state.token, port=port, hosts=hosts)


async def _apply(
    request: Request, what: str, data: dict[str, Any], episode: Episode, state: ReviewState
) -> ReviewRecord:
    from starlette.concurrency import run_in_threadpool

    if what in ("approve", "withdraw"):
        lang = _lang(data, episode)
        shorts = bool(data.get("shorts"))
        name = shorts_name(lang) if shorts else lang
        if what == "approve":
            keys = short_keys(episode, lang) if shorts else video_keys(episode, lang)
            if not keys:
                raise ValueError(f"{lang} has no Shorts to approve")

            def edit(record: ReviewRecord) -> None:
                record.approve(name, keys)

        else:

            def edit(record: ReviewRecord) -> None:
                record.withdraw(name)

    elif what in ("seed", "clip_seed"):
        index = request.path_params["index"]
        scenes = episode.script.scenes
        if not 0 <= index < len(scenes):
            raise ValueError(f"scene {index}: the script has scenes 0 to {len(scenes) - 1}")
        if "seed" in data and data["seed"] is not None:
            value = data["seed"]
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"seed {value!r}: give a whole number, or {{}} for a random one")
        elif data.get("reset"):
            value = None
        else:
            value = random_seed()
        scene_id = str(scenes[index].scene_id)
        setter = ReviewRecord.set_seed if what == "seed" else ReviewRecord.set_clip_seed
        clip = layout.node_id("clip", layout.scene_labels(episode.script)[index])
        if what == "clip_seed" and value is not None and clip not in episode.nodes:
            raise ValueError(f"scene {index} has no generated clip (motion generate) in its last run")

        def edit(record: ReviewRecord) -> None:
            setter(record, index, scene_id, value)

    else:
        lang = _lang(data, episode)
        variant = data.get("variant")
        count = max(0, len((episode.nodes.get(layout.thumbs_node(lang)) or {}).get("outputs") or []) - 1)
        if not isinstance(variant, int) or isinstance(variant, bool) or not 1 <= variant <= max(count, 1):
            raise ValueError(f"variant {variant!r}: {lang} has variants 1 to {max(count, 1)}")

        def edit(record: ReviewRecord) -> None:
            record.set_thumbnail(lang, variant)

    return await run_in_threadpool(
        update_review, episode.store, episode.identity, edit, command=f"zray review ({what})"
    )


def allowed_hosts(host: str, *, remote: bool) -> list[str]:
    """The names this server answers to: loopback always; with --allow-remote, also the host it
    listens on and this machine's own names and addresses."""
    import socket

    names = [*LOOPBACK_NAMES]
    if remote:
        names.append(host if ":" not in host else f"[{host}]")
        hostname = socket.gethostname()
        names += [hostname, socket.getfqdn()]
        with contextlib.suppress(OSError):
            names += socket.gethostbyname_ex(hostname)[2]
    return names


__all__ = ["Guard", "ReviewState", "allowed_hosts", "create_app", "new_token"]
