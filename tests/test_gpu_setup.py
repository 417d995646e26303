"""The GPU box path, checked without a GPU: the accelerate config files, the smoke script's
refusal and its profile, and that book/gpu.md shows the commands the script runs."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
ACCELERATE = ROOT / "configs" / "accelerate"
GPU_MD = (ROOT / "book" / "gpu.md").read_text()


@pytest.mark.parametrize("name", ["ddp", "fsdp", "deepspeed_zero2"])
def test_accelerate_config_is_one_accelerate_reads_and_gpu_md_launches(name):
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import launch_command_parser

    path = ACCELERATE / f"{name}.yaml"
    config = load_config_from_file(str(path)).to_dict()
    dests = {a.dest for a in launch_command_parser()._actions}
    nested = [*(config.get("fsdp_config") or {}), *(config.get("deepspeed_config") or {})]
    assert [k for k in nested if k not in dests] == []          # every key reaches `accelerate launch`
    assert config["mixed_precision"] == "bf16"
    assert f"accelerate launch --config_file configs/accelerate/{name}.yaml -m toolalpaca_utils.training" in GPU_MD


def test_deepspeed_accumulation_matches_the_gpu_profile():
    """DeepSpeed takes gradient_accumulation_steps from its own config: it must be the profile's."""
    from toolalpaca_utils.profiles import load_profile

    ds = yaml.safe_load((ACCELERATE / "deepspeed_zero2.yaml").read_text())["deepspeed_config"]
    assert ds["gradient_accumulation_steps"] == load_profile("gpu", "03_training")["grad_accum"]
