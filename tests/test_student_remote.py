"""The gpu profile's student path without a GPU: :func:`open_student` with an http endpoint, against
tests/vllm_standin.py (an OpenAI-compatible stand-in of ``vllm serve --enable-lora``), then
:func:`evaluate` in both decoding modes. The stand-in logs every request, so the tests check what
a real vLLM server would be sent: the adapter registered once through ``/v1/load_lora_adapter``
with an absolute path, every chat naming the adapter as its ``model``, and constrained steps sent
as ``response_format`` ``json_schema`` with one ``anyOf`` branch per function."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from toolalpaca_utils.evaluation import EvalItem, evaluate
from toolalpaca_utils.llm import LLMRequestError, StudentServeError, open_chat, open_student
from toolalpaca_utils.procs import Service, free_port

TESTS = Path(__file__).parent
BASE = "HuggingFaceTB/SmolLM2-135M-Instruct"
CHAT, LOAD, MODELS = "/v1/chat/completions", "/v1/load_lora_adapter", "/v1/models"


class VllmStandIn(Service):
    """tests/vllm_standin.py on a free loopback port, its request log in ``log_path``."""

    def __init__(self, tmp: Path, *extra: str):
        super().__init__("vLLM stand-in", startup_timeout=30.0, poll=0.05)
        self.port = free_port()
        self.request_log = tmp / f"requests-{self.port}.jsonl"
        self.launch([sys.executable, str(TESTS / "vllm_standin.py"), "--port", str(self.port),
                     "--log", str(self.request_log), "--base", BASE, *extra],
                    log_path=tmp / f"vllm-standin-{self.port}.log", health_url=f"http://127.0.0.1:{self.port}/health")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def requests(self, path: str | None = None) -> list[dict]:
        """The bodies of the requests received so far (to ``path`` only, when given)."""
        if not self.request_log.is_file():
            return []
        rows = [json.loads(line) for line in self.request_log.read_text().splitlines() if line.strip()]
        return [r["body"] for r in rows if path is None or r["path"] == path]


@pytest.fixture
def vllm(tmp_path):
    """A factory of stand-ins (extra CLI arguments allowed), all stopped at the end of the test."""
    started: list[VllmStandIn] = []

    def start(*extra: str) -> VllmStandIn:
        server = VllmStandIn(tmp_path, *extra)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def write_adapter(out_dir: Path, r: int) -> Path:
    """A peft LoRA adapter (q_proj, rank ``r``) saved by peft itself, on a two-layer model of
    SmolLM2's architecture (Llama): what notebook 03 saves, minus the size."""
    import warnings

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1)
    model = AutoModelForCausalLM.from_config(config)
    with warnings.catch_warnings():  # transformers' deprecation notice, raised from inside peft
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        peft = get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, target_modules=["q_proj"],
                                                init_lora_weights=False))
        peft.save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="module")
def adapters(tmp_path_factory) -> tuple[Path, Path]:
    """Two tiny adapters, ranks 2 and 3 (written once for the module: about 5 s with the imports)."""
    root = tmp_path_factory.mktemp("adapters")
    return write_adapter(root / "one", 2), write_adapter(root / "two", 3)


@pytest.fixture(scope="module")
def real_tools():
    """Two real-tool records pointing at a dead port (a call fails: an observation, not an error)
    and one hand-made item for each."""
    from toolalpaca_utils.realtools import real_tool_records

    records = {r["Name"]: r for r in real_tool_records(base_url="http://127.0.0.1:9")}
    items = [
        EvalItem("t-1", "PublicHolidays", "What public holidays does Brazil have in 2025?",
                 [{"Action": "listPublicHolidays", "Action_Input": '{"country": "Brazil", "year": 2025}'}], "real"),
        EvalItem("t-2", "Calculator", "What is 12 times 7?", [], "real"),
    ]
    return items, {i.tool: records[i.tool] for i in items}


def tool_of(body: dict) -> str:
    """The tool a step request is about (the system turn names it)."""
    system = body["messages"][0]["content"]
    return system.split('access to the tool "', 1)[1].split('"', 1)[0]


