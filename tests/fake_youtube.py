"""A fake YouTube Data API (and OAuth token endpoint) on 127.0.0.1, for the real google client.

googleapiclient builds upload URLs with the https scheme whatever the endpoint, so the fake
serves TLS with a throwaway self-signed certificate; test clients trust that certificate only.
It speaks the resumable-upload protocol (initiate, 308 + Range chunk answers, status queries),
thumbnails.set (refused on a Short YouTube has not finished processing), captions.insert/list/update,
videos.update/list (with `processingDetails`: a video is "processing" for its first
`processing_looks` looks, then "succeeded"), the look-up of a channel's
uploads (channels.list mine=true -> the uploads playlist -> playlistItems.list, newest first,
50 a page) and the OAuth token grants, records everything it receives, and injects faults on
request. Its client (`http()`) can also stand for a process killed at the worst moment: right
after YouTube finished a video, before the answer was read.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import re
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httplib2

GRANULE = 256 * 1024
CHANNEL = "UCfakeChannel0000000000"
UPLOADS = "UUfakeChannel0000000000"
_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_STATUS_QUERY = re.compile(r"bytes \*/(\d+)")


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (cryptography if present, else the openssl CLI)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
             "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True,
        )  # fmt: skip
        return cert, key
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert, key


class Killed(BaseException):
    """Stands for a killed process: not an Exception, so nothing in zray may catch it."""


class ClientHttp(httplib2.Http):
    """The client side of the fake: trusts its certificate, and raises Killed after YouTube
    answered the last chunk of an upload while `fake.kill_after_upload` is set."""

    def __init__(self, fake: FakeYouTube):
        super().__init__(ca_certs=str(fake.cert), timeout=30)
        self._fake = fake

    def request(self, uri: str, method: str = "GET", *args: Any, **kwargs: Any) -> tuple[Any, bytes]:
        resp, content = super().request(uri, method, *args, **kwargs)
        finished = method == "PUT" and "/upload/youtube/v3/videos" in uri and resp.status in (200, 201)
        if finished and self._fake.kill_after_upload:
            self._fake.kill_after_upload -= 1
            raise Killed(f"killed as YouTube answered with video {json.loads(content)['id']}")
        return resp, content


@dataclass
class Session:
    upload_id: str
    metadata: dict[str, Any]
    total: int
    data: bytearray = field(default_factory=bytearray)
    video_id: str | None = None
    expired: bool = False


@dataclass
class Chunk:
    """One chunk PUT as received: where it claimed to start and how many bytes arrived."""

    upload_id: str
    start: int
    received: int
    outcome: str  # "308", "done", "dropped", "503", ...


class FakeYouTube:
    def __init__(self, folder: Path, *, access_tokens: set[str] | None = None):
        self.cert, self.key = make_certificate(folder)
        self.access_tokens = set(access_tokens or {"test-access-token"})
        self.refresh_tokens: set[str] = {"test-refresh-token"}
        self.sessions: dict[str, Session] = {}
        self.videos: dict[str, dict[str, Any]] = {}
        self.video_bytes: dict[str, bytes] = {}
        self.thumbnails: dict[str, list[tuple[str, bytes]]] = {}
        self.captions: dict[str, dict[str, Any]] = {}
        self.updates: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str]] = []  # (method, path?query)
        self.chunks: list[Chunk] = []
        self.status_queries = 0
        self.token_grants: list[dict[str, str]] = []
        # Fault injection: each is consumed by the matching request.
        self.fail_chunks: list[int] = []  # statuses to answer instead of taking a chunk
        self.drop_chunks = 0  # chunks to drop mid-body (connection closed, no answer)
        self.fail_initiate: list[int] = []
        self.thumbnail_status: int | None = None  # e.g. 403 for an unverified channel
        self.kill_after_upload = 0  # uploads after whose last answer the client is "killed"
        self.listing_lag = 0  # newest videos not yet in the uploads playlist (YouTube lists them late)
        self.chunk_delay = 0.0  # seconds each chunk takes to arrive (a slow connection)
        # Looks at a new video's processingDetails that still find it processing (then it succeeded).
        self.processing_looks = 0
        self.processing_left: dict[str, int] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # --- lifecycle --------------------------------------------------------------------------------

    def __enter__(self) -> FakeYouTube:
        handler = type("Handler", (_Handler,), {"fake": self})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"https://127.0.0.1:{self._server.server_address[1]}/"

    @property
    def token_uri(self) -> str:
        return f"{self.url}token"

    def http(self) -> httplib2.Http:
        """A client that trusts this server's certificate (and nothing else)."""
        return ClientHttp(self)

    # --- what tests look at -----------------------------------------------------------------------

    def calls(self, method: str, prefix: str) -> list[str]:
        return [p for m, p in self.requests if m == method and p.startswith(prefix)]

    def expire(self, upload_id: str) -> None:
        self.sessions[upload_id].expired = True

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):04d}"

    def titles(self) -> list[str]:
        return [video["snippet"]["title"] for video in self.videos.values()]

    def tagged(self, tag: str) -> list[str]:
        """The ids of the videos carrying a tag."""
        return [vid for vid, video in self.videos.items() if tag in video["snippet"].get("tags", [])]


