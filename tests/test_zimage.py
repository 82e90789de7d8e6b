"""ZImageEngine on a tiny random-weight Z-Image pipeline saved to disk and loaded like a real model."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

from tiny_zimage import build_tiny_zimage  # noqa: E402

from zray.engines.base import EngineError, ImageEngine  # noqa: E402
from zray.engines.zimage import ZImageEngine  # noqa: E402

W, H = 112, 64  # not square, so a swapped width/height would show


@pytest.fixture(scope="module", autouse=True)
def offline():
    """An accidental download fails loudly instead of reaching for the network.

    huggingface_hub reads HF_HUB_OFFLINE once, at import, which an earlier test may have done: set the
    constant it consults as well as the variable.
    """
    import huggingface_hub.constants

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        yield


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The tiny model gains nothing from threads, and spinning threads on shared cores cost seconds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    return build_tiny_zimage(tmp_path_factory.mktemp("tiny-zimage") / "model")


@pytest.fixture(scope="module")
def engine(tiny_dir) -> ZImageEngine:
    engine = ZImageEngine(model=str(tiny_dir), device="cpu")
    engine.load()
    return engine


class ForwardCounter:
    """Wraps the transformer's forward on one pipeline to count denoising forwards."""

    def __init__(self, monkeypatch, pipe) -> None:
        self.calls = 0
        original = pipe.transformer.forward

        def counting(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(pipe.transformer, "forward", counting)


def pixels(image) -> bytes:
    return image.tobytes()


def test_engine_satisfies_the_image_engine_protocol(engine):
    assert isinstance(engine, ImageEngine)


def test_generates_an_rgb_image_of_the_requested_size(engine):
    image = engine.generate("A red desert at dawn", width=W, height=H, seed=1, label="scene 1")
    assert image.size == (W, H)
    assert image.mode == "RGB"
    extrema = image.getextrema()
    assert any(low < high for low, high in extrema), "a flat image means the pipeline produced nothing"


def test_same_seed_gives_identical_pixels_and_other_seeds_differ(engine, tiny_dir):
    first = engine.generate("A blue ocean at night", width=W, height=H, seed=7)
    again = engine.generate("A blue ocean at night", width=W, height=H, seed=7)
    assert pixels(first) == pixels(again)
    # A fresh engine (another actor, a rerun) reproduces the same bytes from the saved model.
    fresh = ZImageEngine(model=str(tiny_dir), device="cpu")
    assert pixels(fresh.generate("A blue ocean at night", width=W, height=H, seed=7)) == pixels(first)
    other = engine.generate("A blue ocean at night", width=W, height=H, seed=8)
    assert pixels(other) != pixels(first)


def test_turbo_default_is_eight_transformer_forwards_without_guidance(engine, monkeypatch):
    counter = ForwardCounter(monkeypatch, engine.pipeline)
    engine.generate("A green forest in fog", width=W, height=H, seed=3)
    assert counter.calls == 8
    assert engine.pipeline.num_timesteps == 8
    assert engine.pipeline.guidance_scale == 0.0
    assert not engine.pipeline.do_classifier_free_guidance  # one forward per step, not two


def test_steps_override_sets_the_number_of_forwards(tiny_dir, monkeypatch):
    engine = ZImageEngine(model=str(tiny_dir), device="cpu", steps=3)
    counter = ForwardCounter(monkeypatch, engine.pipeline)
    engine.generate("A green forest in fog", width=64, height=64, seed=3)
    assert counter.calls == 3


@pytest.mark.parametrize(
    ("width", "height", "named"),
    [(100, 64, "width=100"), (64, 72, "height=72"), (0, 64, "width=0"), (64.0, 64, "width=64.0")],
)
def test_sizes_must_be_positive_multiples_of_16(width, height, named):
    # The model does not exist: the size is refused before anything is loaded.
    engine = ZImageEngine(model="nobody/not-a-model", device="cpu")
    with pytest.raises(EngineError, match="multiples of 16") as info:
        engine.generate("x", width=width, height=height, seed=1)
    assert named in str(info.value)
    assert engine.placement is None


def test_generate_many_returns_the_images_generate_would(engine):
    requests = [
        {"prompt": "A red desert at dawn", "width": W, "height": H, "seed": 11, "label": "1"},
        {"prompt": "A castle in the snow, seen from far away at dusk", "width": 64, "height": 64, "seed": 12},
    ]
    many = engine.generate_many(requests)
    assert [image.size for image in many] == [(W, H), (64, 64)]
    for request, image in zip(requests, many, strict=True):
        single = engine.generate(
            request["prompt"], width=request["width"], height=request["height"], seed=request["seed"]
        )
        assert pixels(single) == pixels(image)
    assert engine.generate_many([]) == []


def test_generate_many_checks_every_request_before_generating(engine, monkeypatch):
    counter = ForwardCounter(monkeypatch, engine.pipeline)
    good = {"prompt": "ok", "width": 64, "height": 64, "seed": 1}
    with pytest.raises(EngineError, match="height=50"):
        engine.generate_many([good, {**good, "height": 50}])
    assert counter.calls == 0


def test_batched_pipeline_calls_agree_only_numerically(engine):
    """Why generate_many does not batch: a batched call is right but not bit-identical per image.

    If this ever fails with a large difference, batching in the installed diffusers is broken outright.
    """
    import numpy as np

    prompts = ["A red desert", "A blue ocean at night under a sky full of stars, long prompt", "fog"]
    seeds = [1, 2, 3]

    def run(batch_prompts, batch_seeds):
        generators = [torch.Generator("cpu").manual_seed(s) for s in batch_seeds]
        return engine.pipeline(
            prompt=list(batch_prompts),
            width=64,
            height=64,
            num_inference_steps=8,
            guidance_scale=0.0,
            generator=generators,
            output_type="np",
        ).images

    batched = run(prompts, seeds)
    for k, (prompt, seed) in enumerate(zip(prompts, seeds, strict=True)):
        single = run([prompt], [seed])[0]
        assert np.abs(single - batched[k]).max() < 1e-4


@pytest.mark.parametrize(
    ("memory", "expected"),
    [
        ("resident", ["to(cuda)"]),
        ("model_offload", ["enable_model_cpu_offload(cuda)"]),
        ("sequential_offload", ["enable_sequential_cpu_offload(cuda)"]),
    ],
)
def test_memory_mode_calls_the_matching_diffusers_method(tiny_dir, monkeypatch, memory, expected):
    from diffusers import AutoencoderKL, ZImagePipeline

    calls: list[str] = []
    # Patched on the real classes (monkeypatch refuses names that do not exist there), so a rename in
    # diffusers fails this test. No CUDA is touched: the methods only record.
    monkeypatch.setattr(ZImagePipeline, "to", lambda self, device: calls.append(f"to({device})"))
    for method in ("enable_model_cpu_offload", "enable_sequential_cpu_offload"):
        monkeypatch.setattr(
            ZImagePipeline, method, lambda self, device, _m=method: calls.append(f"{_m}({device})")
        )
    monkeypatch.setattr(AutoencoderKL, "enable_tiling", lambda self: calls.append("vae.enable_tiling"))

    engine = ZImageEngine(model=str(tiny_dir), memory=memory, device="cuda")
    engine.load()
    assert calls == expected
    assert engine.placement == memory
    assert engine.pipeline.transformer.dtype == torch.bfloat16  # bfloat16 whenever the device is CUDA

    calls.clear()
    ZImageEngine(model=str(tiny_dir), memory=memory, vae_tiling=True, device="cuda").load()
    assert calls == [*expected, "vae.enable_tiling"]


@pytest.mark.parametrize("memory", ["model_offload", "sequential_offload"])
def test_offload_without_cuda_stays_resident_with_a_note(tiny_dir, engine, memory, monkeypatch, caplog):
    monkeypatch.setattr(logging.getLogger("zray"), "propagate", True)  # the CLI's rich setup turns it off
    offloaded = ZImageEngine(model=str(tiny_dir), memory=memory, device="cpu")
    with caplog.at_level(logging.WARNING, logger="zray.engines.zimage"):
        offloaded.load()
    assert offloaded.placement == "resident"
    assert any(memory in r.getMessage() and "CUDA" in r.getMessage() for r in caplog.records)
    assert offloaded.pipeline.transformer.dtype == torch.float32
    image = offloaded.generate("A red desert", width=64, height=64, seed=2)
    assert pixels(image) == pixels(engine.generate("A red desert", width=64, height=64, seed=2))


def test_vae_tiling_is_applied_on_cpu_too(tiny_dir, engine):
    tiled = ZImageEngine(model=str(tiny_dir), vae_tiling=True, device="cpu")
    assert tiled.pipeline.vae.use_tiling
    assert not engine.pipeline.vae.use_tiling
    # The tiny VAE tiles above 32 px, so a 64x64 decode is blended from tiles: other pixels.
    image = tiled.generate("A red desert", width=64, height=64, seed=2)
    assert image.size == (64, 64)
    assert pixels(image) != pixels(engine.generate("A red desert", width=64, height=64, seed=2))


def test_missing_model_without_network_names_the_model_and_the_fix(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    engine = ZImageEngine(model="nobody/no-such-zimage", device="cpu")
    with pytest.raises(EngineError) as info:
        engine.load()
    assert str(info.value) == (
        "image model nobody/no-such-zimage is not in the Hugging Face cache and cannot be downloaded here; "
        "download it with `hf download nobody/no-such-zimage` or set models.image to a "
        "local directory"
    )


def test_missing_local_directory_is_named(tmp_path):
    missing = tmp_path / "models" / "zimage"
    with pytest.raises(EngineError, match=f"image model directory {missing} does not exist"):
        ZImageEngine(model=str(missing), device="cpu").load()


def test_old_diffusers_is_refused_with_the_upgrade(tiny_dir, monkeypatch):
    monkeypatch.setattr(diffusers, "__version__", "0.38.0")
    with pytest.raises(EngineError, match=r"diffusers>=0\.40 \(installed: 0\.38\.0\)"):
        ZImageEngine(model=str(tiny_dir), device="cpu").load()


@pytest.mark.parametrize(
    ("options", "named"),
    [({"memory": "swap"}, "'swap'"), ({"steps": 0}, "0"), ({"steps": 2.5}, "2.5"), ({"model": ""}, "''")],
)
def test_bad_options_are_refused_by_name(options, named):
    with pytest.raises(EngineError) as info:
        ZImageEngine(**options)
    assert named in str(info.value)


def test_identity_lists_what_changes_the_image(tiny_dir, tmp_path):
    engine = ZImageEngine(model=str(tiny_dir), device="cpu")
    identity = engine.identity()
    assert engine.placement is None  # computing keys never loads the model
    assert identity["engine"] == "zimage"
    assert identity["version"]
    assert identity["model"] == tiny_dir.name
    assert len(identity["model_digest"]) == 16
    assert (identity["steps"], identity["guidance"], identity["dtype"]) == (8, 0.0, "float32")
    assert ZImageEngine(model=str(tiny_dir), device="cuda:0").identity()["dtype"] == "bfloat16"

    def differs(**options) -> bool:
        return ZImageEngine(**{"model": str(tiny_dir), "device": "cpu", **options}).identity() != identity

    assert differs(steps=4)
    assert differs(vae_tiling=True)
    assert not differs(steps=8)
    assert not differs(memory="sequential_offload")  # where weights live does not change the arithmetic

    hub = ZImageEngine(model="Tongyi-MAI/Z-Image-Turbo", device="cpu").identity()
    assert (hub["model"], hub["model_digest"]) == ("Tongyi-MAI/Z-Image-Turbo", None)
    assert ZImageEngine().identity()["model"] == "Tongyi-MAI/Z-Image-Turbo"

    # A copy elsewhere keeps its keys; changed weights change them.
    copy = shutil.copytree(tiny_dir, tmp_path / "elsewhere" / tiny_dir.name)
    assert ZImageEngine(model=str(copy), device="cpu").identity() == identity
    with (copy / "transformer" / "diffusion_pytorch_model.safetensors").open("ab") as weights:
        weights.write(b"\0")
    assert ZImageEngine(model=str(copy), device="cpu").identity()["model_digest"] != identity["model_digest"]


def test_out_of_gpu_memory_suggests_offloading(engine, monkeypatch):
    from diffusers import ZImagePipeline

    def out_of_memory(self, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(ZImagePipeline, "__call__", out_of_memory)
    with pytest.raises(EngineError, match=r"1920x1072.*model_offload"):
        engine.generate("x", width=1920, height=1072, seed=1)


def test_importing_the_engine_does_not_import_torch():
    code = "import sys, zray.engines.zimage; print('torch' in sys.modules, 'diffusers' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


def _real_model_cached() -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache("Tongyi-MAI/Z-Image-Turbo", "model_index.json"), str)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_real_z_image_turbo_at_1920x1072(monkeypatch):
    if not _real_model_cached():
        pytest.skip("Tongyi-MAI/Z-Image-Turbo is not in the Hugging Face cache")
    engine = ZImageEngine(model="Tongyi-MAI/Z-Image-Turbo")
    counter = ForwardCounter(monkeypatch, engine.pipeline)
    assert engine.pipeline.transformer.dtype == torch.bfloat16
    prompt = "A lighthouse on a rocky coast at sunset, waves breaking, cinematic wide shot"
    image = engine.generate(prompt, width=1920, height=1072, seed=1234)
    assert counter.calls == 8
    assert image.size == (1920, 1072)
    assert image.mode == "RGB"
    low, high = zip(*image.getextrema(), strict=True)
    assert max(high) - min(low) > 64, "a real scene uses much of the range"
    again = engine.generate(prompt, width=1920, height=1072, seed=1234)
    assert pixels(again) == pixels(image)
