"""The README's first-screen examples, run as a reader would copy them: its curl commands
through curl itself and its Python through the openai and anthropic SDKs, against the
session's Serve."""

import re
import shutil
import subprocess

import pytest
from helpers import ROOT

FENCE = re.compile(r"```(\w+)\n(.*?)```", re.S)


def blocks(language: str) -> list[str]:
    return [body for lang, body in FENCE.findall((ROOT / "README.md").read_text()) if lang == language]


def curl_commands() -> list[str]:
    """Each curl command with its continuation lines; those needing a key ($...) are left out."""
    commands = []
    for body in blocks("bash"):
        command = ""
        for line in body.splitlines():
            command += line + "\n"
            # A command goes on past a trailing backslash or an open single quote (a JSON body over two lines).
            if line.endswith("\\") or command.count("'") % 2:
                continue
            if command.startswith("curl ") and "$" not in command:
                commands.append(command.strip())
            command = ""
    return commands


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("command", curl_commands())
def test_readme_curl_examples_answer_200(base_url, command):
    local = command.replace("localhost:8000", base_url.removeprefix("http://"))
    done = subprocess.run(f"{local} -s -o /dev/null -w '%{{http_code}}'", shell=True, capture_output=True, text=True,
                          timeout=120)
    assert done.stdout == "200", (command, done.stdout, done.stderr)


def test_readme_openai_examples_run(base_url):
    (code,) = [b for b in blocks("python") if "from openai import OpenAI" in b]
    namespace: dict = {}
    exec(code.replace("http://127.0.0.1:8000", base_url), namespace)  # raises on any error answer
    assert namespace["client"].base_url.host == "127.0.0.1"


def test_readme_anthropic_example_runs(base_url):
    (code,) = [b for b in blocks("python") if "import anthropic" in b]
    namespace: dict = {}
    exec(code.replace("http://127.0.0.1:8000", base_url).replace("anthropic.Anthropic(", "answer = anthropic.Anthropic(", 1),
         namespace)
    assert namespace["answer"].content[0].text


def test_the_readme_has_examples_to_run():
    assert len(curl_commands()) >= 2 and blocks("python")
