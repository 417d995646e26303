#!/usr/bin/env python
"""Bounded load test of the real tools on loopback.

Starts the real-tools server on a free 127.0.0.1 port (or uses --base-url, which must be a
loopback URL), sends a fixed number of mixed valid/invalid GET requests with a fixed concurrency,
prints requests/s, the status histogram and p50/p95 latency, and exits (code 1 on any 5xx or
connection error).

    python scripts/realtools_load.py --requests 2000 --concurrency 16
"""
from __future__ import annotations

import argparse
import sys

from toolalpaca_utils.realtools.load import run_load
from toolalpaca_utils.realtools.server import serve_realtools


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="total requests (default 2000)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight (default 16)")
    parser.add_argument("--invalid-share", type=float, default=0.3, help="share of invalid requests (default 0.3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the request mix")
    parser.add_argument("--base-url", default=None, help="an already running loopback server (default: start one)")
    args = parser.parse_args(argv)
    if args.base_url:
        report = run_load(args.base_url, args.requests, args.concurrency, invalid_share=args.invalid_share, seed=args.seed)
    else:
        with serve_realtools() as base_url:
            print(f"server: {base_url}")
            report = run_load(base_url, args.requests, args.concurrency, invalid_share=args.invalid_share, seed=args.seed)
    print(report.summary())
    ok = report.server_errors == 0 and not report.errors
    print("OK: no 5xx, no connection errors" if ok else "FAIL: 5xx responses or connection errors")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
