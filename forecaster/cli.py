"""The ``forecaster`` command line. Subcommands arrive with the worker, training and demo."""

from __future__ import annotations

import argparse
import sys

import forecaster


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="forecaster", description="Streaming neural time-series forecasting on Kafka.")
    p.add_argument("--version", action="version", version=f"forecaster {forecaster.__version__}")
    return p


def main(argv: list[str] | None = None) -> int:
    parser().parse_args(argv)
    parser().print_help(sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
