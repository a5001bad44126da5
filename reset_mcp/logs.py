"""Logging: one format for every command and worker process, to stderr (stdout may carry MCP).

`where(exc)` names an exception by type and place, never by message: a driver's message
can quote what it was given (an email, link and all), so messages stay out of the logs
wherever the exception is not one of ours.

No log line carries a token, at any level: `install_redaction` (done by
`configure_logging`, so by every command and worker process) cleans every record as it is
made, whoever logs it and whichever handler writes it. The MCP SDK logs whole request
bodies at DEBUG (a `consume_reset_token` call holds the token), uvicorn logs request
lines (a client may put a link's query in one): JWT-shaped text and `token=` / `sig=`
values become `[redacted]` (`mail.redact.redact_text`), in the message, its arguments,
and a logged exception's traceback.
"""

from __future__ import annotations

import logging
import sys
import traceback
from typing import Any

from reset_mcp.mail.redact import redact_text


def configure_logging(level: str, *, worker: bool = False) -> None:
    install_redaction()
    who = " worker %(process)d" if worker else ""
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, level),
        format=f"%(asctime)s %(levelname)s %(name)s{who}: %(message)s",
    )


def where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    return type(exc).__name__ + (f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else "")


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """The record with tokens and secret link parameters taken out of all it will print."""
    message = record.getMessage()
    clean = redact_text(message)
    if clean != message:
        record.msg, record.args = clean, None
    if record.exc_info and not record.exc_text:
        # Formatted now, cleaned, and kept where every Formatter looks first.
        record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
    elif record.exc_text:
        record.exc_text = redact_text(record.exc_text)
    if record.stack_info:
        record.stack_info = redact_text(record.stack_info)
    return record


class _Redacting:
    """A log record factory that cleans each record the one before it makes."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        return redact_record(self.inner(*args, **kwargs))


def install_redaction() -> None:
    """Clean every log record this process makes (idempotent).

    A record factory rather than a handler's filter: it sees every record, whichever
    logger made it (filters on a logger miss its children's records) and whichever
    handler will write it (one added later, by an embedding application or by pytest).
    It runs only for records a logger's level lets through."""
    current = logging.getLogRecordFactory()
    if not isinstance(current, _Redacting):
        logging.setLogRecordFactory(_Redacting(current))
