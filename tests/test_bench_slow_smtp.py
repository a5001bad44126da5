"""Issue 21's bench row works: a slow sink (it answers each message after a delay), a real
server, every email delivered and counted at the sink, none twice. Not timed."""

from __future__ import annotations

import argparse

import pytest

from bench import slow_smtp
from bench.sink import SinkProcess

pytestmark = pytest.mark.slow


async def test_the_sink_answers_after_its_delay_and_the_row_counts_every_email() -> None:
    result = await slow_smtp.main(argparse.Namespace(n=24, delay=0.05, concurrency=8))
    assert result["answers"] == {"sent": 24}, result
    assert (result["accepted_at_sink"], result["unique_at_sink"], result["duplicates"]) == (24, 24, 0)
    assert result["all_delivered"] and result["outbox"] == {"sent": 24}
    assert result["p99_ms"] >= 50  # each call waited for its message's delayed answer


def test_the_delay_is_an_option_of_the_sink_process() -> None:
    with SinkProcess(0.2) as sink:
        assert sink.port and sink.control_port
