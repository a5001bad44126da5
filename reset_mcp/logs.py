"""Logging: one format for every command and worker process, to stderr (stdout may carry MCP).

`where(exc)` names an exception by type and place, never by message: a driver's message
can quote what it was given (an email, link and all), so messages stay out of the logs
wherever the exception is not one of ours.
"""

from __future__ import annotations

import logging
import sys
import traceback


def configure_logging(level: str, *, worker: bool = False) -> None:
    who = " worker %(process)d" if worker else ""
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, level),
        format=f"%(asctime)s %(levelname)s %(name)s{who}: %(message)s",
    )


def where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    return type(exc).__name__ + (f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else "")
