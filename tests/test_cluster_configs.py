"""The deployment files in cluster/: checked against what Ray, KubeRay and zray itself accept.

There is no Docker engine or Kubernetes here, so the launcher YAML is validated with the JSON schema and
the validator that the installed Ray wheel ships, the KubeRay manifests against the fields KubeRay
requires, the Dockerfile by a small linter, and every command in cluster/README.md by the real `ray` and
`zray` command-line parsers. The shell glue the launcher writes onto each node is run here in bash.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster"
LAUNCHER = CLUSTER / "ray-cluster.yaml"
KUBERAY = CLUSTER / "kuberay"
DOCKERFILE = CLUSTER / "Dockerfile"
ZRAY_TOML = CLUSTER / "zray.toml"
README = CLUSTER / "README.md"

SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL", re.IGNORECASE)
# Shapes of real credentials, should one ever be pasted into these files.
LEAKED_VALUE = re.compile(r"AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_\-]{35}|ghp_[0-9A-Za-z]{36}")
PUBLIC_HOSTS = {"0.0.0.0", "::", "[::]"}


def project_version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def launcher() -> dict[str, Any]:
    return yaml.safe_load(LAUNCHER.read_text())


def manifests(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((KUBERAY / name).read_text()) if doc]


def one(name: str, kind: str) -> dict[str, Any]:
    docs = [d for d in manifests(name) if d.get("kind") == kind]
    assert len(docs) == 1, f"{name}: expected one {kind}, found {len(docs)}"
    return docs[0]


def ray_schema() -> dict[str, Any]:
    import ray.autoscaler

    path = Path(ray.autoscaler.__file__).parent / "ray-schema.json"
    return json.loads(path.read_text())


def all_commands(config: dict[str, Any]) -> list[str]:
    keys = ("initialization_commands", "setup_commands", "head_setup_commands", "worker_setup_commands")
    keys += ("head_start_ray_commands", "worker_start_ray_commands")
    return [cmd for key in keys for cmd in config.get(key) or []]


def ray_start_commands(config: dict[str, Any]) -> list[str]:
    starts = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    return [cmd for cmd in starts if "ray start" in cmd]


def dashboard_hosts(command: str) -> list[str]:
    return re.findall(r"--dashboard-host[= ]+['\"]?([^\s'\"]+)", command)


def pod_templates(cluster: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    spec = cluster["spec"]
    out = [("head", spec["headGroupSpec"]["template"]["spec"])]
    out += [(g["groupName"], g["template"]["spec"]) for g in spec["workerGroupSpecs"]]
    return out


def env_problems(env: list[dict[str, Any]]) -> list[str]:
    """Env entries that carry a secret inline: a secret-like name with a literal value, or any value
    that looks like a credential. Secrets must come from `valueFrom.secretKeyRef`."""
    problems = []
    for entry in env:
        name, value = entry["name"], entry.get("value")
        if value is not None and (SECRET_NAME.search(name) or LEAKED_VALUE.search(str(value))):
            problems.append(f"{name} has an inline value")
        source = entry.get("valueFrom") or {}
        if SECRET_NAME.search(name) and value is None and "secretKeyRef" not in source:
            problems.append(f"{name} does not come from a secretKeyRef")
    return problems


def gpu_limit(container: dict[str, Any]) -> int:
    return int((container.get("resources") or {}).get("limits", {}).get("nvidia.com/gpu", 0))


# --- the Ray cluster launcher config ---------------------------------------------------------------------


def test_launcher_config_matches_the_schema_ray_ships() -> None:
    import jsonschema

    schema = ray_schema()
    config = launcher()
    jsonschema.validate(config, schema)
    # The schema does reject mistakes: a fractional GPU count and an unknown key both fail.
    broken = copy.deepcopy(config)
    broken["available_node_types"]["gpu_worker"]["resources"]["GPU"] = 0.5
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**config, "head_node": {}, "dashboard_host": "x"}, schema)


def test_launcher_config_passes_rays_own_validator() -> None:
    util = pytest.importorskip("ray.autoscaler._private.util")
    prepared = util.prepare_config(launcher())
    util.validate_config(prepared)
    # `ray up` fills Ray's defaults in but keeps ours: the head's empty lists replace Ray's default
    # `pip install boto3`, which would install outside the venv that runs Ray.
    assert prepared["head_setup_commands"] == launcher()["setup_commands"]
    assert prepared["available_node_types"]["head"]["max_workers"] == 0


def test_launcher_node_types_keep_models_on_gpus_and_nothing_on_the_head() -> None:
    config = launcher()
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"] == {"CPU": 0, "GPU": 0}
    workers = {name: t for name, t in types.items() if name != config["head_node_type"]}
    gpu = [t for t in workers.values() if t["resources"].get("GPU", 0) >= 1]
    cpu = [t for t in workers.values() if not t["resources"].get("GPU") and t["resources"].get("CPU", 0) > 0]
    assert gpu and cpu
    for node_type in workers.values():
        assert 0 <= node_type["min_workers"] <= node_type["max_workers"]
        assert node_type["node_config"]["IamInstanceProfile"]["Arn"].endswith("instance-profile/zray-worker")
    # Every type can reach its own maximum inside the global cap.
    assert sum(t["max_workers"] for t in workers.values()) <= config["max_workers"]
    # Spot only where losing a node costs a retry, not a model reload.
    for node_type in gpu:
        assert "InstanceMarketOptions" not in node_type["node_config"]


def test_launcher_installs_this_zray_version_with_models_and_cloud_and_matching_ray() -> None:
    config = launcher()
    setup = "\n".join(config["setup_commands"])
    wheel = f"zray-{project_version()}-py3-none-any.whl"
    assert re.search(r'"zray\[models,cloud\] @ file://\$HOME/zray-wheels/' + re.escape(wheel) + '"', setup)
    assert config["file_mounts"]["~/zray-wheels"] == "dist"
    pinned = re.search(r'"ray\[default\]==([\d.]+)"', setup)
    assert pinned, "Ray must be pinned: `ray up` and the cluster have to run the same version"
    assert pinned.group(1) == one("raycluster.yaml", "RayCluster")["spec"]["rayVersion"]
    assert f"rayproject/ray:{pinned.group(1)}-" in DOCKERFILE.read_text()


def test_launcher_keeps_token_auth_on_every_node() -> None:
    config = launcher()
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    env_script = next(cmd for cmd in config["setup_commands"] if "zray-env.sh <<" in cmd)
    assert "export RAY_AUTH_MODE=token" in env_script.splitlines()
    starts = ray_start_commands(config)
    assert len(starts) == 2
    for cmd in starts:
        assert cmd.startswith("source ~/zray-env.sh &&"), cmd
    # Configs, scripts and manifests only: the README names the setting to warn against it.
    for path in CLUSTER.rglob("*"):
        if path.is_file() and path.suffix != ".md":
            assert not re.search(r"RAY_AUTH_MODE\W*disabled", path.read_text()), path


def test_launcher_dashboard_listens_on_localhost_only() -> None:
    config = launcher()
    head_start = next(c for c in config["head_start_ray_commands"] if "ray start --head" in c)
    assert dashboard_hosts(head_start) == ["127.0.0.1"]
    for cmd in all_commands(config):
        assert not set(dashboard_hosts(cmd)) & PUBLIC_HOSTS, cmd
    # The check itself catches the public binding Ray's example configs use.
    assert set(dashboard_hosts("ray start --head --dashboard-host=0.0.0.0")) & PUBLIC_HOSTS
    assert set(dashboard_hosts("ray start --head --dashboard-host '0.0.0.0'")) & PUBLIC_HOSTS


def _node_shell(home: Path, config: dict[str, Any], script: str, **env: str) -> dict[str, str]:
    """Run the setup commands that write ~/zray-env.sh and ~/zray-secrets.sh into a fake home, then
    `script` in bash; returns the environment it ends with."""
    writers = [c for c in config["setup_commands"] if "zray-env.sh <<" in c or "zray-secrets.sh <<" in c]
    clean = {"PATH": os.environ["PATH"], "HOME": str(home), "PYTHONPATH": str(home / "fakepy"), **env}
    for cmd in writers:
        subprocess.run(["bash", "-c", cmd], env=clean, check=True)
    result = subprocess.run(
        ["bash", "-c", f"{script} && env -0"], env=clean, check=True, capture_output=True, text=True
    )
    return dict(line.split("=", 1) for line in result.stdout.split("\0") if "=" in line)


@pytest.fixture
def fake_node(tmp_path: Path) -> Path:
    """A home with a stand-in venv (its python is this one) and a boto3 whose SSM answers from
    FAKE_SSM_VALUE, or fails like a missing parameter when that is unset."""
    venv_bin = tmp_path / "zray-venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").symlink_to(sys.executable)
    (venv_bin / "activate").write_text('export PATH="$HOME/zray-venv/bin:$PATH"\n')
    (tmp_path / "fakepy").mkdir()
    (tmp_path / "fakepy" / "boto3.py").write_text(
        "import os\n"
        "class _SSM:\n"
        "    def get_parameter(self, Name, WithDecryption):\n"
        "        if 'FAKE_SSM_VALUE' not in os.environ:\n"
        "            raise RuntimeError('ParameterNotFound')\n"
        "        assert Name == '/zray/google-api-key' and WithDecryption\n"
        "        return {'Parameter': {'Value': os.environ['FAKE_SSM_VALUE']}}\n"
        "def client(name):\n"
        "    assert name == 'ssm'\n"
        "    return _SSM()\n"
    )
    (tmp_path / ".bashrc").write_text("# stock bashrc\n")
    return tmp_path


def test_node_environment_script_sets_auth_cache_and_region(fake_node: Path) -> None:
    config = launcher()
    env = _node_shell(fake_node, config, "source ~/zray-env.sh")
    assert env["RAY_AUTH_MODE"] == "token"
    assert env["HF_HOME"] == f"{fake_node}/hf-cache"
    assert (fake_node / "hf-cache").is_dir()
    assert env["PATH"].startswith(f"{fake_node}/zray-venv/bin:")
    # boto3 on the nodes has no other way to learn the region than this variable.
    assert env["AWS_DEFAULT_REGION"] == config["provider"]["region"]
    for zone in config["provider"]["availability_zone"].split(","):
        assert zone.startswith(config["provider"]["region"])
    # Re-running setup (every `ray up`) leaves one line in .bashrc, not one per run.
    _node_shell(fake_node, config, "true")
    assert (fake_node / ".bashrc").read_text().count("source ~/zray-env.sh") == 1


def test_node_secrets_script_exports_the_google_key_only_when_ssm_has_it(fake_node: Path) -> None:
    config = launcher()
    both = "source ~/zray-env.sh && source ~/zray-secrets.sh"
    env = _node_shell(fake_node, config, both, FAKE_SSM_VALUE="k-123")
    assert env["GOOGLE_API_KEY"] == "k-123"
    assert "key" not in env
    env = _node_shell(fake_node, config, both)
    assert "GOOGLE_API_KEY" not in env


# --- zray's own settings for a cluster batch -------------------------------------------------------------


@pytest.fixture
def no_zray_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("ZRAY_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_cluster_zray_toml_loads_and_packs_one_image_actor_per_gpu(no_zray_env: pytest.MonkeyPatch) -> None:
    from zray.config import load_config

    cfg = load_config(ZRAY_TOML)
    assert cfg.output.startswith("s3://")
    assert cfg.profile == "production"
    image, tts, music = cfg.actors.image, cfg.actors.tts, cfg.actors.music
    assert image.num_gpus is not None and tts.num_gpus is not None and music.num_gpus is not None
    # Two image actors never fit on one card, and voice + music fit beside one image actor.
    assert 2 * image.num_gpus > 1
    assert image.num_gpus + tts.num_gpus + music.num_gpus <= 1
    gpu_nodes = launcher()["available_node_types"]["gpu_worker"]
    assert image.count is not None
    assert image.count <= gpu_nodes["max_workers"] * gpu_nodes["resources"]["GPU"]


def test_rayjob_runtime_env_gives_the_same_settings_as_zray_toml(no_zray_env: pytest.MonkeyPatch) -> None:
    from zray.config import load_config

    job = one("rayjob.yaml", "RayJob")
    env_vars = yaml.safe_load(job["spec"]["runtimeEnvYAML"])["env_vars"]
    assert not [name for name in env_vars if SECRET_NAME.search(name)]
    from_file = load_config(ZRAY_TOML)
    for name, value in env_vars.items():
        no_zray_env.setenv(name, str(value))
    from_env = load_config(None)
    assert from_env.actors == from_file.actors
    assert from_env.models == from_file.models
    assert from_env.max_in_flight == from_file.max_in_flight


# --- KubeRay manifests -----------------------------------------------------------------------------------


def test_raycluster_has_the_fields_kuberay_requires() -> None:
    cluster = one("raycluster.yaml", "RayCluster")
    assert cluster["apiVersion"] == "ray.io/v1"
    assert cluster["metadata"]["name"]
    spec = cluster["spec"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", spec["rayVersion"])
    head = spec["headGroupSpec"]
    assert isinstance(head["rayStartParams"], dict)
    head_container = head["template"]["spec"]["containers"][0]
    assert head_container["image"]
    ports = {p["name"]: p["containerPort"] for p in head_container["ports"]}
    assert ports == {"gcs-server": 6379, "dashboard": 8265, "client": 10001}
    assert head["rayStartParams"].get("num-gpus") == "0" and head["rayStartParams"].get("num-cpus") == "0"
    groups = spec["workerGroupSpecs"]
    assert len({g["groupName"] for g in groups}) == len(groups) >= 2
    for group in groups:
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        assert isinstance(group["rayStartParams"], dict)
        assert group["template"]["spec"]["containers"][0]["image"]
    # rayStartParams are strings to KubeRay (map[string]string).
    for params in [head["rayStartParams"], *(g["rayStartParams"] for g in groups)]:
        assert all(isinstance(v, str) for v in params.values())


def test_raycluster_gpu_group_asks_for_gpus_on_gpu_nodes_and_cpu_group_does_not() -> None:
    groups = {g["groupName"]: g for g in one("raycluster.yaml", "RayCluster")["spec"]["workerGroupSpecs"]}
    gpu_pod = groups["gpu"]["template"]["spec"]
    gpu_container = gpu_pod["containers"][0]
    assert gpu_limit(gpu_container) >= 1
    assert gpu_pod.get("nodeSelector") or gpu_pod.get("affinity")
    assert any(t["key"] == "nvidia.com/gpu" for t in gpu_pod["tolerations"])
    assert gpu_limit(groups["cpu"]["template"]["spec"]["containers"][0]) == 0
    # Models come from the shared cache volume: HF_HOME sits inside the mounted claim.
    env = {e["name"]: e.get("value") for e in gpu_container["env"]}
    mounts = {m["name"]: m["mountPath"] for m in gpu_container["volumeMounts"]}
    claim = next(v for v in gpu_pod["volumes"] if "persistentVolumeClaim" in v)
    assert env["HF_HOME"].startswith(mounts[claim["name"]] + "/")
    pvc = one("model-cache.yaml", "PersistentVolumeClaim")
    assert claim["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    assert "ReadWriteMany" in pvc["spec"]["accessModes"]


def test_kuberay_token_auth_on_and_dashboard_not_exposed() -> None:
    cluster = one("raycluster.yaml", "RayCluster")
    assert cluster["spec"]["authOptions"]["mode"] == "token"
    assert cluster["spec"]["headGroupSpec"].get("serviceType", "ClusterIP") == "ClusterIP"
    assert not cluster["spec"]["headGroupSpec"].get("enableIngress", False)
    for name in ("raycluster.yaml", "rayjob.yaml", "model-cache.yaml"):
        for doc in manifests(name):
            assert doc["kind"] not in {"Ingress", "Secret"}, f"{name}: {doc['kind']}"
            if doc["kind"] == "Service":
                assert doc["spec"].get("type", "ClusterIP") == "ClusterIP"


def test_kuberay_secrets_come_only_from_secret_refs() -> None:
    cluster = one("raycluster.yaml", "RayCluster")
    secret_refs = set()
    for group, pod in pod_templates(cluster):
        for container in pod["containers"]:
            assert env_problems(container.get("env", [])) == [], group
            for source in container.get("envFrom", []):
                assert "configMapRef" not in source or not SECRET_NAME.search(str(source)), group
            for entry in container.get("env", []):
                ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    secret_refs.add(entry["name"])
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "GOOGLE_API_KEY"} <= secret_refs
    # The detector itself flags an inline key and a credential-shaped value.
    assert env_problems([{"name": "GOOGLE_API_KEY", "value": "x"}])
    assert env_problems([{"name": "AWS_SECRET_ACCESS_KEY"}])
    assert env_problems([{"name": "NOTE", "value": "AKIA" + "ABCDEFGHIJKLMNOP"}])
    for path in CLUSTER.rglob("*"):
        if path.is_file():
            assert not LEAKED_VALUE.search(path.read_text()), path


def test_all_ray_containers_run_this_versions_image() -> None:
    cluster = one("raycluster.yaml", "RayCluster")
    images = {c["image"] for _, pod in pod_templates(cluster) for c in pod["containers"]}
    assert len(images) == 1
    assert images.pop().endswith(f"/zray:{project_version()}")
    for _, pod in pod_templates(cluster):
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0


def test_rayjob_runs_zray_batch_against_s3_on_the_raycluster() -> None:
    job = one("rayjob.yaml", "RayJob")
    assert job["apiVersion"] == "ray.io/v1" and job["metadata"]["name"]
    spec = job["spec"]
    args = shlex.split(spec["entrypoint"])
    assert args[:2] == ["zray", "batch"]
    assert args[2].startswith("s3://")
    assert args[args.index("--output") + 1].startswith("s3://")
    assert args[args.index("--address") + 1] == "auto"
    # Scripts and outputs live under different prefixes, so run.json / batch.json are never read as scripts.
    assert not args[args.index("--output") + 1].startswith(args[2].rstrip("/") + "/")
    assert "rayClusterSpec" in spec or "clusterSelector" in spec
    if "clusterSelector" in spec:
        cluster_name = one("raycluster.yaml", "RayCluster")["metadata"]["name"]
        assert spec["clusterSelector"] == {"ray.io/cluster": cluster_name}


# --- the Dockerfile --------------------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with comments dropped and continuation lines joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        pending += line[:-1] + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            word, _, rest = pending.partition(" ")
            out.append((word.upper(), rest.strip()))
            pending = ""
    return out


def dockerfile_problems(text: str) -> list[str]:
    steps = dockerfile_instructions(text)
    problems = []
    first = next((word for word, _ in steps if word != "ARG"), None)
    if first != "FROM":
        problems.append("the first instruction is not FROM")
    for word, rest in steps:
        if word == "FROM":
            image = rest.split()[0]
            if ":" not in image or image.endswith(":latest"):
                problems.append(f"base image {image} is not pinned")
        if word in {"ENV", "ARG"}:
            names = re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)(?==|\s|$)", rest)
            problems += [f"{word} {n} looks like a secret" for n in names if SECRET_NAME.search(n)]
        if word in {"COPY", "ADD"} and re.search(r"(^|\s|/)(\.env|client_secret|token)[^\s]*", rest):
            problems.append(f"{word} {rest} copies credentials")
    users = [rest.split()[0] for word, rest in steps if word == "USER"]
    if not users or users[-1].split(":")[0] in {"root", "0"}:
        problems.append("the image runs as root")
    if not any(word == "RUN" and "zray[models" in rest for word, rest in steps):
        problems.append("zray[models...] is not installed")
    return problems


def test_dockerfile_lints_clean() -> None:
    text = DOCKERFILE.read_text()
    assert dockerfile_problems(text) == []
    steps = dockerfile_instructions(text)
    env = " ".join(rest for word, rest in steps if word == "ENV")
    assert "HF_HOME=" in env and "RAY_AUTH_MODE=token" in env
    assert "zray[models,cloud]" in next(rest for word, rest in steps if word == "RUN" and "zray[" in rest)


def test_dockerfile_linter_catches_the_mistakes_it_exists_for() -> None:
    good = DOCKERFILE.read_text()
    assert any("root" in p for p in dockerfile_problems(good + "\nUSER root\n"))
    assert any("GOOGLE_API_KEY" in p for p in dockerfile_problems(good + "\nENV GOOGLE_API_KEY=abc\n"))
    assert any(
        "AWS_SECRET" in p for p in dockerfile_problems(good + "\nENV A=1 \\\n  AWS_SECRET_ACCESS_KEY=x\n")
    )
    assert any("TOKEN" in p for p in dockerfile_problems(good + "\nARG HF_TOKEN\n"))
    assert any("credentials" in p for p in dockerfile_problems(good + "\nCOPY .env /home/ray/\n"))
    assert any("pinned" in p for p in dockerfile_problems(good.replace("2.60.0-py311-gpu", "latest")))
    assert any("zray[models" in p for p in dockerfile_problems(good.replace("zray[models", "zray[cloud")))


def test_dockerfile_copies_only_what_the_dockerignore_lets_through() -> None:
    patterns = [
        line.strip()
        for line in (CLUSTER / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    # An allow-list: everything is ignored, then only the package sources are let back in.
    assert patterns[0] == "*"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    assert not {a for a in allowed if a.startswith(".") or SECRET_NAME.search(a)}
    for word, rest in dockerfile_instructions(DOCKERFILE.read_text()):
        if word != "COPY" or "--from=" in rest:
            continue
        sources = [s for s in rest.split() if not s.startswith("--")][:-1]
        for source in sources:
            assert (ROOT / source).exists(), source
            assert source.rstrip("/") in allowed, f"{source} is ignored by Dockerfile.dockerignore"


# --- the walk-through's commands -------------------------------------------------------------------------


def readme_commands() -> list[list[str]]:
    """Every `ray ...`, `zray ...` and `kubectl exec ... -- zray ...` line in README's bash blocks."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            args = shlex.split(line, comments=True)
            if args and args[0] in {"ray", "zray"}:
                commands.append(args)
            elif args[:2] == ["kubectl", "exec"] and "--" in args:
                commands.append(args[args.index("--") + 1 :])
    return commands


