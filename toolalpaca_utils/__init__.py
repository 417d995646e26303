"""ToolAlpaca and STE as a reproducible notebook book: the package every notebook imports.

Data flows one way, one module per stage, stages exchanging files under ``runs/<profile>/``:
catalogue → toolset → simulation (corpus) → training → evaluation → diversity, and STE on the
real tools. Shared pieces: ``llm`` (models, server, client, cache), ``openapi`` (tool records),
``react`` (prompt and parser), ``agents`` (user/assistant/executor), ``runs`` (manifests, JSONL,
fingerprints, resume), ``parallel`` (work items in parallel, each result kept at once),
``endpoint`` (a failing teacher endpoint: retried with back-off, never a reject, the stage stopped
after a few items in a row), ``procs`` (local services: started, health-checked, always stopped).
"""
__version__ = "0.1.0"
