"""cluster.yaml passes Ray's own cluster-launcher validation (the schema `ray up` checks)."""

import copy
from pathlib import Path

import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]


def _config() -> dict:
    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


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
    assert "/mnt/shared" in setup and '".[gpu,model,test]"' in setup  # the project's own pins
    assert any("--dashboard-host=0.0.0.0" in c for c in config["head_start_ray_commands"])


def test_rays_validation_rejects_a_broken_copy():
    import jsonschema
    import pytest

    broken = _config()
    broken["available_node_types"]["head"]["node_config"] = "m5.large"  # must be a mapping
    with pytest.raises(jsonschema.ValidationError):
        validate_config(broken)
