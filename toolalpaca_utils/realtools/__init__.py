"""Real tools: offline, executable APIs served on loopback, and a hand-written evaluation set.

Public API (imported lazily, so ``import toolalpaca_utils.realtools`` stays cheap)::

    create_app(), TOOLS                       # the FastAPI app and its tool catalogue
    serve_realtools(host, port, startup_timeout) -> base URL (context manager), RealToolsServer
    tool_specs(app=None, base_url=None)       # per-tool OpenAPI specs
    real_tool_records(base_url=None)          # ToolAlpaca-format tool records (source="real")
    load_real_eval(), eval_stats(items), to_toolalpaca_eval(items, records)
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "create_app": "app", "TOOLS": "app", "RealTool": "app",
    "serve_realtools": "server", "RealToolsServer": "server", "check_loopback": "server",
    "tool_specs": "records", "real_tool_records": "records",
    "load_real_eval": "evalset", "eval_stats": "evalset", "to_toolalpaca_eval": "evalset",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