def test_gpu_profile_student_registers_the_adapter_once_and_names_it_in_every_request(vllm, adapters, real_tools,
                                                                                      tmp_path):
    server = vllm()
    items, records = real_tools
    adapter = adapters[0]
    with open_student(BASE, adapters=adapter, name="fine-tuned", endpoint=server.url, dialect="openai",
                      work_dir=tmp_path / "served") as student:
        assert student.model == "fine-tuned" and student.dialect == "openai"
        free = evaluate(student, items, records, name="fine-tuned · free", mode="free", max_steps=3, progress=False)
        n_free = len(server.requests(CHAT))
        constrained = evaluate(student, items, records, name="fine-tuned · constrained", mode="constrained",
                               max_steps=3, progress=False)
    # a second run against the same server finds the name listed and does not register it again
    with open_student(BASE, adapters=adapter, name="fine-tuned", endpoint=server.url, dialect="openai",
                      work_dir=tmp_path / "served") as student:
        student.chat([{"role": "user", "content": "hello"}], max_tokens=8)

    loads = server.requests(LOAD)
    assert len(loads) == 1 and loads[0]["lora_name"] == "fine-tuned"
    assert Path(loads[0]["lora_path"]).is_absolute() and Path(loads[0]["lora_path"]) == adapter.resolve()
    assert len(server.requests(MODELS)) == 2  # each open_student looked at /models first

    chats = server.requests(CHAT)
    assert len(chats) > n_free > 0 and all(c["model"] == "fine-tuned" for c in chats)
    # free: plain ReAct text, no response_format
    assert all("response_format" not in c for c in chats[:n_free])
    # constrained: every step request carries the step schema as vLLM's structured output
    step_requests = chats[n_free:-1]
    assert step_requests
    for body in step_requests:
        fmt = body["response_format"]
        assert fmt["type"] == "json_schema"
        schema = fmt["json_schema"]["schema"]
        consts = {b["properties"]["action"]["const"] for b in schema["anyOf"] if "action" in b["properties"]}
        assert consts == set(records[tool_of(body)]["Function_Projection"]) | {"getDetails"}
        assert any("final_answer" in b["properties"] for b in schema["anyOf"])
    assert "response_format" not in chats[-1]  # the plain chat after the second open_student

    # the stand-in's answers went through the episodes: one call (failed over HTTP: the tool is
    # down), then the final answer, in both modes
    for run in (free, constrained):
        assert [r["id"] for r in run.rows] == ["t-1", "t-2"]
        for row in run.rows:
            assert row["stop_reason"] == "final answer", row
            first = row["steps"][0]
            assert first["action"] == next(iter(records[row["tool"]]["Function_Projection"]))
    # constrained calls are schema-valid (they reach the tool); the free ones send {} and are refused
    assert all(r["steps"][0]["error"].startswith("http") for r in constrained.rows)
    assert not any(r["steps"][0]["valid"] for r in free.rows)
    holidays = next(r for r in constrained.rows if r["tool"] == "PublicHolidays")
    assert holidays["metrics"]["api_match"] and holidays["metrics"]["well_formed"]


def test_a_stack_of_adapters_is_registered_as_one_peft_adapter_of_the_summed_rank(vllm, adapters, tmp_path):
    server = vllm()
    work = tmp_path / "served"
    with open_student(BASE, adapters=list(adapters), name="stacked", endpoint=server.url, dialect="openai",
                      work_dir=work) as student:
        reply = student.chat([{"role": "user", "content": "hello"}], max_tokens=8)
    assert reply.text
    loads = server.requests(LOAD)
    assert len(loads) == 1 and loads[0]["lora_name"] == "stacked"
    path = Path(loads[0]["lora_path"])
    assert path.is_absolute() and path == (work / "stacked-peft").resolve()
    config = json.loads((path / "adapter_config.json").read_text())
    ranks = [json.loads((a / "adapter_config.json").read_text())["r"] for a in adapters]
    assert config["peft_type"] == "LORA" and config["r"] == sum(ranks) == 5
    assert config["lora_alpha"] == config["r"]  # scaling 1: each adapter's own scaling is folded into B
    assert (path / "adapter_model.safetensors").is_file()
    assert [c["model"] for c in server.requests(CHAT)] == ["stacked"]

    import httpx

    listed = [m["id"] for m in httpx.get(f"{server.url}/models", timeout=5).json()["data"]]
    assert listed == [BASE, "stacked"]


