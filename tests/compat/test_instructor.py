"""instructor (#33: strict typed clients), unmodified, extracting a pydantic model from the
default SmolLM2 through tool calls (`TOOLS`, `TOOLS_STRICT`) and through a JSON schema
(`JSON_SCHEMA`). It runs in a venv of its own (`make compat`): instructor pins an older openai
SDK than the one our other tests run."""

from __future__ import annotations

import json
import subprocess

from helpers import LLM, ROOT

VENV = ROOT / ".venv-compat" / "instructor" / "bin" / "python"
DRIVER = ROOT / "tests" / "compat" / "instructor_driver.py"


def test_instructor_extracts_a_typed_object_through_tools_and_through_a_json_schema(base_url, tmp_path):
    assert VENV.exists(), f"{VENV} is missing: `make compat` builds it"
    out = tmp_path / "instructor.json"
    done = subprocess.run([str(VENV), str(DRIVER), base_url, LLM, str(out)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    for mode in ("TOOLS", "TOOLS_STRICT", "JSON_SCHEMA"):
        assert "city" in results[mode], (mode, results[mode])
        city = results[mode]["city"]
        assert set(city) == {"name", "country"} and all(isinstance(v, str) and v for v in city.values()), city
