"""The stdio transport's writer (answers written on the event loop) and the span switch."""

from __future__ import annotations

import os

import anyio
import pytest
from opentelemetry import trace

from reset_mcp.server.mcp.server import build_server
from reset_mcp.server.mcp.tracing import apply_tracing, tracing_wanted
from reset_mcp.server.stdio import WRITE_SIZE, PipeWriter, _is_pipe


async def test_a_long_message_arrives_whole_and_a_stalled_reader_blocks_only_the_writer() -> None:
    read_fd, write_fd = os.pipe()
    try:
        message = "".join(chr(0x61 + i % 26) for i in range(300_000)) + "é\n"  # far over the pipe's buffer
        writer = PipeWriter(write_fd)
        ticks = 0
        received = bytearray()
        async with anyio.create_task_group() as tg:

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await anyio.sleep(0.005)

            tg.start_soon(ticker)
            done = anyio.Event()

            async def write() -> None:
                assert await writer.write(message) == len(message)
                await writer.flush()
                done.set()

            tg.start_soon(write)
            await anyio.sleep(0.2)  # nobody reads: the pipe fills, the writer waits
            assert not done.is_set()
            stalled_ticks = ticks
            assert stalled_ticks >= 10  # the loop went on while the writer waited
            while not done.is_set() or len(received) < len(message.encode()):
                await anyio.wait_readable(read_fd)
                received += os.read(read_fd, 65536)
            tg.cancel_scope.cancel()
        assert received.decode() == message
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_writes_are_at_most_what_a_writable_pipe_takes_without_blocking() -> None:
    assert 0 < WRITE_SIZE <= 4096


def test_only_a_pipe_is_written_on_the_loop(tmp_path) -> None:
    read_fd, write_fd = os.pipe()
    try:
        assert _is_pipe(write_fd)
    finally:
        os.close(read_fd)
        os.close(write_fd)
    with open(tmp_path / "f", "w") as f:
        assert not _is_pipe(f.fileno())


def test_tracing_setting_on_and_off_win_over_the_environment() -> None:
    assert tracing_wanted("on", environ={}) is True
    assert tracing_wanted("off", environ={"OTEL_TRACES_EXPORTER": "otlp"}) is False


@pytest.mark.parametrize(
    ("environ", "wanted"),
    [
        ({}, False),
        ({"OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
    ],
)
def test_auto_follows_the_exporter_variables(environ: dict[str, str], wanted: bool) -> None:
    # Nothing in the test process installs a tracer provider: the API's proxy is in place.
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    assert tracing_wanted("auto", environ=environ) is wanted


def test_auto_keeps_spans_when_a_tracer_provider_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    class Installed(trace.TracerProvider):
        def get_tracer(self, *args: object, **kwargs: object) -> trace.Tracer:
            return trace.NoOpTracer()

    monkeypatch.setattr(trace, "get_tracer_provider", lambda: Installed())
    assert tracing_wanted("auto", environ={}) is True


def _span_middleware(server: object) -> list[str]:
    return [type(m).__name__ for m in server.middleware if type(m).__name__ == "OpenTelemetryMiddleware"]  # type: ignore[attr-defined]


def test_the_server_drops_the_span_middleware_only_when_tracing_is_off() -> None:
    def no_app():  # type: ignore[no-untyped-def]
        raise AssertionError("not entered")

    assert _span_middleware(build_server(no_app, tracing="on")) == ["OpenTelemetryMiddleware"]
    assert _span_middleware(build_server(no_app, tracing="off")) == []
    server = build_server(no_app, tracing="on")
    assert apply_tracing(server, "off") is False
    assert _span_middleware(server) == []