def test_a_server_without_runtime_lora_loading_names_the_flags(vllm, adapters, tmp_path):
    server = vllm("--no-runtime-lora")  # vLLM without VLLM_ALLOW_RUNTIME_LORA_UPDATING: no such route
    with pytest.raises(StudentServeError, match="--enable-lora") as info:
        with open_student(BASE, adapters=adapters[0], name="fine-tuned", endpoint=server.url, dialect="openai",
                          work_dir=tmp_path / "served"):
            pass
    message = str(info.value)
    assert "404" in message and "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True" in message
    assert f"--lora-modules fine-tuned={adapters[0]}" in message
    assert server.requests(CHAT) == []


def test_an_adapter_the_server_cannot_load_is_refused_with_its_reason(vllm, tmp_path):
    server = vllm()
    empty = tmp_path / "not-an-adapter"
    empty.mkdir()
    with pytest.raises(StudentServeError, match="adapter_config.json"):
        with open_student(BASE, adapters=empty, name="fine-tuned", endpoint=server.url, dialect="openai",
                          work_dir=tmp_path / "served"):
            pass


def test_an_adapter_served_with_lora_modules_is_used_as_is(vllm, adapters, tmp_path):
    """``vllm serve ... --lora-modules fine-tuned=PATH``: the name is listed, nothing is registered."""
    server = vllm("--lora-modules", f"fine-tuned={adapters[0]}")
    with open_student(BASE, adapters=adapters[0], name="fine-tuned", endpoint=server.url, dialect="openai",
                      work_dir=tmp_path / "served") as student:
        student.chat([{"role": "user", "content": "hello"}], max_tokens=8)
    assert server.requests(LOAD) == [] and [c["model"] for c in server.requests(CHAT)] == ["fine-tuned"]


def test_the_base_model_is_served_under_its_own_name_and_an_unknown_model_is_a_404(vllm, tmp_path):
    server = vllm()
    with open_student(BASE, None, name="base", endpoint=server.url, dialect="openai") as student:
        assert student.model == BASE
        student.chat([{"role": "user", "content": "hello"}], max_tokens=8)
    assert server.requests(LOAD) == [] and server.requests(MODELS) == []
    with open_chat(server.url, "no-such-adapter", dialect="openai") as client:
        with pytest.raises(LLMRequestError) as info:
            client.chat([{"role": "user", "content": "hello"}], max_tokens=8)
    assert info.value.status_code == 404 and "no-such-adapter" in str(info.value)


def test_a_name_serving_another_adapter_is_replaced_not_reused(vllm, adapters, tmp_path):
    """A long-running server that serves an earlier run's adapter under the same name: it is
    unloaded and this adapter loaded, so the name never answers with a stale adapter."""
    server = vllm("--lora-modules", f"fine-tuned={adapters[1]}")
    with open_student(BASE, adapters=adapters[0], name="fine-tuned", endpoint=server.url, dialect="openai",
                      work_dir=tmp_path / "served"):
        pass
    assert [b["lora_name"] for b in server.requests("/v1/unload_lora_adapter")] == ["fine-tuned"]
    assert [b["lora_path"] for b in server.requests(LOAD)] == [str(Path(adapters[0]).resolve())]
    refusing = vllm("--lora-modules", f"fine-tuned={adapters[1]}", "--no-runtime-lora")
    with pytest.raises(StudentServeError, match="serves another adapter"):
        with open_student(BASE, adapters=adapters[0], name="fine-tuned", endpoint=refusing.url, dialect="openai",
                          work_dir=tmp_path / "served"):
            pass
