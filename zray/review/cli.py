"""`zray review` and `zray report`: thin commands, registered in `zray.cli`.

`zray review EPISODE_DIR` prints the page's URL (with its token) as the first line of stdout and
serves until Ctrl-C; `--approve LANG` / `--withdraw LANG` change review.json and exit, for studios
that script their review.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from typing import Annotated

import typer

from zray.errors import InvalidInput, ZrayError
from zray.user_errors import user_errors

REVIEW_EXTRA_HINT = "install the review extra: pip install 'zray[review]'"


class ReviewError(ZrayError):
    """`zray review` cannot do what was asked; the message says why and what to do."""


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def review_command(
    episode_dir: Annotated[str, typer.Argument(help="A finished episode folder.", show_default=False)],
    port: Annotated[int, typer.Option(help="Port to listen on (0: a free one).", min=0, max=65535)] = 0,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    no_browser: Annotated[bool, typer.Option("--no-browser", help="Do not open a browser.")] = False,
    allow_remote: Annotated[
        bool,
        typer.Option("--allow-remote", help="Allow a --host other machines can reach (put TLS in front)."),
    ] = False,
    approve: Annotated[
        list[str] | None,
        typer.Option("--approve", help="Approve this language's current video and exit (repeatable)."),
    ] = None,
    withdraw: Annotated[
        list[str] | None, typer.Option("--withdraw", help="Withdraw this language's approval and exit.")
    ] = None,
    shorts: Annotated[
        bool, typer.Option("--shorts", help="--approve/--withdraw act on the language's Shorts.")
    ] = False,
) -> None:
    """Review a finished episode in the browser: pictures, narration, videos, thumbnails; approve."""
    with user_errors(episode=episode_dir):
        if approve or withdraw:
            for line in decide(episode_dir, approve=approve or [], withdraw=withdraw or [], shorts=shorts):
                typer.echo(line)
            return
        try:
            serve(episode_dir, host=host, port=port, open_browser=not no_browser, allow_remote=allow_remote)
        except KeyboardInterrupt:  # Ctrl-C before the page was up: no run's "steps are saved" line
            typer.echo("zray: the review page stopped before it opened", err=True)
            raise typer.Exit(130) from None


def report_command(
    episode_dir: Annotated[str, typer.Argument(help="A finished episode folder.", show_default=False)],
) -> None:
    """Write the episode's run report (report.html) again from its run.json."""
    from zray import episode as layout
    from zray.review.report import write_report
    from zray.store import Store

    with user_errors(episode=episode_dir):
        store = Store(episode_dir)
        written = write_report(store)
    state = "written" if written else "unchanged"
    typer.echo(f"{store.url(layout.REPORT_FILE)}: {state}")


def decide(episode_dir: str, *, approve: list[str], withdraw: list[str], shorts: bool) -> list[str]:
    """Approve or withdraw languages from the command line; one line per language."""
    from zray.episode import open_episode
    from zray.review.record import ReviewRecord, short_keys, shorts_name, update_review, video_keys

    episode = open_episode(episode_dir)
    by_case = {lang.casefold(): lang for lang in episode.script.languages}
    lines: list[str] = []
    changes: list[tuple[str, str, dict[str, str]]] = []
    for action, langs in (("approve", approve), ("withdraw", withdraw)):
        for given in langs:
            lang = by_case.get(given.casefold())
            if lang is None:
                raise InvalidInput(
                    f"--{action} {given}: the episode has no such language "
                    f"(it has {', '.join(episode.script.languages)})"
                )
            keys: dict[str, str] = {}
            if action == "approve":
                # What the approval binds to; EpisodeError when the language has no finished video.
                keys = short_keys(episode, lang) if shorts else video_keys(episode, lang)
                if not keys:
                    raise ReviewError(
                        f"--approve {given} --shorts: {lang} has no Shorts; run `zray run` first"
                    )
            changes.append((action, shorts_name(lang) if shorts else lang, keys))

    def edit(record: ReviewRecord) -> None:
        for action, name, keys in changes:
            if action == "approve":
                record.approve(name, keys)
            else:
                record.withdraw(name)

    update_review(episode.store, episode.identity, edit, command="zray review")
    for action, name, keys in changes:
        what = ", ".join(f"{node} {key}" for node, key in keys.items())
        lines.append(f"{name}: approved ({what})" if action == "approve" else f"{name}: approval withdrawn")
    return lines


def serve(episode_dir: str, *, host: str, port: int, open_browser: bool, allow_remote: bool) -> None:
    """Serve the review page until interrupted; the URL is the first line on stdout."""
    from zray.episode import open_episode
    from zray.store import Store

    if not is_loopback(host) and not allow_remote:
        raise InvalidInput(
            f"--host {host}: not a loopback address, so other machines could reach the review page; "
            "use --host 127.0.0.1, or pass --allow-remote (with TLS in front of it)"
        )
    try:
        import uvicorn

        from zray.review.app import ReviewState, allowed_hosts, create_app, new_token
    except ImportError as exc:
        raise ReviewError(
            f"zray review needs {(exc.name or 'starlette').split('.')[0]}: {REVIEW_EXTRA_HINT}"
        ) from None
    store = Store(episode_dir)
    episode = open_episode(store)  # a folder that is not a finished episode is one line, before binding
    if not store.is_local:
        typer.echo(f"zray: serving {store.root_url} through this machine; files are read on demand", err=True)
    if not is_loopback(host):
        typer.echo(
            "zray: warning: --allow-remote without TLS: the token and every file travel unencrypted; "
            "put an HTTPS proxy in front, or reach it through an SSH tunnel",
            err=True,
        )
    sock = _bind(host, port)
    bound = sock.getsockname()[1]
    state = ReviewState(store=store, token=new_token())
    # Read the records and import what the page's first request needs before anyone asks.
    from zray.review.page import episode_view
    from zray.review.record import ReviewRecord

    episode, table = state.opened()
    episode_view(episode, ReviewRecord.of(episode), table)
    app = create_app(state, port=bound, hosts=allowed_hosts(host, remote=not is_loopback(host)))
    url = f"http://{_url_host(host)}:{bound}/?token={state.token}"
    print(url, flush=True)  # the first line of stdout: scripts and tests read it
    typer.echo(f"zray: reviewing {episode.url}; Ctrl-C stops the server", err=True)
    threading.Thread(
        target=state.previews.warm, args=(store, table), daemon=True, name="zray-previews"
    ).start()
    if open_browser:
        import webbrowser

        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    try:
        # uvicorn shuts down on Ctrl-C, then raises the signal again: that is the way out, not an error.
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        state.rebuild.stop()
    typer.echo(f"zray: the review page stopped ({episode.url}); run zray review again to reopen it", err=True)


def _bind(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise InvalidInput(f"--host {host}: cannot resolve it ({exc.strerror})") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ReviewError(
            f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc})"
        ) from None
    sock.listen(64)
    sock.set_inheritable(True)
    return sock


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return socket.gethostname()
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


__all__ = ["decide", "is_loopback", "report_command", "review_command", "serve"]
