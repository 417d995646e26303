"""Setup smoke check: can this machine's llama.cpp build generate with the embedded model?

``python -m toolalpaca_utils.llm.smoke`` (the last step of ``make setup``) loads the embedded
GGUF in a child process and generates a few tokens. A child that dies by a signal, exits with an
error or hangs fails the check with a message that names the cause and the command that fixes it,
so a broken engine build stops setup instead of surfacing later as "connection refused".
Why a child: a natively built ``libggml-cpu.so`` dies with a general-protection fault (SIGSEGV)
inside generation on AVX-512/AMX CPUs, which would take the checking process down with it.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from typing import Sequence

from ..procs import describe_exit
from .registry import DEFAULT_MODEL
from .server import REBUILD_HINT


class EngineSmokeError(RuntimeError):
    """The llama.cpp engine could not load the model and generate."""


def child_command(model: str = DEFAULT_MODEL, n_tokens: int = 4) -> list[str]:
    """The child that loads ``model`` in llama.cpp and generates ``n_tokens`` greedily."""
    return [sys.executable, "-m", "toolalpaca_utils.llm.smoke", "--child", "--model", model,
            "--tokens", str(n_tokens)]


def run_smoke(cmd: Sequence[str] | None = None, timeout: float = 120.0) -> str:
    """Run the smoke child and return what it generated; :class:`EngineSmokeError` on a crash,
    an error exit or a hang past ``timeout`` seconds."""
    cmd = list(cmd or child_command())
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        tail = (exc.stderr or b"")[-1500:]
        tail = tail.decode(errors="replace") if isinstance(tail, bytes) else tail
        raise EngineSmokeError(
            f"the llama.cpp engine did not generate within {timeout:.0f}s (hung); stderr tail:\n{tail}\n"
            f"cause: the llama-cpp-python build; fix: {REBUILD_HINT}") from None
    if done.returncode != 0:
        raise EngineSmokeError(
            f"the llama.cpp engine crashed while generating ({describe_exit(done.returncode)}); "
            f"stderr tail:\n{done.stderr[-1500:]}\n"
            f"cause: the llama-cpp-python build (a native build dies on AVX-512/AMX CPUs); fix: {REBUILD_HINT}")
    return done.stdout.strip()


def _child(model: str, n_tokens: int) -> None:
    from llama_cpp import Llama

    from .registry import resolve_model
    from .served_weights import served_gguf

    llm = Llama(model_path=str(served_gguf(resolve_model(model))), n_ctx=256, n_threads=1, verbose=False)
    out = llm.create_completion("The capital of France is", max_tokens=n_tokens, temperature=0.0)
    print(out["choices"][0]["text"])


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--tokens", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=120.0)
    args = ap.parse_args(argv)
    if args.child:
        _child(args.model, args.tokens)
        return 0
    try:
        text = run_smoke(child_command(args.model, args.tokens), args.timeout)
    except EngineSmokeError as exc:
        print(f"engine smoke check FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"engine smoke check passed: {args.model} generated {text!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
