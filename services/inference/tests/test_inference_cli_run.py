"""`llm-engine run` against a standalone engine: one answer from an argument or from piped
stdin, `--format json`, the shell's /set parameter, /show and /load; and `library list` in an
80-column terminal keeps every model name and pull reference whole."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest

from loom_inference import library

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LLM_ENGINE = str(Path(sys.executable).parent / "llm-engine")


def _run(*args: str, stdin: str | None = None, columns: int = 200) -> subprocess.CompletedProcess:
    return subprocess.run([LLM_ENGINE, *args], input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": str(columns)})


def test_inference_cli_run_answers_once_from_argument_and_stdin(standalone_engine) -> None:
    host = ["--host", standalone_engine.base_url, "--temperature", "0", "--max-tokens", "8"]
    once = _run("run", "gemma3:270m", "Why is the sky blue?", *host)
    assert once.returncode == 0 and once.stdout.strip(), once.stdout + once.stderr
    piped = _run("run", "gemma3:270m", *host, stdin="Tell me a story about owls\n")
    assert piped.returncode == 0 and piped.stdout.strip(), piped.stdout + piped.stderr
    as_json = _run("run", "gemma3:270m", "Describe an owl", "--format", "json", "--host", standalone_engine.base_url,
                   "--temperature", "0", "--max-tokens", "40")
    assert as_json.returncode == 0 and as_json.stdout.lstrip().startswith("{"), as_json.stdout + as_json.stderr
    missing = _run("run", "nope:1b", "hi", "--host", standalone_engine.base_url)
    assert missing.returncode == 1 and "not found" in missing.stderr and not missing.stdout


def test_inference_cli_run_without_prompt_opens_the_shell_with_set_show_load(standalone_engine) -> None:
    child = pexpect.spawn(LLM_ENGINE, ["run", "gemma3:270m", "--host", standalone_engine.base_url],
                          encoding="utf-8", timeout=120, dimensions=(40, 200))
    child.expect(">>> ")
    child.sendline("/set parameter num_predict 3")
    child.expect("Set parameter 'num_predict' to '3'")
    child.sendline("/set parameter temperature warm")
    child.expect("needs a float")
    child.sendline("/set parameter temperature 0")
    child.expect("Set parameter")
    child.sendline("/show parameters")
    child.expect("num_predict 3")
    child.sendline("/show info")
    child.expect("gemma3")
    child.sendline("/load nope:1b")
    child.expect("Error: model 'nope:1b' not found")
    child.sendline("/load gemma3:270m")
    child.expect("Loading model 'gemma3:270m'")
    child.expect(">>> ")
    child.sendline("Hello there")
    child.expect(">>> ")
    child.sendline("/stats")
    child.expect(r"completion_tokens=(\d+)")
    assert 0 < int(child.match.group(1)) <= 3  # the /set num_predict reached the server
    child.expect(">>> ")
    child.sendline("/bye")
    child.expect(pexpect.EOF)


def test_inference_cli_library_list_in_80_columns_never_cuts_name_or_pull_reference(tmp_path) -> None:
    out = _run("library", "list", columns=80)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80 and "…" not in out.stdout
    for entry in library.CATALOG:
        row = next(line for line in lines if re.search(rf"│ {re.escape(entry.name)} +│", line))
        assert entry.source in row  # the pull reference whole, on the model's own row
    wide = _run("library", "list", columns=200).stdout
    assert "FAMILY" in wide and "VRAM" in wide  # wide enough: every column
