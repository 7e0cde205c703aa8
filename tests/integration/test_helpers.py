"""The integration tests' own helpers, where a mistake would hide a failure or invent one."""

from __future__ import annotations

from tests.integration.helpers import tracebacks

KAFKA_RACE = """\
2026-12-02 04:09:25,960 kafka.net.selector ERROR Unhandled exception in task <kafka.net.selector.Task>:
Traceback (most recent call last):
  File "selectors.py", line 192, in get_key
KeyError: '<socket.socket [closed] fd=-1> is not registered'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "selectors.py", line 238, in register
ValueError: Invalid file descriptor: -1
"""

OURS = """\
2026-12-02 04:09:26,001 workers.serve ERROR the batch failed
Traceback (most recent call last):
  File "engine.py", line 1, in step
RuntimeError: boom

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "serve.py", line 2, in run
RuntimeError: the worker stopped
"""


def test_a_kafka_python_record_with_a_chained_traceback_is_its_own_and_ours_are_found_once() -> None:
    assert tracebacks(KAFKA_RACE) == []  # kafka-python's closing race, chained: one record, left out
    assert tracebacks(OURS) == ["2026-12-02 04:09:26,001 workers.serve ERROR the batch failed"]
    assert tracebacks(KAFKA_RACE + OURS) == ["2026-12-02 04:09:26,001 workers.serve ERROR the batch failed"]
    assert tracebacks("Traceback (most recent call last):\nValueError\n") == [""]  # one with no record line
