"""What every row shares: settings for a benchmark App, request identities, statistics."""

from __future__ import annotations

import math
import os
import random
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reset_mcp.config import Settings, load_settings
from reset_mcp.flows.reset import ResetInput

SECRET = "bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz-0123"
UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
# Benchmarks send far more than the abuse limits allow a real user; each request still
# uses its own address, so no account ever crosses the abuse thresholds.
LIMITS = {
    "rate_limit_account_per_hour": 1_000_000, "rate_limit_ip_per_hour": 1_000_000, "caller_sends_per_hour": 1_000_000,
}  # fmt: skip


def server_pythonpath(root: Path) -> str:
    """PYTHONPATH for server subprocesses: the caller's first (to measure another checkout), then the repo."""
    return os.pathsep.join(p for p in (os.environ.get("PYTHONPATH", ""), str(root)) if p)


def bench_env(data_dir: Path, smtp_port: int, **extra: str) -> dict[str, str]:
    """RESET_MCP_* variables for a server subprocess (same values as `bench_settings`)."""
    env = {
        "RESET_MCP_DATA_DIR": str(data_dir),
        "RESET_MCP_SECRET": SECRET,
        "RESET_MCP_EMAIL_BACKEND": "smtp",
        "RESET_MCP_SMTP_HOST": "127.0.0.1",
        "RESET_MCP_SMTP_PORT": str(smtp_port),
        "RESET_MCP_SMTP_TLS": "none",
        "RESET_MCP_FROM_ADDRESS": "auth@bench.example.com",
        "RESET_MCP_PRODUCT_NAME": "Bench",
        "RESET_MCP_RATE_LIMIT_ACCOUNT_PER_HOUR": str(LIMITS["rate_limit_account_per_hour"]),
        "RESET_MCP_RATE_LIMIT_IP_PER_HOUR": str(LIMITS["rate_limit_ip_per_hour"]),
        "RESET_MCP_CALLER_SENDS_PER_HOUR": str(LIMITS["caller_sends_per_hour"]),
        "RESET_MCP_LOG_LEVEL": "WARNING",
    }
    env.update(extra)
    return env


def bench_settings(data_dir: Path, smtp_port: int, **over: Any) -> Settings:
    base: dict[str, Any] = {
        "data_dir": data_dir,
        "secret": SECRET,
        "email_backend": "smtp",
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_port,
        "smtp_tls": "none",
        "from_address": "auth@bench.example.com",
        "product_name": "Bench",
        "log_level": "WARNING",
        **LIMITS,
    }
    base.update(over)
    return load_settings(**base)


class Identities:
    """A fresh (email, user_id, ip) per request: the sink matches deliveries by recipient."""

    def __init__(self, tag: str, seed: int = 7) -> None:
        self.tag = tag
        self.rng = random.Random(seed)
        self.n = 0

    def next(self) -> tuple[str, str, str]:
        self.n += 1
        r = self.rng.randint
        ip = f"{r(11, 99)}.{r(0, 255)}.{r(0, 255)}.{r(1, 254)}"
        return f"{self.tag}-{self.n}-{os.getpid()}@bench.example.com", f"u-{self.tag}-{self.n}", ip

    def reset_input(self) -> ResetInput:
        email, user_id, ip = self.next()
        return ResetInput(email=email, user_id=user_id, ip=ip, user_agent=UA, name="Alex Bench")

    def tool_args(self) -> dict[str, Any]:
        email, user_id, ip = self.next()
        return {"email": email, "user_id": user_id, "ip": ip, "user_agent": UA, "name": "Alex Bench"}


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(latencies_s: Sequence[float], elapsed_s: float | None = None, count: int | None = None) -> dict[str, Any]:
    """Latencies in seconds in; milliseconds and rates out."""
    ms = [v * 1000 for v in latencies_s]
    out: dict[str, Any] = {"n": count if count is not None else len(ms)}
    if ms:
        out |= {
            "p50_ms": round(percentile(ms, 50), 3),
            "p95_ms": round(percentile(ms, 95), 3),
            "p99_ms": round(percentile(ms, 99), 3),
            "max_ms": round(max(ms), 3),
            "mean_ms": round(statistics.fmean(ms), 3),
        }
    if elapsed_s:
        out["per_s"] = round(out["n"] / elapsed_s, 1)
        out["elapsed_s"] = round(elapsed_s, 3)
    return out


def now() -> float:
    """The clock the sink stamps with (CLOCK_MONOTONIC, shared by all processes)."""
    return time.monotonic()
