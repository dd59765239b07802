"""cluster.yaml passes Ray's own cluster-launcher validation (the schema `ray up` checks) and has the
properties a first-time user needs: a pinned image that runs the project's pins, the EFS id set in one
place, the code shipped once, the dashboard on the head's localhost with token auth on, the HF token
copied to every node as a file (never in the job's runtime env), and hub models fetched once by the driver."""

import copy
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]


def _config() -> dict:
    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


def _readme_cluster_section() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme.split("## On a GPU cluster", 1)[1].split("\n## ", 1)[0]


def _pin(name: str) -> str:
    pyproject = (ROOT / "pyproject.toml").read_text()
    return re.search(rf'"{re.escape(name)}(?:\[[^\]]*\])?==([\d.]+)"', pyproject).group(1)


def test_cluster_yaml_passes_rays_validation():
    config = _config()
    validate_config(config)
    validate_config(prepare_config(copy.deepcopy(config)))  # after Ray fills in the AWS defaults


def test_cluster_has_gpu_workers_shared_storage_and_pinned_setup():
    config = _config()
    assert config["provider"]["type"] == "aws"
    workers = {k: v for k, v in config["available_node_types"].items() if k != config["head_node_type"]}
    assert all(v["node_config"]["InstanceType"].startswith(("g", "p")) for v in workers.values())
    setup = "\n".join(config["setup_commands"])
    assert '".[gpu,model,test]"' in setup and "cd ~/cft" in setup  # the project's own pins, from the mount


def test_image_is_pinned_to_the_projects_ray_and_its_vllm():
    """rayproject/ray-llm:<ray>-py312-cu130 ships the vLLM that ray[llm]==<ray> pins (0.29.0 for 2.60.0,
    the project's gpu extra), on CUDA 13.0; every node runs it, on one explicitly chosen AMI (Ray's
    default AWS AMI is an Ubuntu 18.04 / CUDA 11 one)."""
    config = _config()
    docker = config["docker"]
    assert docker["image"] == f"rayproject/ray-llm:{_pin('ray')}-py312-cu130"
    assert _pin("vllm") == "0.29.0" and not {"head_image", "worker_image"} & set(docker)
    amis = {t["node_config"].get("ImageId") for t in config["available_node_types"].values()}
    assert len(amis) == 1 and None not in amis
    text = (ROOT / "cluster.yaml").read_text()
    assert text.count("ImageId: &gpu_ami") == 1 and text.count("ImageId: ") == 3   # set once
    assert "base-oss-nvidia-driver-gpu-ubuntu-22.04" in text   # where its value comes from


def test_efs_is_set_in_one_place_and_mounted_on_the_host_into_the_container():
    config = _config()
    text = (ROOT / "cluster.yaml").read_text()
    assert "${" not in text   # nothing is left for a node's shell to expand
    assert len(re.findall(r"fs-[\w-]+\.efs\.", text)) == 1
    init = "\n".join(config["initialization_commands"])   # on the host, before the container starts
    assert re.search(r"mount -t nfs4 .*fs-[\w-]+\.efs\.us-west-2\.amazonaws\.com:/ /mnt/shared", init)
    assert not any("efs" in c for c in config["setup_commands"] + config["head_setup_commands"])
    run_options = config["docker"]["run_options"]
    assert "-v /mnt/shared:/mnt/shared" in run_options
    assert "-e HF_HOME=/mnt/shared/hf-cache" in run_options   # the models' one shared copy


def test_code_ships_once_and_the_job_runs_it_in_place():
    config = _config()
    assert config["file_mounts"]["~/cft"] == "."
    section = _readme_cluster_section()
    submit = section[section.index("ray job submit"):].split("\n\n")[0]
    assert "--working-dir" not in submit and "cd ~/cft && python -m orchestrator.sweep" in submit


def test_dashboard_on_the_heads_localhost_and_token_auth_on():
    config = _config()
    text = (ROOT / "cluster.yaml").read_text()
    assert "0.0.0.0" not in text
    head, worker = " ".join(config["head_start_ray_commands"]), " ".join(config["worker_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head
    assert "RAY_AUTH_MODE=token ray start --head" in head and "RAY_AUTH_MODE=token ray start --address" in worker
    assert "-e RAY_AUTH_MODE=token" in config["docker"]["run_options"]   # every process in the container
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"   # one token on every node
    section = _readme_cluster_section()
    before_submit = section[:section.index("ray job submit")]
    assert "ray get-auth-token" in before_submit and "RAY_AUTH_MODE=token" in before_submit
    assert "ray dashboard cluster.yaml" in before_submit


def test_hf_token_reaches_the_nodes_as_a_file_never_through_the_jobs_runtime_env():
    """Ray keeps a job's runtime env in its metadata and the runtime-env agent's log (issue 30), so the
    token travels like the Ray token: a file mount, and HF_TOKEN_PATH naming it in every container."""
    config = _config()
    section = _readme_cluster_section()
    submit = section[section.index("ray job submit"):].split("\n\n")[0]
    assert "HF_TOKEN" not in submit and "--runtime-env-json" not in submit
    assert config["file_mounts"]["~/.hf_token"] == "~/.cache/huggingface/token"
    assert "-e HF_TOKEN_PATH=~/.hf_token" in config["docker"]["run_options"]
    assert config["file_mounts_sync_continuously"] is False   # a laptop's edits never reach a running sweep


def test_rays_validation_rejects_a_broken_copy():
    import jsonschema

    broken = _config()
    broken["available_node_types"]["head"]["node_config"] = "m5.large"  # must be a mapping
    with pytest.raises(jsonschema.ValidationError):
        validate_config(broken)


def test_the_small_t4_cluster_is_a_valid_launcher_config_too():
    validate_config(prepare_config(yaml.safe_load((ROOT / "tests" / "data" / "cluster_g4dn_t4.yaml").read_text())))


# Models are downloaded once, by the sweep's driver (orchestrator.backend RayBackend.model_paths ->
# models.resolve.fetch_model), into the Hugging Face cache, which cluster.yaml puts on the EFS.

def test_aliases_and_local_paths_never_reach_the_hub(monkeypatch, tiny_model_dir):
    import huggingface_hub

    from models.resolve import fetch_model

    def no_network(*args, **kwargs):
        raise AssertionError("the hub was asked")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_network)
    assert fetch_model(tiny_model_dir) == str(Path(tiny_model_dir).resolve())
    assert (Path(fetch_model("tiny")) / "config.json").is_file()


def _run_offline(code: str, hf_home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    env.pop("HF_HUB_CACHE", None)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_a_hub_model_is_fetched_into_the_shared_cache_and_loaded_from_there(tmp_path):
    """A repository already in the cache (as the driver's first fetch leaves it) resolves to its local
    snapshot without the network; one that is not fails naming the model and the cache."""
    snapshot = tmp_path / "hub" / "models--org--cached-7B" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("a" * 40)
    code = ("from models.resolve import fetch_model, ModelNotFound\n"
            "print(fetch_model('org/cached-7B'))\n"
            "try:\n    fetch_model('org/not-cached-7B')\nexcept ModelNotFound as e:\n    print('ERR', e)\n")
    proc = _run_offline(code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    found, error = proc.stdout.strip().splitlines()[:2]
    assert Path(found) == snapshot
    assert error.startswith("ERR 'org/not-cached-7B' could not be fetched") and str(tmp_path / "hub") in error
