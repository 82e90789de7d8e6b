"""benchmarks/real_size.py: the real-size GPU benchmark's harness, run on tiny configs on the CPU
exactly as the GPU machine runs it (PyAV, soundfile, Ray, pydantic and typer absent; spaCy and
segments replaced by the benchmark's stand-ins), and its pure parts: the VRAM table's rows, the
MusicGen comparison and the episode estimate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import needs_extra

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS = REPO / "benchmarks"
STUBS = BENCHMARKS / "device" / "stubs"
# What the GPU machine does not have (see benchmarks/device/README.md): None in sys.modules makes
# `import x` fail as if x were not installed.
ABSENT = ["av", "soundfile", "ray", "pydantic", "typer", "moviepy"]
PRELUDE = f"import sys\nfor name in {ABSENT!r}:\n    sys.modules[name] = None\n"

needs_extra("models", "torch")
needs_extra("models", "diffusers")
needs_extra("models", "kokoro")


def device_like(code: str, *, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": f"{STUBS}:{REPO}", "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-c", PRELUDE + code], cwd=cwd, env=env, capture_output=True, text=True, timeout=1800
    )


def test_the_engines_import_without_pyav_soundfile_or_ray() -> None:
    result = device_like(
        "import zray.engines.zimage, zray.engines.musicgen, zray.engines.kokoro, zray.engines.wan\nprint('ok')"
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_tiny_run_measures_every_part_and_writes_json_and_markdown(tmp_path: Path) -> None:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import real_size
    finally:
        sys.path.remove(str(BENCHMARKS))
    # Regional compilation builds C++ kernels on a CPU for minutes; its engine setting has its own test.
    parts = [name for name in real_size.BY_NAME if name not in ("zimage_compile", "wan_compile")]
    args = ["--tiny", "--out", str(tmp_path), "--budget-s", "100000", "--parts", ",".join(parts)]
    result = device_like(
        f"sys.argv = ['real_size.py', *{args!r}]\nimport runpy\nrunpy.run_path({str(BENCHMARKS / 'real_size.py')!r}, run_name='__main__')"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((tmp_path / "real_size.json").read_text())
    statuses = {name: part["status"] for name, part in record["parts"].items()}
    assert statuses == dict.fromkeys(parts, "ok"), {n: p.get("error") for n, p in record["parts"].items()}
    figures = {name: part["figures"] for name, part in record["parts"].items()}

    resident = figures["zimage_resident"]
    assert resident["transformer_forwards"] == 8 and resident["finite_output"] is True
    assert resident["image_s"] > 0 and resident["thumb_image_s"] > 0
    # Offloaded blocks change where weights live, not the arithmetic (CPU: the hooks still run).
    assert figures["zimage_group_offload"]["psnr_db_vs_resident"] == float("inf")
    assert figures["zimage_attention"]["_native_math_psnr_db"] == float("inf")
    # The new MusicGen path makes the old path's bed, alone and as the first bed of a batch.
    assert figures["musicgen_generate"]["same_bed_as_graphs"] is True
    assert figures["musicgen_batched"]["beds_3_bed0_equals_solo"] is True
    graphs = figures["musicgen_graphs"]
    assert graphs["method"] == "graphs" and len(graphs["windows"]) >= 2  # continuations ran too
    assert graphs["cuda_graph_captured"] is False  # no CUDA here
    assert figures["musicgen_diagnosis"]["cold_ms_per_step"] > 0
    assert figures["kokoro"]["speech_s"] > 0 and figures["kokoro"]["realtime_factor"] > 0
    both = figures["two_at_once"]
    assert both["image_alone_s"] > 0 and both["music_alone_s"] > 0 and both["music_together_s"] > 0
    assert record["episode"]["images_s"] > 0 and "gpu_s_with_graphs" in record["episode"]
    assert record["music_speedup"]["new_ms_per_step"] > 0
    wan = figures["wan_steps"]
    assert wan["clip"] == "64x32x9" and wan["finite_output"] is True
    assert wan["steps50_transformer_forwards"] == 100  # guidance: two forwards a step
    assert wan["steps20_s"] > 0 and wan["tflop_per_step"] >= 0
    assert 0 < wan["steps20_psnr_db"] < float("inf") and -1 <= wan["steps20_ssim"] <= 1
    assert wan["steps20_s"] < wan["steps50_s"]
    cache = figures["wan_cache"]
    assert any(key.endswith("_ssim") for key in cache) or any(key.endswith("_error") for key in cache), cache
    assert figures["wan_group_offload"]["finite_output"] is True
    assert record["vram"] == []  # peak memory is a CUDA figure: nothing to tabulate on a CPU
    markdown = (tmp_path / "real_size.md").read_text()
    assert "| zimage_resident | ok |" in markdown and "MusicGen per step" in markdown


def test_without_cuda_and_without_tiny_it_says_so_in_one_line(tmp_path: Path) -> None:
    result = device_like(
        f"sys.argv = ['real_size.py', '--out', {str(tmp_path)!r}]\nimport runpy\n"
        f"runpy.run_path({str(BENCHMARKS / 'real_size.py')!r}, run_name='__main__')"
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("real_size.py needs a CUDA device"), (
        result.stderr
    )


@pytest.fixture
def real_size():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import real_size

        yield real_size
    finally:
        sys.path.remove(str(BENCHMARKS))


def parts(**figures) -> dict:
    return {name: {"status": "ok", "figures": values} for name, values in figures.items()}


def test_episode_estimate_overlaps_music_with_images_by_the_measured_slowdown(real_size) -> None:
    measured = parts(
        zimage_resident={"image_s": 2.69, "thumb_image_s": 1.15},
        kokoro={"gpu_s_per_speech_s": 0.011},
        two_at_once={"image_slowdown": 0.16, "music_slowdown": 0.15},
        musicgen_graphs={"gpu_s_per_bed_s": 0.1},
        musicgen_generate={"gpu_s_per_bed_s": 1.62},
    )
    e = real_size.episode_estimate(measured)
    images = 10 * 2.69 + 2 * 1.15
    narration = 10 * 2 * 24.0 * 0.011
    assert e["images_s"] == round(images, 1) and e["narration_s"] == round(narration, 1)
    work, old_music, new_music = images + narration, 60 * 1.62, 60 * 0.1
    assert e["gpu_s_with_generate"] == round(old_music + 0.16 * work, 1)
    assert e["bound_by_with_generate"] == "music"
    assert e["gpu_s_with_graphs"] == round(work + 0.16 * new_music, 1)
    assert e["bound_by_with_graphs"] == "images"
    assert real_size.episode_estimate(parts(kokoro={"gpu_s_per_speech_s": 0.01})) is None


def test_vram_rows_and_music_comparison_come_from_the_parts_that_ran(real_size) -> None:
    measured = parts(
        zimage_resident={"peak_reserved_gib": 21.5},
        zimage_group_offload={"peak_reserved_gib": 7.2, "vae_tiling_peak_reserved_gib": 5.1},
        musicgen_graphs={"peak_reserved_gib": 2.0, "ms_per_step": 2.5, "window_ms_per_step": [2.4, 2.6]},
        musicgen_generate={"peak_reserved_gib": 3.1, "ms_per_step": 31.0, "window_ms_per_step": [50.7, 13.8]},
    )
    rows = {(r["engine"], r["mode"]): r["peak_reserved_gib"] for r in real_size.vram_rows(measured)}
    assert rows == {
        ("zimage", "resident"): 21.5,
        ("zimage", "group_offload"): 7.2,
        ("zimage", "group_offload+vae_tiling"): 5.1,
        ("musicgen-small", "graphs"): 2.0,
        ("musicgen-small", "generate"): 3.1,
    }
    speedup = real_size.music_speedup(measured)
    assert speedup["per_step_speedup"] == round(31.0 / 2.5, 2) and speedup["goal_3x_met"] is True


def test_unknown_parts_are_refused_by_name(real_size, capsys) -> None:
    with pytest.raises(SystemExit):
        real_size.parse_args(["--out", "x", "--parts", "zimage_resident,warp_drive"])
    assert "unknown warp_drive" in capsys.readouterr().err
