"""``python -m toolalpaca_utils.realtools [--port N]``: serve the real tools on 127.0.0.1."""
from __future__ import annotations

import argparse
import os
import signal
import threading
import time


def _watch_parent(parent_pid: int) -> None:
    """Stop this server when the process that launched it is gone (e.g. a killed notebook kernel)."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGTERM)
            return


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    from .server import check_loopback

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        host = check_loopback(args.host)
    except ValueError as exc:
        parser.error(str(exc))
    if args.parent_pid:
        threading.Thread(target=_watch_parent, args=(args.parent_pid,), daemon=True).start()
    print(f"real tools on http://{host}:{args.port}  (docs: /docs, spec: /openapi.json)", flush=True)
    uvicorn.run("toolalpaca_utils.realtools.app:create_app", factory=True, host=host, port=args.port,
                log_level=args.log_level, access_log=False, timeout_graceful_shutdown=3)


if __name__ == "__main__":
    main()
