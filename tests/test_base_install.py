"""The base install (`pip install zray`, no extras) runs the CLI: nothing on its paths may import
the libraries of the `models`, `cloud` or `publish` extras."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "inputs" / "scripts" / "demo" / "SAGA_01_Episode_01.json"
EXTRAS = [
    "torch",
    "diffusers",
    "transformers",
    "kokoro",
    "accelerate",
    "s3fs",
    "gcsfs",
    "googleapiclient",
    "google_auth_oauthlib",
    "google_auth_httplib2",
    "httplib2",
    "google.auth",
    "google.oauth2",
]
# A None entry in sys.modules makes `import x` fail as if x were not installed.
PRELUDE = f"import sys\nfor name in {EXTRAS!r}:\n    sys.modules[name] = None\nfrom zray.cli import main\n"


def zray(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    code = PRELUDE + f"sys.argv = ['zray', *{list(args)!r}]\nmain()\n"
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_validate_and_run_errors_work_without_any_extra(tmp_path):
    ok = zray("validate", str(DEMO), cwd=tmp_path)
    assert ok.returncode == 0 and "OK" in ok.stdout, ok.stderr
    missing = zray("run", str(tmp_path / "nope.json"), cwd=tmp_path)
    assert missing.returncode != 0
    assert "Traceback" not in missing.stderr and "nope.json" in missing.stderr, missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1, missing.stderr
