"""Imports point one way: the library never imports Kafka or the workers (DESIGN.md)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import forecaster

FORBIDDEN = ("workers", "kafka")


def test_no_module_of_the_library_names_kafka_or_the_workers() -> None:
    offenders = []
    for path in Path(forecaster.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []


def test_the_library_runs_without_loading_them() -> None:
    code = (
        "import sys, forecaster\n"
        "fc = forecaster.build('lstm', device='cpu')\n"
        "fc.update([{'stream': 'a', 'ts': 1.0, 'value': 2.0}])\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'workers', 'kafka'}))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