def parse_with(group: Any, prog: str, args: list[str]) -> None:
    """Parse args with a click command tree as the real CLI would, without running anything."""
    command, rest = group, list(args)
    while hasattr(command, "commands") and rest and rest[0] in command.commands:
        prog, command, rest = rest[0], command.commands[rest[0]], rest[1:]
    assert not hasattr(command, "commands"), f"{args}: no such subcommand"
    command.make_context(prog, rest)


def check_zray_args(args: list[str]) -> None:
    import typer.main

    from zray.cli import app

    parse_with(typer.main.get_command(app), "zray", args)


def test_readme_commands_parse_with_the_real_ray_and_zray_clis(monkeypatch: pytest.MonkeyPatch) -> None:
    from ray.scripts.scripts import cli as ray_cli

    monkeypatch.chdir(ROOT)
    commands = readme_commands()
    zray_runs = []
    for args in commands:
        if args[0] == "ray":
            parse_with(ray_cli, "ray", args[1:])
            if args[1:3] == ["job", "submit"]:
                zray_runs.append(args[args.index("--") + 1 :])
                assert args[args.index("--address") + 1].startswith("http://127.0.0.1:")
        else:
            zray_runs.append(args)
    assert any(a[:2] == ["zray", "batch"] and "--address" in a for a in zray_runs)
    assert any(a[:2] == ["zray", "doctor"] for a in zray_runs)
    for args in zray_runs:
        check_zray_args(args[1:])
    for args in commands:
        if args[:3] == ["ray", "up", "cluster/ray-cluster.yaml"]:
            break
    else:
        pytest.fail("the README never runs `ray up cluster/ray-cluster.yaml`")


def test_rayjob_entrypoint_parses_with_the_zray_cli() -> None:
    args = shlex.split(one("rayjob.yaml", "RayJob")["spec"]["entrypoint"])
    check_zray_args(args[1:])
    with pytest.raises(Exception, match="no-such-flag"):
        check_zray_args([*args[1:], "--no-such-flag"])
