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


# ------------------------------------------------------------------------------ scripts/gpu_smoke.sh
SMOKE = ROOT / "scripts" / "gpu_smoke.sh"


def _fake_bin(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / "bin" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def _smoke(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "SMOKE_DIR": "_build/gpu_smoke_test", **env}
    return subprocess.run(["bash", str(SMOKE), *args], capture_output=True, text=True, env=full, timeout=60)


def test_the_smoke_script_is_valid_bash():
    assert subprocess.run(["bash", "-n", str(SMOKE)], capture_output=True).returncode == 0
    assert os.access(SMOKE, os.X_OK)


def test_the_smoke_script_refuses_when_nvidia_smi_finds_no_gpu(tmp_path):
    _fake_bin(tmp_path, "nvidia-smi", "echo 'No devices were found'; exit 6")
    done = _smoke(tmp_path)
    assert done.returncode == 2, done.stderr
    assert "no GPU to run on: nvidia-smi -L finds no GPU" in done.stderr
    assert not (ROOT / "_build" / "gpu_smoke_test").exists()      # refused before doing anything


def test_the_smoke_script_refuses_without_nvidia_smi(tmp_path):
    if shutil.which("nvidia-smi", path="/usr/bin:/bin"):
        pytest.skip("this machine has nvidia-smi in /usr/bin or /bin")
    done = _smoke(tmp_path)
    assert done.returncode == 2 and "nvidia-smi is not on PATH" in done.stderr


def test_the_smoke_script_refuses_a_cpu_torch(tmp_path):
    """A GPU is listed, but the venv's torch cannot use it (the CPU wheel of `make setup`)."""
    _fake_bin(tmp_path, "nvidia-smi", "echo 'GPU 0: NVIDIA H200'")
    cpu_python = _fake_bin(tmp_path, "python", 'case "$2" in *is_available*) exit 1;; *) echo 2.13.0+cpu;; esac')
    done = _smoke(tmp_path, PY=str(cpu_python))
    assert done.returncode == 2, done.stderr
    assert "torch.cuda.is_available() is False" in done.stderr and "2.13.0+cpu" in done.stderr
    assert "make setup PROFILE=gpu" in done.stderr


def _normal(command: str) -> str:
    return " ".join(command.split())


@pytest.mark.parametrize("vllm", ["/bin/true", "/no/vllm"])
def test_book_gpu_md_shows_the_commands_the_smoke_script_runs(tmp_path, vllm):
    done = _smoke(tmp_path, "--dry-run", VLLM=vllm, SMOKE_DIR="_build/gpu_smoke")
    assert done.returncode == 0, done.stderr
    commands = [line[2:] for line in done.stdout.splitlines() if line.startswith("+ ")]
    assert any("toolalpaca_utils.book" in c for c in commands) and len(commands) >= 5
    documented = {_normal(line) for line in GPU_MD.replace("\\\n", " ").splitlines()}
    for command in commands:
        command = command.replace(vllm, ".venv-vllm/bin/vllm").replace(str(ROOT), "$PWD")
        if "gpu_smoke_profile.py" in command or "toolalpaca_utils.book" in command or "vllm serve" in command \
                or command.startswith(("grep", "curl", "rm ", "mkdir")):
            assert _normal(command) in documented, f"book/gpu.md lacks: {command}"


@pytest.mark.parametrize("small", [False, True])
def test_the_smoke_profile_is_the_gpu_profile_at_a_tiny_scale(tmp_path, small):
    out = tmp_path / "gpu_smoke.yaml"
    args = [str(ROOT / "scripts" / "gpu_smoke_profile.py"), "--out", str(out), "--teacher-endpoint", "embedded",
            "--teacher-model", "smollm2-135m-instruct", "--student-endpoint", "embedded",
            "--student-model", "smollm2-135m-instruct", "--dialect", "llama_cpp"] + (["--small-models"] if small else [])
    import sys

    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    from toolalpaca_utils.profiles import load_profile

    training = load_profile(str(out), "03_training")
    gpu = load_profile("gpu", "03_training")
    assert training["profile"] == "gpu_smoke" and training["max_train_steps"] == 3
    for key in ("bf16", "gradient_checkpointing", "attn_implementation", "lora_r", "target_modules", "learning_rate"):
        assert training[key] == gpu[key], key
    assert load_profile(str(out), "01_toolset")["n_tools"] == 3
    assert load_profile(str(out), "02_simulation")["strategy"] == ("call-first" if small else "instruction-first")
