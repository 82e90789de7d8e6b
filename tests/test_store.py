import os
import pickle
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zray.keys import content_key, safe_name
from zray.store import TEMP_MARK, Store, StoreError


@pytest.fixture(params=["local", "memory"])
def store(request, tmp_path):
    if request.param == "local":
        return Store(tmp_path / "out")
    import uuid

    return Store(f"memory://zray-test-{uuid.uuid4().hex}")


def test_write_read_list_remove(store):
    store.write_text("p/e/a.txt", "hola")
    store.write_bytes("p/e/sub/b.bin", b"\x00\x01")
    assert store.exists("p/e/a.txt") and not store.exists("p/e/nope")
    assert store.read_text("p/e/a.txt") == "hola"
    assert store.list("p/e") == ["p/e/a.txt", "p/e/sub/b.bin"]
    assert store.size("p/e/sub/b.bin") == 2
    with store.open("p/e/a.txt") as fh:
        assert fh.read() == b"hola"
    store.remove("p/e/sub")
    assert store.list("p/e") == ["p/e/a.txt"]


def test_put_get_and_local_copy(store, tmp_path):
    src = tmp_path / "src.wav"
    src.write_bytes(b"RIFF....")
    store.put(src, "x/y.wav")
    out = store.get("x/y.wav", tmp_path / "back" / "y.wav")
    assert out.read_bytes() == b"RIFF...."
    with store.local_copy("x/y.wav") as local:
        assert local.read_bytes() == b"RIFF...."
    assert store.checksum("x/y.wav") == store.checksum("x/y.wav") and len(store.checksum("x/y.wav")) == 64


def test_writer_is_atomic_on_failure(store):
    store.write_text("k/v.txt", "old")
    with pytest.raises(RuntimeError), store.writer("k/v.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert store.read_text("k/v.txt") == "old"
    assert store.list("k") == ["k/v.txt"]


def test_writer_keeps_extension_for_format_sniffing(store):
    with store.writer("a/b.mp4") as tmp:
        assert tmp.suffix == ".mp4"
        tmp.write_bytes(b"x")
    assert store.exists("a/b.mp4")


def test_temp_files_are_invisible_and_swept(tmp_path):
    store = Store(tmp_path)
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / f"{TEMP_MARK}dead-img.png").write_bytes(b"partial")
    assert store.list("e") == []
    assert store.sweep_temps("e") == 1
    assert not any(tmp_path.joinpath("e").iterdir())


def test_keys_cannot_escape_root(store):
    with pytest.raises(StoreError):
        store.path("a/../../etc/passwd")


def test_store_pickles_as_its_url(tmp_path):
    store = Store(tmp_path, storage_options={"auto_mkdir": True})
    clone = pickle.loads(pickle.dumps(store))
    assert clone.root_url == store.root_url and clone.storage_options == {"auto_mkdir": True}


def test_check_writable(tmp_path):
    Store(tmp_path).check_writable("p")
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o500)
    try:
        if os.access(ro, os.W_OK):  # root ignores permissions
            pytest.skip("running as root")
        with pytest.raises(StoreError, match="cannot write"):
            Store(ro).check_writable("p")
    finally:
        os.chmod(ro, 0o700)


def test_content_key_is_canonical():
    assert content_key("img", {"a": 1, "b": [1, 2]}) == content_key("img", {"b": [1, 2], "a": 1})
    assert content_key("img", prompt="x") != content_key("img", prompt="y")
    assert len(content_key("x")) == 16


def test_safe_name_examples():
    assert safe_name("El Bosque que te Mataría") == "El_Bosque_que_te_Mataría"
    assert safe_name("Título: ¿Qué? <b>") == "Título_¿Qué_b"
    assert safe_name("../../etc/passwd") == "etc_passwd"
    assert safe_name("..") == "untitled"
    assert safe_name("CON") == "_CON"
    assert safe_name("a\x00b\nc") == "a_b_c"
    assert len(safe_name("é" * 500).encode()) <= 120


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=300))
def test_safe_name_never_escapes(text):
    name = safe_name(text)
    assert name and name not in (".", "..")
    assert not set(name) & set('<>:"/\\|?*')
    assert all(ord(c) >= 32 and not 0x7F <= ord(c) <= 0x9F for c in name)
    assert not name.startswith(".") and not name.endswith((".", " "))
    assert len(name.encode("utf-8")) <= 120


@given(st.text(alphabet=string.ascii_letters + "./\\", max_size=40))
def test_safe_name_stays_inside_folder(tmp_path_factory, text):
    base = tmp_path_factory.getbasetemp() / "episode"
    assert (base / safe_name(text)).resolve().parent == base.resolve()


# --- never through a link -------------------------------------------------------------------------


@pytest.fixture
def linked(tmp_path):
    """An episode folder whose `assets/common` and `cover.png` are links to the user's own files."""
    mine = tmp_path / "mine"
    (mine / "photos").mkdir(parents=True)
    (mine / "photos" / "img_0.png").write_bytes(b"my photo")
    (mine / "notes.txt").write_text("my notes")
    folder = tmp_path / "EP"
    (folder / "assets").mkdir(parents=True)
    (folder / "assets" / "common").symlink_to(mine / "photos")
    (folder / "cover.png").symlink_to(mine / "notes.txt")
    return Store(folder), folder, mine


def snapshot(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_link_is_never_read_listed_or_deleted_through(linked):
    store, folder, mine = linked
    before = snapshot(mine)
    assert store.list() == [] and store.stamps() == {}
    assert not store.exists("assets/common/img_0.png") and not store.exists("cover.png")
    for key in ("assets/common/img_0.png", "cover.png"):
        with pytest.raises(FileNotFoundError):
            store.read_bytes(key)
        with pytest.raises(FileNotFoundError), store.local_copy(key):
            pass
    (mine / "photos" / f"{TEMP_MARK}x").write_bytes(b"mine too")
    assert store.sweep_temps() == 0
    store.remove("assets/common/img_0.png")  # under a link: not the folder's own, nothing deleted
    store.remove("cover.png")  # the link itself goes, never its target
    store.remove("assets")
    assert not (folder / "assets").exists() and not (folder / "cover.png").is_symlink()
    assert snapshot(mine) == {**before, f"photos/{TEMP_MARK}x": b"mine too"}


def test_a_write_replaces_a_link_with_the_folder_s_own_file_and_warns(linked, caplog):
    store, folder, mine = linked
    before = snapshot(mine)
    store.write_bytes("assets/common/img_0.png", b"zray's picture")
    with store.writer("cover.png") as tmp:
        tmp.write_bytes(b"zray's cover")
    assert not (folder / "assets" / "common").is_symlink() and not (folder / "cover.png").is_symlink()
    assert store.read_bytes("assets/common/img_0.png") == b"zray's picture"
    assert store.read_bytes("cover.png") == b"zray's cover"
    assert snapshot(mine) == before
    warnings = [r.getMessage() for r in caplog.records if "is a link" in r.getMessage()]
    assert len(warnings) == 2 and all("left alone" in w for w in warnings)
    assert store.list() == ["assets/common/img_0.png", "cover.png"]
