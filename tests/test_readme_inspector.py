"""The README's MCP Inspector block, run as written: `npx -y` in a shell with no terminal,
the server's default data folder under a fresh HOME, and the `ls` line finding the email.

`npx` runs offline from the machine's npm cache (no download in a test): when the
Inspector is not cached, or there is no Node, the test skips and says why. Only the
server command is made absolute (the README's `.venv/bin/reset-mcp` is this venv's).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the block's ls line is Linux's folder")


def readme_block() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Try it with the MCP Inspector", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    joined = block.replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_readme_inspector_block_runs_as_written(tmp_path: Path) -> None:
    if shutil.which("npx") is None:
        pytest.skip("no npx (Node) on this machine")
    commands = readme_block()
    assert all(c.startswith("npx -y ") for c in commands if c.startswith("npx"))  # -y: no prompt without a tty
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "npm_config_cache": os.environ.get("NPM_CONFIG_CACHE", str(Path.home() / ".npm")),
        "npm_config_offline": "true",
        "npm_config_update_notifier": "false",
    }
    server = str(Path(sys.executable).parent / "reset-mcp")
    outputs = []
    for command in commands:
        if command.startswith("npx") and "--cli" not in command:
            continue  # the browser UI: not for a test
        line = command.replace(".venv/bin/reset-mcp", server)
        done = subprocess.run(
            ["bash", "-c", line], cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=180,
        )  # fmt: skip
        if done.returncode != 0 and "ENOTCACHED" in done.stderr:
            pytest.skip("the Inspector is not in the npm cache (npx runs offline here)")
        assert done.returncode == 0, (line, done.stderr[-2000:])
        outputs.append((line, done.stdout))
    listed, called, prompt, policy, ls = (out for _, out in outputs)
    assert "request_password_reset" in {t["name"] for t in json.loads(listed)["tools"]}
    result = json.loads(called)
    assert result["isError"] is False and result["structuredContent"]["status"] == "sent"
    assert "check_reset_abuse" in json.loads(prompt)["messages"][0]["content"]["text"]
    assert json.loads(json.loads(policy)["contents"][0]["text"])["default_mode"] == "autonomous"
    assert [name for name in ls.split() if name.endswith(".eml")], ls
    assert not [p for p in tmp_path.iterdir() if p.name != "home"]  # nothing written where it ran
