"""Runs instructor, unmodified, against the ingress (in its own venv, .venv-compat/instructor:
instructor pins an older openai SDK than ours). Usage: python instructor_driver.py BASE_URL MODEL OUT.
Writes, for each mode, the extracted object or the error, as JSON."""

import json
import sys

import instructor
import openai
from pydantic import BaseModel


class City(BaseModel):
    name: str
    country: str


def main(base_url: str, model: str, out: str) -> None:
    results = {"instructor": instructor.__version__, "openai": openai.__version__}
    for mode in (instructor.Mode.TOOLS, instructor.Mode.TOOLS_STRICT, instructor.Mode.JSON_SCHEMA):
        client = instructor.from_openai(openai.OpenAI(base_url=f"{base_url}/v1", api_key="none", max_retries=0),
                                        mode=mode)
        try:
            city = client.chat.completions.create(
                model=model, response_model=City, max_retries=0, temperature=0, max_tokens=64,
                messages=[{"role": "user", "content": "Paris is the capital of France. Extract the city."}])
            results[mode.name] = {"city": city.model_dump()}
        except Exception as exc:  # the test shows what failed, mode by mode
            results[mode.name] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
    with open(out, "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main(*sys.argv[1:4])
