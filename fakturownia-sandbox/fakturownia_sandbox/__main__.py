from __future__ import annotations

import argparse
import logging

from werkzeug.serving import run_simple

from fakturownia_sandbox.app import create_app


def main() -> None:
    parser = argparse.ArgumentParser(description="Fakturownia API stand-in")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8085)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    run_simple(args.host, args.port, create_app(), threaded=True)


if __name__ == "__main__":
    main()
