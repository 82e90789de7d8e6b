"""ZImageEngine on a tiny random-weight Z-Image pipeline: built in memory and handed to the engine, and
once saved to disk and loaded like a real model."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys

import pytest
from conftest import skip_reason

torch = pytest.importorskip("torch", reason=skip_reason("models", "torch"))
diffusers = pytest.importorskip("diffusers", reason=skip_reason("models", "diffusers"))

from tiny_zimage import build_tiny_zimage, build_tiny_zimage_pipeline  # noqa: E402

from zray.engines.base import EngineError, ImageEngine, check_engine_class  # noqa: E402
from zray.engines.zimage import ZImageEngine, ZImageSettings  # noqa: E402

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


def settings(**changes) -> ZImageSettings:
    return ZImageSettings(**{"model": "tiny-zimage", "device": "cpu", **changes})


def tiny_engine(**changes) -> ZImageEngine:
    """An engine on a fresh in-memory tiny pipeline (fresh: loading casts and places it)."""
    return ZImageEngine(settings(**changes), pipeline=build_tiny_zimage_pipeline())


@pytest.fixture(scope="module")
def engine() -> ZImageEngine:
    engine = tiny_engine()
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


def test_engine_satisfies_the_image_engine_interface(engine):
    assert isinstance(engine, ImageEngine)
    assert check_engine_class(ZImageEngine, "image") == []
    assert (ZImageEngine.name, ZImageEngine.role, ZImageEngine.uses_gpu) == ("zimage", "image", True)


def test_a_saved_model_directory_loads_like_a_model_id_and_gives_the_same_pixels(engine, tmp_path):
    """The one test through disk: the path a real Hub id or local folder takes (from_pretrained)."""
    folder = build_tiny_zimage(tmp_path / "tiny-zimage")
    loaded = ZImageEngine(ZImageSettings(model=str(folder), device="cpu"))
    image = loaded.generate("A blue ocean at night", width=W, height=H, seed=7)
    assert loaded.placement == "resident"
    assert loaded.pipeline.transformer.dtype == torch.float32
    assert pixels(image) == pixels(engine.generate("A blue ocean at night", width=W, height=H, seed=7))
    identity = loaded.identity()
    assert identity["model"] == "tiny-zimage" and len(identity["model_digest"]) == 16


def test_generates_an_rgb_image_of_the_requested_size(engine):
    image = engine.generate("A red desert at dawn", width=W, height=H, seed=1, label="scene 1")
    assert image.size == (W, H)
    assert image.mode == "RGB"
    extrema = image.getextrema()
    assert any(low < high for low, high in extrema), "a flat image means the pipeline produced nothing"


def test_same_seed_gives_identical_pixels_and_other_seeds_differ(engine):
    first = engine.generate("A blue ocean at night", width=W, height=H, seed=7)
    again = engine.generate("A blue ocean at night", width=W, height=H, seed=7)
    assert pixels(first) == pixels(again)
    # A fresh engine (another actor, a rerun) reproduces the same bytes from the same weights.
    fresh = tiny_engine()
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


def test_steps_override_sets_the_number_of_forwards(monkeypatch):
    engine = tiny_engine(steps=3)
    counter = ForwardCounter(monkeypatch, engine.pipeline)
    engine.generate("A green forest in fog", width=64, height=64, seed=3)
    assert counter.calls == 3


@pytest.mark.parametrize(
    ("width", "height", "named"),
    [(100, 64, "width=100"), (64, 72, "height=72"), (0, 64, "width=0"), (64.0, 64, "width=64.0")],
)
def test_sizes_must_be_positive_multiples_of_16(width, height, named):
    # The model does not exist: the size is refused before anything is loaded.
    engine = ZImageEngine(settings(model="nobody/not-a-model"))
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
def test_memory_mode_calls_the_matching_diffusers_method(monkeypatch, memory, expected):
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

    # float32 asked for, so the float32 tiny pipeline needs no cast: only placement is called.
    engine = tiny_engine(memory=memory, device="cuda", dtype="float32")
    engine.load()
    assert calls == expected
    assert engine.placement == memory

    calls.clear()
    tiny_engine(memory=memory, vae_tiling=True, device="cuda", dtype="float32").load()
    assert calls == [*expected, "vae.enable_tiling"]


def test_group_offload_asks_diffusers_for_block_groups_on_streams_and_keeps_the_vae(monkeypatch):
    from diffusers import AutoencoderKL, ZImagePipeline

    calls: list[tuple[str, dict]] = []
    monkeypatch.setattr(
        ZImagePipeline, "enable_group_offload", lambda self, **kw: calls.append(("group", kw))
    )
    monkeypatch.setattr(
        AutoencoderKL, "to", lambda self, device: calls.append(("vae.to", {"device": device}))
    )
    engine = tiny_engine(memory="group_offload", device="cuda", dtype="float32")
    engine.load()
    assert engine.placement == "group_offload"
    (name, options), vae = calls
    assert name == "group" and vae == ("vae.to", {"device": "cuda"})
    assert options["onload_device"] == torch.device("cuda") and options["offload_device"] == torch.device(
        "cpu"
    )
    assert (options["offload_type"], options["num_blocks_per_group"], options["use_stream"]) == (
        "block_level",
        1,
        True,
    )
    assert options["exclude_modules"] == ["vae"]


def test_group_offloaded_blocks_make_the_same_pixels(engine):
    """diffusers' hooks really move each block in and out (here CPU to CPU, no streams): the image is
    the resident one, bit for bit, and the text encoder and transformer carry the hooks."""
    from zray.engines.zimage import group_offload

    pipe = build_tiny_zimage_pipeline()
    group_offload(pipe, device="cpu", use_stream=False)
    hooked = [
        name
        for name, module in pipe.transformer.named_modules()
        if getattr(module, "_diffusers_hook", None) is not None
    ]
    assert hooked, "no group-offload hooks on the transformer"
    assert any(getattr(m, "_diffusers_hook", None) is not None for m in pipe.text_encoder.modules())
    offloaded = ZImageEngine(settings(), pipeline=pipe)
    image = offloaded.generate("A red desert", width=64, height=64, seed=2)
    assert pixels(image) == pixels(engine.generate("A red desert", width=64, height=64, seed=2))


def test_attention_backend_and_regional_compile_are_applied_at_load(monkeypatch):
    from diffusers import ZImageTransformer2DModel

    calls: list[tuple[str, object]] = []
    monkeypatch.setattr(
        ZImageTransformer2DModel,
        "set_attention_backend",
        lambda self, name: calls.append(("attention", name)),
    )
    monkeypatch.setattr(
        ZImageTransformer2DModel, "compile_repeated_blocks", lambda self, **kw: calls.append(("compile", kw))
    )
    tiny_engine().load()
    assert calls == []  # the defaults leave diffusers alone
    engine = tiny_engine(attention="_native_efficient", compile=True)
    engine.load()
    assert calls == [("attention", "_native_efficient"), ("compile", {"fullgraph": True})]
    assert engine.identity() == tiny_engine().identity()  # within bfloat16 noise: not in the key


def test_an_unknown_attention_backend_is_one_engine_error_naming_it():
    with pytest.raises(EngineError, match="no-such-backend"):
        tiny_engine(attention="no-such-backend").load()


@pytest.mark.parametrize("memory", ["model_offload", "group_offload", "sequential_offload"])
def test_offload_without_cuda_stays_resident_with_a_note(engine, memory, monkeypatch, caplog):
    monkeypatch.setattr(logging.getLogger("zray"), "propagate", True)  # the CLI's rich setup turns it off
    offloaded = tiny_engine(memory=memory)
    with caplog.at_level(logging.WARNING, logger="zray.engines.zimage"):
        offloaded.load()
    assert offloaded.placement == "resident"
    assert any(memory in r.getMessage() and "CUDA" in r.getMessage() for r in caplog.records)
    assert offloaded.pipeline.transformer.dtype == torch.float32
    image = offloaded.generate("A red desert", width=64, height=64, seed=2)
    assert pixels(image) == pixels(engine.generate("A red desert", width=64, height=64, seed=2))


def test_vae_tiling_is_applied_on_cpu_too(engine):
    tiled = tiny_engine(vae_tiling=True)
    assert tiled.pipeline.vae.use_tiling
    assert not engine.pipeline.vae.use_tiling
    # The tiny VAE tiles above 32 px, so a 64x64 decode is blended from tiles: other pixels.
    image = tiled.generate("A red desert", width=64, height=64, seed=2)
    assert image.size == (64, 64)
    assert pixels(image) != pixels(engine.generate("A red desert", width=64, height=64, seed=2))


@pytest.mark.parametrize(
    ("device", "dtype", "expected"),
    [
        ("auto", "auto", "bfloat16"),
        ("cuda", "auto", "bfloat16"),
        ("cuda:1", "auto", "bfloat16"),
        ("cpu", "auto", "float32"),
        ("cpu", "bfloat16", "bfloat16"),
        ("auto", "float16", "float16"),
    ],
)
def test_identity_dtype_comes_from_the_settings_never_the_host(monkeypatch, device, dtype, expected):
    """A CPU head that plans and a GPU worker that runs must agree: CUDA on this host changes nothing."""
    engine = ZImageEngine(ZImageSettings(device=device, dtype=dtype))
    assert engine.settings.resolved_dtype == expected
    without = engine.identity()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert ZImageEngine(ZImageSettings(device=device, dtype=dtype)).identity() == without
    assert without["dtype"] == expected


def test_the_engine_runs_in_exactly_the_identitys_dtype(engine):
    # bfloat16 asked for on the CPU: the injected float32 pipeline is cast, and the image is made in it.
    half = tiny_engine(dtype="bfloat16")
    assert half.identity()["dtype"] == "bfloat16"
    assert half.pipeline.transformer.dtype == torch.bfloat16
    assert half.pipeline.text_encoder.dtype == torch.bfloat16
    image = half.generate("A red desert", width=64, height=64, seed=2)
    assert image.size == (64, 64)
    # Other arithmetic, other pixels: which is why the dtype is in the identity.
    assert pixels(image) != pixels(engine.generate("A red desert", width=64, height=64, seed=2))
    assert engine.identity()["dtype"] == "float32"
    assert engine.pipeline.transformer.dtype == torch.float32


def test_missing_model_without_network_names_the_model_and_the_fix(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    engine = ZImageEngine(settings(model="nobody/no-such-zimage"))
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
        ZImageEngine(settings(model=str(missing))).load()


def test_old_diffusers_is_refused_with_the_upgrade(monkeypatch):
    monkeypatch.setattr(diffusers, "__version__", "0.38.0")
    with pytest.raises(EngineError, match=r"diffusers>=0\.40 \(installed: 0\.38\.0\)"):
        tiny_engine().load()


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"memory": "swap"}, "'swap'"),
        ({"steps": 0}, "0"),
        ({"steps": 2.5}, "2.5"),
        ({"model": ""}, "''"),
        ({"dtype": "int8"}, "'int8'"),
        ({"device": ""}, "''"),
        ({"attention": ""}, "''"),
        ({"compile": "yes"}, "'yes'"),
    ],
)
def test_bad_settings_are_refused_by_name(options, named):
    with pytest.raises(EngineError) as info:
        ZImageSettings(**options)
    assert named in str(info.value)


def test_identity_lists_what_changes_the_image(tmp_path):
    # identity() reads a local model's file names and sizes, never its weights: any files will do.
    folder = tmp_path / "models" / "tiny-zimage"
    (folder / "transformer").mkdir(parents=True)
    (folder / "model_index.json").write_text("{}")
    (folder / "transformer" / "diffusion_pytorch_model.safetensors").write_bytes(b"\0" * 64)
    engine = ZImageEngine(settings(model=str(folder)))
    identity = engine.identity()
    assert engine.placement is None  # computing keys never loads the model
    assert identity["engine"] == "zimage"
    assert identity["version"]
    assert identity["model"] == "tiny-zimage"
    assert len(identity["model_digest"]) == 16
    assert (identity["steps"], identity["guidance"], identity["dtype"]) == (8, 0.0, "float32")

    def differs(**changes) -> bool:
        return ZImageEngine(settings(model=str(folder), **changes)).identity() != identity

    assert differs(steps=4)
    assert differs(vae_tiling=True)
    assert differs(dtype="bfloat16")
    assert not differs(steps=8)
    assert not differs(memory="sequential_offload")  # where weights live does not change the arithmetic
    assert not differs(dtype="float32")

    hub = ZImageEngine(settings(model="Tongyi-MAI/Z-Image-Turbo")).identity()
    assert (hub["model"], hub["model_digest"]) == ("Tongyi-MAI/Z-Image-Turbo", None)
    assert ZImageEngine().identity()["model"] == "Tongyi-MAI/Z-Image-Turbo"

    # A copy elsewhere keeps its keys; changed weights change them.
    copy = shutil.copytree(folder, tmp_path / "elsewhere" / folder.name)
    assert ZImageEngine(settings(model=str(copy))).identity() == identity
    with (copy / "transformer" / "diffusion_pytorch_model.safetensors").open("ab") as weights:
        weights.write(b"\0")
    assert ZImageEngine(settings(model=str(copy))).identity()["model_digest"] != identity["model_digest"]


def test_default_identity_is_pinned():
    """Studios' image keys: a GPU studio's images (device unset, so bfloat16, as before) must not be
    remade after an upgrade. Changing this dict changes every image key."""
    assert ZImageEngine(ZImageSettings()).identity() == {
        "engine": "zimage",
        "version": "1",
        "model": "Tongyi-MAI/Z-Image-Turbo",
        "model_digest": None,
        "steps": 8,
        "guidance": 0.0,
        "dtype": "bfloat16",
        "vae_tiling": False,
    }


def test_a_library_failure_leaves_as_one_engine_error(engine, monkeypatch):
    from diffusers import ZImagePipeline

    def broken(self, **kwargs):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied\n(a long library message)")

    monkeypatch.setattr(ZImagePipeline, "__call__", broken)
    with pytest.raises(EngineError) as info:
        engine.generate("x", width=64, height=64, seed=1)
    assert str(info.value) == (
        "the zimage engine failed in generate: RuntimeError: mat1 and mat2 shapes cannot be multiplied"
    )
    assert isinstance(info.value.__cause__, RuntimeError)  # kept for the log file


def test_out_of_gpu_memory_suggests_offloading(engine, monkeypatch):
    from diffusers import ZImagePipeline

    def out_of_memory(self, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(ZImagePipeline, "__call__", out_of_memory)
    with pytest.raises(EngineError, match=r"1920x1072.*group_offload \(12 GB cards\)"):
        engine.generate("x", width=1920, height=1072, seed=1)


def test_importing_the_engine_does_not_import_torch():
    code = "import sys, zray.engines.zimage; print('torch' in sys.modules, 'diffusers' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


def test_without_torch_identity_works_and_load_names_the_extra():
    """A base install (no `models` extra) plans with production settings and is told what to install."""
    code = (
        "import sys\n"
        "for name in ('torch', 'diffusers', 'transformers'):\n"
        "    sys.modules[name] = None\n"
        "from zray.engines.zimage import ZImageEngine\n"
        "engine = ZImageEngine()\n"
        "print(engine.identity()['dtype'])\n"
        "try:\n"
        "    engine.load()\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines() == [
        "bfloat16",
        "EngineError the zimage engine needs torch, diffusers, transformers, which are not installed: "
        "pip install 'zray[models]'",
    ]


def _real_model_cached() -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache("Tongyi-MAI/Z-Image-Turbo", "model_index.json"), str)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_real_z_image_turbo_at_1920x1072(monkeypatch):
    if not _real_model_cached():
        pytest.skip("Tongyi-MAI/Z-Image-Turbo is not in the Hugging Face cache")
    engine = ZImageEngine(ZImageSettings(model="Tongyi-MAI/Z-Image-Turbo"))
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