class _Handler(BaseHTTPRequestHandler):
    fake: FakeYouTube
    protocol_version = "HTTP/1.1"
    timeout = 10  # a client that stops mid-request cannot hold a thread forever

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # --- plumbing ---------------------------------------------------------------------------------

    def _route(self, method: str) -> None:
        parts = urlsplit(self.path)
        self.query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        with self.fake._lock:
            self.fake.requests.append((method, self.path))
        path = parts.path
        if path == "/token" and method == "POST":
            return self._token()
        if not self._authorized():
            self._read_body()
            return self._json(401, {"error": {"code": 401, "message": "Invalid Credentials"}})
        routes = {
            ("POST", "/upload/youtube/v3/videos"): self._initiate,
            ("PUT", "/upload/youtube/v3/videos"): self._chunk,
            ("POST", "/upload/youtube/v3/thumbnails/set"): self._thumbnail,
            ("POST", "/upload/youtube/v3/captions"): self._caption_insert,
            ("PUT", "/upload/youtube/v3/captions"): self._caption_update,
            ("GET", "/youtube/v3/captions"): self._caption_list,
            ("PUT", "/youtube/v3/videos"): self._video_update,
            ("GET", "/youtube/v3/videos"): self._video_list,
            ("GET", "/youtube/v3/channels"): self._channel_list,
            ("GET", "/youtube/v3/playlistItems"): self._playlist_items,
        }
        route = routes.get((method, path))
        if route is None:
            self._read_body()
            return self._json(404, {"error": {"code": 404, "message": f"no route {method} {path}"}})
        return route()

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PUT(self) -> None:
        self._route("PUT")

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        return header.startswith("Bearer ") and header[7:] in self.fake.access_tokens

    def _length(self) -> int:
        return int(self.headers.get("Content-Length") or 0)

    def _read_body(self) -> bytes:
        return self.rfile.read(self._length()) if self._length() else b""

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(data).encode(), {"Content-Type": "application/json", **(headers or {})})

    def _error(self, status: int, reason: str) -> None:
        self._json(status, {"error": {"code": status, "message": reason, "errors": [{"reason": reason}]}})

    # --- OAuth ------------------------------------------------------------------------------------

    def _token(self) -> None:
        form = {k: v[0] for k, v in parse_qs(self._read_body().decode()).items()}
        self.fake.token_grants.append(form)
        if form.get("grant_type") == "authorization_code" and form.get("code") == "fake-code":
            self.fake.access_tokens.add("from-consent")
            self.fake.refresh_tokens.add("refresh-from-consent")
            tokens = {"access_token": "from-consent", "refresh_token": "refresh-from-consent"}
            return self._json(200, {**tokens, "expires_in": 3599, "token_type": "Bearer"})
        if (
            form.get("grant_type") != "refresh_token"
            or form.get("refresh_token") not in self.fake.refresh_tokens
        ):
            return self._json(400, {"error": "invalid_grant", "error_description": "Token has been revoked."})
        token = f"refreshed-{len(self.fake.token_grants)}"
        self.fake.access_tokens.add(token)
        self._json(200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    # --- resumable video upload -------------------------------------------------------------------

    def _initiate(self) -> None:
        body = self._read_body()
        if self.fake.fail_initiate:
            return self._error(self.fake.fail_initiate.pop(0), "backendError")
        if self.query.get("uploadType") != "resumable":
            return self._error(400, "onlyResumableUploadsInThisFake")
        upload_id = self.fake.new_id("upload")
        self.fake.sessions[upload_id] = Session(
            upload_id, json.loads(body or b"{}"), int(self.headers["X-Upload-Content-Length"])
        )
        location = f"{self.fake.url}upload/youtube/v3/videos?uploadType=resumable&upload_id={upload_id}"
        self._send(200, b"", {"Location": location})

    def _chunk(self) -> None:
        session = self.fake.sessions.get(self.query.get("upload_id", ""))
        content_range = self.headers.get("Content-Range", "")
        if session is None or session.expired:
            self._read_body()
            return self._error(404, "uploadSessionNotFound")
        query = _STATUS_QUERY.fullmatch(content_range)
        if query:
            self._read_body()
            self.fake.status_queries += 1
            return self._progress(session)
        match = _RANGE.fullmatch(content_range)
        if not match:
            self._read_body()
            return self._error(400, "badContentRange")
        start, end = int(match.group(1)), int(match.group(2))
        length = self._length()
        if self.fake.drop_chunks:
            self.fake.drop_chunks -= 1
            got = self.rfile.read(length // 2)
            self.fake.chunks.append(Chunk(session.upload_id, start, len(got), "dropped"))
            # Gone without an answer; the half that arrived is not kept.
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return None
        data = self.rfile.read(length)
        time.sleep(self.fake.chunk_delay)
        if self.fake.fail_chunks:
            status = self.fake.fail_chunks.pop(0)
            self.fake.chunks.append(Chunk(session.upload_id, start, len(data), str(status)))
            return self._error(status, "backendError")
        if end - start + 1 != len(data) or start > len(session.data):
            self.fake.chunks.append(Chunk(session.upload_id, start, len(data), "400"))
            return self._error(400, "badChunk")
        last = end + 1 == session.total
        if not last and len(data) % GRANULE:
            self.fake.chunks.append(Chunk(session.upload_id, start, len(data), "400"))
            return self._error(400, "chunkNotMultipleOf256KiB")
        # Bytes already held are not taken twice (the protocol lets a client resend them).
        session.data[start:] = data
        self.fake.chunks.append(Chunk(session.upload_id, start, len(data), "done" if last else "308"))
        return self._progress(session)

    def _progress(self, session: Session) -> None:
        if len(session.data) == session.total:
            if session.video_id is None:
                session.video_id = self.fake.new_id("vid")
                resource = {"kind": "youtube#video", "id": session.video_id, **session.metadata}
                resource.setdefault("status", {})["uploadStatus"] = "uploaded"
                stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                resource.setdefault("snippet", {})["publishedAt"] = stamp
                resource["processingDetails"] = {
                    "processingStatus": "processing" if self.fake.processing_looks else "succeeded"
                }
                self.fake.processing_left[session.video_id] = self.fake.processing_looks
                self.fake.videos[session.video_id] = resource
                self.fake.video_bytes[session.video_id] = bytes(session.data)
            return self._json(200, self.fake.videos[session.video_id])
        headers = {"Range": f"bytes=0-{len(session.data) - 1}"} if session.data else {}
        self._send(308, b"", headers)

    # --- the rest of the API ----------------------------------------------------------------------

    def _thumbnail(self) -> None:
        data = self._read_body()
        video_id = self.query.get("videoId", "")
        if self.fake.thumbnail_status:
            return self._error(self.fake.thumbnail_status, "forbidden")
        if video_id not in self.fake.videos:
            return self._error(404, "videoNotFound")
        video = self.fake.videos[video_id]
        short = "#Shorts" in video.get("snippet", {}).get("description", "")
        if short and video["processingDetails"]["processingStatus"] != "succeeded":
            # YouTube takes a Short's custom thumbnail only once it has processed the Short.
            return self._error(400, "invalidVideoProcessingState")
        kind = self.headers.get("Content-Type", "")
        self.fake.thumbnails.setdefault(video_id, []).append((kind, data))
        self._json(200, {"kind": "youtube#thumbnailSetResponse", "items": [{"default": {"url": "x"}}]})

    def _multipart(self) -> tuple[dict[str, Any], bytes]:
        raw = self._read_body()
        head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
        parts = list(message.iter_parts())
        return json.loads(parts[0].get_payload(decode=True)), parts[1].get_payload(decode=True)

    def _caption_insert(self) -> None:
        body, media = self._multipart()
        snippet = body.get("snippet", {})
        if snippet.get("videoId") not in self.fake.videos:
            return self._error(404, "videoNotFound")
        caption_id = self.fake.new_id("cap")
        self.fake.captions[caption_id] = {"id": caption_id, "snippet": snippet, "data": media, "versions": 1}
        self._json(200, {"kind": "youtube#caption", "id": caption_id, "snippet": snippet})

    def _caption_update(self) -> None:
        body, media = self._multipart()
        caption = self.fake.captions.get(body.get("id", ""))
        if caption is None:
            return self._error(404, "captionNotFound")
        caption["data"] = media
        caption["versions"] += 1
        self._json(200, {"kind": "youtube#caption", "id": caption["id"], "snippet": caption["snippet"]})

    def _caption_list(self) -> None:
        video_id = self.query.get("videoId")
        items = [
            {"kind": "youtube#caption", "id": c["id"], "snippet": c["snippet"]}
            for c in self.fake.captions.values()
            if c["snippet"].get("videoId") == video_id
        ]
        self._json(200, {"kind": "youtube#captionListResponse", "items": items})

    def _video_update(self) -> None:
        body = json.loads(self._read_body() or b"{}")
        video = self.fake.videos.get(body.get("id", ""))
        if video is None:
            return self._error(404, "videoNotFound")
        self.fake.updates.append(body)
        for part in self.query.get("part", "").split(","):
            if part in body:
                video[part] = body[part]
        self._json(200, video)

    def _video_list(self) -> None:
        ids = self.query.get("id", "").split(",")
        if len(ids) > 50:
            return self._error(400, "tooManyIds")
        parts = self.query.get("part", "").split(",")
        if "processingDetails" in parts:
            for i in ids:
                if self.fake.processing_left.get(i):
                    self.fake.processing_left[i] -= 1
                elif i in self.fake.videos:
                    self.fake.videos[i]["processingDetails"] = {"processingStatus": "succeeded"}
        items = [
            {k: v for k, v in self.fake.videos[i].items() if k in ("kind", "id", *parts)}
            for i in ids
            if i in self.fake.videos
        ]
        self._json(200, {"kind": "youtube#videoListResponse", "items": items})

    def _channel_list(self) -> None:
        if self.query.get("mine") != "true":
            return self._error(400, "onlyMineInThisFake")
        details = {"relatedPlaylists": {"uploads": UPLOADS}}
        channel = {"kind": "youtube#channel", "id": CHANNEL, "contentDetails": details}
        self._json(200, {"kind": "youtube#channelListResponse", "items": [channel]})

    def _playlist_items(self) -> None:
        if self.query.get("playlistId") != UPLOADS:
            return self._error(404, "playlistNotFound")
        size = int(self.query.get("maxResults", "5"))
        if not 0 < size <= 50:
            return self._error(400, "invalidMaxResults")
        newest_first = list(reversed(self.fake.videos))[self.fake.listing_lag :]
        start = int(self.query.get("pageToken") or 0)
        page = newest_first[start : start + size]
        items = [{"kind": "youtube#playlistItem", "contentDetails": {"videoId": vid}} for vid in page]
        answer: dict[str, Any] = {"kind": "youtube#playlistItemListResponse", "items": items}
        if start + size < len(newest_first):
            answer["nextPageToken"] = str(start + size)
        self._json(200, answer)
