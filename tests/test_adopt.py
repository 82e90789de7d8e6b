"""`zray adopt`: a seed-layout episode folder becomes zray's artifacts, tokens and published records.

The seed folder is built here: pictures of another size, WAVs at other rates, a music bed named
by its prompt's md5, a real pickled google-auth `Credentials` and a pickle whose loading would run
a command. Then a real draft run (in-process executor) must make none of the adopted pictures,
voices or music, show the adopted pictures and play the adopted narration; and an upload against
the fake YouTube server must not upload the adopted published video again.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import stat
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile
from conftest import FAST_VIDEO, small_script, write_script
from PIL import Image, ImageOps
from typer.testing import CliRunner

from zray.adopt import AdoptRequest, adopt_episode
from zray.adopt.seed import music_hash
from zray.adopt.tokens import RefusedPickle, load_token, to_json
from zray.cli import app
from zray.config import load_config
from zray.media import subtitles
from zray.pipeline.run import RunRequest, preview, run_episode

# Left and right halves of each scene's seed picture: a cover fit keeps both visible.
COLOURS = [((200, 30, 30), (30, 30, 200)), ((30, 200, 30), (200, 200, 30)), ((200, 30, 200), (30, 200, 200))]
TONES = {"es": (440.0, 660.0, 880.0), "ca": (520.0, 740.0, 980.0)}  # Hz, one per scene
VOICE_SECONDS = (3.0, 2.5, 3.5)
MODEL_KINDS = ("image:", "tts:", "music", "thumb_base:")


class Hostile:
    """Pickled, its loading would run a shell command that creates `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def credentials():
    from google.oauth2.credentials import Credentials

    return Credentials(
        "seed-access-token",
        refresh_token="seed-refresh-token",
        token_uri="https://oauth2.googleapis.com/token",
        client_id="seed-client.apps.googleusercontent.com",
        client_secret="seed-secret",
        scopes=["https://www.googleapis.com/auth/youtube.upload"],
    )


def tone(freq: float, seconds: float, rate: int, channels: int = 1, level: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    mono = (level * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return mono if channels == 1 else np.stack([mono] * channels, axis=1)


def picture(index: int, size: tuple[int, int] = (640, 360)) -> Image.Image:
    left, right = COLOURS[index]
    image = Image.new("RGB", size, left)
    image.paste(Image.new("RGB", (size[0] // 2, size[1]), right), (size[0] // 2, 0))
    return image


def write_seed(root: Path, marker: Path) -> tuple[Path, Path]:
    """outputs/proj/S01E02 in the seed's layout, and a folder of its pickled tokens."""
    episode = root / "outputs" / "proj" / "S01E02"
    common = episode / "assets" / "common"
    common.mkdir(parents=True)
    for i in range(3):
        picture(i).save(common / f"img_{i}.png")
    picture(0).save(common / "img_7.png")  # a scene the script does not have
    stereo = tone(110.0, 20.0, 44_100, channels=2, level=0.3)
    soundfile.write(common / f"bg_music_common_{music_hash('soft test pads')}_600s.wav", stereo, 44_100)
    soundfile.write(common / "bg_music_common_deadbeef_300s.wav", stereo, 44_100)
    for lang, freqs in TONES.items():
        raw = episode / "assets" / lang / "raw"
        raw.mkdir(parents=True)
        for i, (freq, seconds) in enumerate(zip(freqs, VOICE_SECONDS, strict=True)):
            soundfile.write(raw / f"audio_{lang}_{i}_5f3a_raw.wav", tone(freq, seconds, 22_050), 22_050)
    (episode / "assets" / "ca" / "raw" / "audio_ca_2_5f3a_raw.wav").write_bytes(b"RIFF not really a wav")
    thumbs = episode / "assets" / "thumbnails"
    thumbs.mkdir(parents=True)
    picture(1, (1280, 720)).save(thumbs / "thumbnail_raw_es.png")
    outside = root / "outside.png"
    picture(2).save(outside)
    (thumbs / "thumbnail_raw_ca.png").symlink_to(outside)  # a link out of the folder: never read
    (episode / "S01E02-ES-Título.mp4").write_bytes(b"the seed's final video")

    tokens = root / "tokens"
    tokens.mkdir()
    (tokens / "token_proj_es.pickle").write_bytes(pickle.dumps(credentials()))
    (tokens / "token_proj_ca.pickle").write_bytes(pickle.dumps(Hostile(marker)))
    return episode, tokens


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    return {
        str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.lstat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def config(tmp: Path, *, output: Path | None = None, **youtube):
    return load_config(
        None,
        output=str(output or tmp / "out"),
        profile="draft",
        quiet=True,
        video=FAST_VIDEO,
        executor="in-process",
        youtube={"token_dir": str(tmp / "zray-tokens"), "client_secret": str(tmp / "none.json"), **youtube},
    )


@pytest.fixture(scope="module")
def adopted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("adopt")
    marker = tmp / "pwned"
    seed, tokens = write_seed(tmp / "seed", marker)
    script = write_script(tmp / "scripts" / "proj")
    before = snapshot(seed.parent.parent.parent)
    cfg = config(tmp)
    report = adopt_episode(AdoptRequest(seed=seed, script=script, tokens=tokens), cfg)
    explained = preview(RunRequest(script=script), cfg)
    explain_cli = CliRunner().invoke(
        app,
        ["run", str(script), "--explain", "--profile", "draft", "--output", str(tmp / "out")],
        env={f"ZRAY_VIDEO__{k.upper()}": str(v) for k, v in FAST_VIDEO.items()},
    )
    run = run_episode(RunRequest(script=script), cfg)
    folder = tmp / "out" / "proj" / script.stem
    return {
        "tmp": tmp,
        "seed": seed,
        "script": script,
        "marker": marker,
        "report": report,
        "explained": explained,
        "explain_cli": explain_cli,
        "run": run,
        "folder": folder,
        "before": before,
        "cfg": cfg,
    }


def test_adopt_lists_what_it_took_and_what_it_could_not(adopted):
    report = adopted["report"]
    assert report.profile == "draft"
    # 3 pictures, 3 + 2 voices (ca scene 2's WAV is broken), the music bed, the es thumbnail base.
    assert report.artifacts == 10, report.lines()
    unmatched = "\n".join(report.unmatched)
    assert "ca narration of scene 2: assets/ca/raw/audio_ca_2_5f3a_raw.wav does not decode" in unmatched
    assert "assets/common/img_7.png: the script has no scene 7" in unmatched
    assert "bg_music_common_deadbeef_300s.wav: made for another music prompt" in unmatched
    assert "ca thumbnail base: assets/thumbnails/thumbnail_raw_ca.png is a symbolic link" in unmatched
    assert any("S01E02-ES-Título.mp4" in note for note in report.notes)
    assert any("without word timings" in note for note in report.notes)
    # The seed's folder was only read.
    assert snapshot(adopted["seed"].parent.parent.parent) == adopted["before"]


def test_adopted_artifacts_are_recorded_with_their_source(adopted):
    record = json.loads((adopted["folder"] / "run.json").read_text())
    entry = record["nodes"]["image:1"]
    source = adopted["seed"] / "assets" / "common" / "img_1.png"
    assert entry["step"]["state"] == "adopted"
    assert entry["step"]["source"] == str(source)
    assert entry["step"]["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert entry["result"]["width"] == 640  # kept at its own size: the encoder fits it
    music = record["nodes"]["music"]
    assert music["step"]["state"] == "adopted"
    # Resampled to zray's rate, its channels kept.
    info = soundfile.info(str(adopted["folder"] / music["outputs"][0]))
    assert (info.samplerate, info.channels) == (48_000, 2)
    voice = soundfile.info(str(adopted["folder"] / record["nodes"]["tts:es:0"]["outputs"][0]))
    assert voice.samplerate == 48_000 and abs(voice.duration - VOICE_SECONDS[0]) < 0.01


def test_explain_after_adopt_shows_them_current(adopted):
    stale = {node.id for node in adopted["explained"].stale}
    model = {node_id for node_id in stale if node_id.startswith(MODEL_KINDS)}
    assert model == {"tts:ca:2", "thumb_base:ca"}  # exactly what could not be adopted
    # `zray run --explain` says the same.
    cli = adopted["explain_cli"]
    assert cli.exit_code == 0, cli.output
    listed = {line.split(":")[0] for line in cli.output.splitlines()}
    assert "image" not in listed and "music" not in listed
    assert "tts:ca:2: not made yet" in cli.output and "tts:es:0:" not in cli.output


def test_next_draft_run_makes_no_adopted_picture_voice_or_music(adopted):
    run = adopted["run"]
    assert run.ok, run.failed
    steps = json.loads((adopted["folder"] / "run.json").read_text())["last_run"]["steps"]
    built = {node_id for node_id, step in steps.items() if step["state"] == "built"}
    assert {n for n in built if n.startswith(MODEL_KINDS)} == {"tts:ca:2", "thumb_base:ca"}
    for node_id in ("image:0", "image:1", "image:2", "tts:es:0", "tts:ca:1", "music", "thumb_base:es"):
        assert steps[node_id]["state"] == "cached", node_id
    # A second run does nothing at all.
    again = run_episode(RunRequest(script=adopted["script"]), adopted["cfg"])
    assert again.built == 0


def _decode(path: Path) -> tuple[list[np.ndarray], np.ndarray]:
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24").astype(np.int16) for f in container.decode(video=0)]
    with av.open(str(path)) as container:
        sound = np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1)
    return frames, sound


def test_video_shows_the_adopted_pictures_and_plays_the_adopted_narration(adopted):
    folder = adopted["folder"]
    record = json.loads((folder / "run.json").read_text())
    name = next(p for p in record["outputs"] if p.startswith("S01E02-ES") and p.endswith(".mp4"))
    frames, sound = _decode(folder / name)
    rate = 48_000
    width, height = FAST_VIDEO["width"], FAST_VIDEO["height"]
    expected = [
        np.asarray(ImageOps.fit(picture(i), (width, height), method=Image.Resampling.LANCZOS)).astype(
            np.int16
        )
        for i in range(3)
    ]
    start = 0
    for i in range(3):
        pad = record["nodes"][f"pad:es:{i}"]["result"]
        assert abs(pad["speech_seconds"] - VOICE_SECONDS[i]) < 0.01  # the seed's narration, not espeak's
        middle = frames[start + pad["frames"] // 2]
        distances = [float(np.abs(middle - image).mean()) for image in expected]
        assert int(np.argmin(distances)) == i and distances[i] < 12, distances
        # The scene's narration is the seed's tone: the loudest frequency above the music bed.
        lead = pad.get("speech_offset", 0.0)
        first = int((start / FAST_VIDEO["fps"] + lead + 0.5) * rate)
        window = sound[0, first : first + rate]
        spectrum = np.abs(np.fft.rfft(window * np.hanning(window.size)))
        freqs = np.fft.rfftfreq(window.size, 1 / rate)
        band = freqs > 300
        assert abs(freqs[band][np.argmax(spectrum[band])] - TONES["es"][i]) < 5
        start += pad["frames"]
    assert start == len(frames)
    # Subtitles of a narration without word timings: every word, timed by length.
    cues = subtitles.parse_srt((folder / "subtitles_es.srt").read_text(encoding="utf-8"))
    narration = " ".join(scene["script_es"] for scene in small_script()["scenes"])
    assert " ".join(cue.text for cue in cues).split() == narration.split()


def test_tokens_become_private_json_and_the_hostile_pickle_runs_nothing(adopted):
    from google.oauth2.credentials import Credentials

    assert not adopted["marker"].exists()
    refused = "\n".join(adopted["report"].refused)
    assert "token_proj_ca.pickle: not converted, nothing in it was run: it names posix.system" in refused
    path = adopted["tmp"] / "zray-tokens" / "proj_es.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    data = json.loads(path.read_text())
    restored = Credentials.from_authorized_user_info(data)
    assert (restored.refresh_token, restored.client_id) == ("seed-refresh-token", credentials().client_id)
    assert "seed-secret" not in "\n".join(adopted["report"].lines())
    assert not (adopted["tmp"] / "zray-tokens" / "proj_ca.json").exists()


@pytest.mark.parametrize("protocol", [0, 2, 4, pickle.HIGHEST_PROTOCOL])
def test_a_credentials_pickle_of_any_protocol_loads(protocol):
    import datetime as dt

    from google.oauth2.credentials import Credentials

    original = credentials()
    original.expiry = dt.datetime(2026, 1, 2, 3, 4, 5)
    restored = Credentials.from_authorized_user_info(
        json.loads(to_json(load_token(pickle.dumps(original, protocol))))
    )
    assert restored.refresh_token == "seed-refresh-token"
    assert restored.expiry == original.expiry


@pytest.mark.parametrize(
    "payload",
    [
        pickle.dumps({"token": "x"}),  # not a credential
        pickle.dumps(Hostile(Path("/nonexistent/never"))),
        b"\x80\x04garbage",
    ],
)
def test_anything_but_a_credential_is_refused(payload):
    with pytest.raises(RefusedPickle):
        load_token(payload)


def test_dry_run_changes_nothing(tmp_path):
    marker = tmp_path / "pwned"
    seed, tokens = write_seed(tmp_path / "seed", marker)
    script = write_script(tmp_path / "scripts" / "proj")
    before = snapshot(tmp_path)
    result = CliRunner().invoke(
        app,
        [
            "adopt",
            str(seed),
            "--script",
            str(script),
            "--output",
            str(tmp_path / "out"),
            "--tokens",
            str(tokens),
            "--profile",
            "draft",
            "--published",
            "es=abc123",
            "--dry-run",
        ],
        env={"ZRAY_YOUTUBE__TOKEN_DIR": str(tmp_path / "zray-tokens")},
    )
    assert "would adopt assets/common/img_0.png" in result.output
    assert "token_proj_es.pickle: would be written as" in result.output
    assert "es: would check abc123" in result.output and "(at most 52 quota units)" in result.output
    assert "dry run, nothing changed" in result.output
    assert result.exit_code == 1  # the hostile token is refused
    assert snapshot(tmp_path) == before
    assert not (tmp_path / "out").exists() and not (tmp_path / "zray-tokens").exists()


def test_bad_input_is_one_line_before_any_work(tmp_path):
    script = write_script(tmp_path / "scripts" / "proj")
    runner = CliRunner()
    result = runner.invoke(app, ["adopt", str(tmp_path / "nope"), "--script", str(script)])
    assert result.exit_code == 2 and "SEED_EPISODE_DIR" in result.output
    seed = tmp_path / "seed"
    seed.mkdir()
    result = runner.invoke(
        app, ["adopt", str(seed), "--script", str(script), "--published", "fr=abc", "--profile", "draft"]
    )
    assert result.exit_code == 2 and "--published 'fr=abc'" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
    # zray's episode folder would be the seed's own (the same outputs/<project>/<name>): refused.
    same, _ = write_seed(tmp_path / "shared", tmp_path / "pwned")
    named = write_script(tmp_path / "scripts" / "proj", name=f"{same.name}.json")
    before = snapshot(same)
    result = runner.invoke(
        app,
        [
            "adopt",
            str(same),
            "--script",
            str(named),
            "--output",
            str(same.parent.parent),
            "--profile",
            "draft",
        ],
    )
    assert result.exit_code == 2 and "overlaps the seed's folder" in result.output
    assert snapshot(same) == before and not list(same.glob("*.zray-lock"))


def test_the_script_keeps_its_own_files_and_a_changed_line_is_remade(tmp_path):
    seed, _ = write_seed(tmp_path / "seed", tmp_path / "pwned")
    data = small_script()
    data["scenes"][1]["script_es"] = "Otra frase distinta."  # edited after the seed made it
    script = write_script(tmp_path / "scripts" / "proj", data)
    cfg = config(tmp_path)
    adopt_episode(AdoptRequest(seed=seed, script=script), cfg)
    data["scenes"][2]["script_es"] = "Una línea nueva."
    write_script(tmp_path / "scripts" / "proj", data)
    stale = {node.id for node in preview(RunRequest(script=script), cfg).stale}
    # The narration adopted for the current text stays; the line edited since is remade, alone.
    assert {n for n in stale if n.startswith(MODEL_KINDS)} == {"tts:ca:2", "thumb_base:ca", "tts:es:2"}


def _on_channel(fake, video_id: str, channel: str, tags: list[str]) -> None:
    """A video the seed uploaded before zray: on the fake's channel (or another one)."""
    fake.videos[video_id] = {
        "kind": "youtube#video",
        "id": video_id,
        "snippet": {
            "title": "Título de prueba (seed)",
            "description": "Subido por el sistema anterior.",
            "categoryId": "28",
            "tags": tags,
            "channelId": channel,
            "publishedAt": "2025-01-15T14:30:22Z",
        },
        "status": {"privacyStatus": "public"},
    }


def test_an_adopted_published_video_is_never_uploaded_again(adopted, tmp_path):
    pytest.importorskip("googleapiclient")
    from fake_youtube import CHANNEL, FakeYouTube
    from youtube_episode import CLIENT, youtube_settings
    from youtube_episode import credentials as channel_credentials

    from zray.episode import open_episode
    from zray.publish.quota import QuotaLedger
    from zray.publish.youtube import UploadOptions, upload_episode

    cert = tmp_path / "cert"
    cert.mkdir()
    folder = adopted["folder"]
    with FakeYouTube(cert) as fake:
        _on_channel(fake, "seedvideo001", CHANNEL, ["ciencia", "biología"])
        _on_channel(fake, "elsewhere001", "UCsomeoneElse000000000", [])
        cfg = config(tmp_path, output=adopted["tmp"] / "out", **youtube_settings(tmp_path, fake))
        request = AdoptRequest(
            seed=adopted["seed"], script=adopted["script"], published=["es=seedvideo001", "ca=elsewhere001"]
        )
        report = adopt_episode(request, cfg, credentials_for=channel_credentials, http_factory=fake.http)
        episode = open_episode(str(folder))
        tag = episode.identity.slot("es")

        assert report.artifacts == 0  # everything else was adopted (and built) before
        assert "--published ca=elsewhere001: it is on channel UCsomeoneElse000000000" in "\n".join(
            report.refused
        )
        assert fake.tagged(tag) == ["seedvideo001"]
        assert fake.videos["seedvideo001"]["snippet"]["tags"] == ["ciencia", "biología", tag]
        assert fake.videos["seedvideo001"]["snippet"]["title"] == "Título de prueba (seed)"  # kept
        entry = episode.published().get("es")
        assert entry["video_id"] == "seedvideo001" and entry["slot_tag"] == tag
        assert episode.published().get("ca") is None
        # Counted in the quota ledger: es listed and updated, ca only listed.
        assert QuotaLedger(client_id=CLIENT, config=cfg.youtube).spent() == (1 + 1 + 50) + (1 + 1)

        def upload():
            return upload_episode(
                open_episode(str(folder)),
                UploadOptions(
                    config=cfg.youtube,
                    credentials_for=channel_credentials,
                    http_factory=fake.http,
                    sleep=lambda _s: None,
                ),
                langs=["es"],
            )

        first = upload().result("es")
        assert (first.action, first.video_id) == ("changed", "seedvideo001")
        # With published.json lost, the channel itself answers by the slot tag.
        (folder / "published.json").unlink()
        second = upload().result("es")
        assert (second.action, second.video_id) == ("restored", "seedvideo001")
        assert not fake.sessions and not fake.calls("POST", "/upload")
        assert sorted(fake.videos) == ["elsewhere001", "seedvideo001"]


def test_a_credential_zray_could_not_use_is_refused():
    from google.oauth2.credentials import Credentials

    no_client = Credentials("t", refresh_token="r", token_uri="https://oauth2.googleapis.com/token")
    with pytest.raises(RefusedPickle, match=r"not a usable user token .*missing fields"):
        to_json(load_token(pickle.dumps(no_client)))
    with pytest.raises(RefusedPickle, match="no refresh token"):
        load_token(pickle.dumps(Credentials("t", client_id="c", client_secret="s")))


def test_only_regular_files_inside_the_seed_folder_are_read(tmp_path):
    from zray.adopt.seed import UnsafeFile, read_inside

    root, outside = tmp_path / "seed", tmp_path / "elsewhere"
    (root / "assets").mkdir(parents=True)
    outside.mkdir()
    (outside / "img_0.png").write_bytes(b"secret")
    (root / "assets" / "common").symlink_to(outside)  # a linked folder leading out
    (root / "assets" / "fifo").mkdir()
    os.mkfifo(root / "assets" / "fifo" / "img_1.png")
    (root / "assets" / "ok.png").write_bytes(b"mine")
    with pytest.raises(UnsafeFile, match="outside"):
        read_inside(root, "assets/common/img_0.png")
    with pytest.raises(UnsafeFile, match="not a regular file"):
        read_inside(root, "assets/fifo/img_1.png")
    with pytest.raises(FileNotFoundError):
        read_inside(root, "assets/missing.png")
    found = read_inside(root, "assets/ok.png")
    assert found.data == b"mine" and found.sha256 == hashlib.sha256(b"mine").hexdigest()
