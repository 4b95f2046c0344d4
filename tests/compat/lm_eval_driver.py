"""lm-evaluation-harness, unmodified, scoring our ingress and the same checkpoint in plain
transformers; run inside lm-eval's own venv (.venv-compat/lmeval, `make compat`).

    python lm_eval_driver.py TASKS_DIR SERVED_MODEL_ARGS LOCAL_MODEL_ARGS OUT.json

Both evaluations run in this one process through lm-eval's Python API (`simple_evaluate`, as
its docs give it for scripts): its CLI indexes every built-in task (thousands of YAML files,
19 CPU-s here, measured 2026-12-07) at each start and has no flag to skip them, where the API
takes a TaskManager of the tasks in TASKS_DIR alone. The models are lm-eval's own classes,
named as on its command line: `local-completions` (our /v1/completions: loglikelihood through
`echo` with `logprobs`, and generate_until) and `hf`. It imports nothing of ours.
"""

from __future__ import annotations

import json
import sys

from lm_eval import simple_evaluate
from lm_eval.tasks import TaskManager


def evaluate(tasks: TaskManager, model: str, model_args: str, **more) -> dict:
    names = tasks.all_tasks
    # The seeds lm_eval's `--seed 0` sets.
    out = simple_evaluate(model=model, model_args=model_args, tasks=names, task_manager=tasks, batch_size=1,
                          log_samples=True, random_seed=0, numpy_random_seed=0, torch_random_seed=0,
                          fewshot_random_seed=0, **more)
    return {"results": out["results"], "samples": {name: out["samples"][name] for name in names}}


def main(tasks_dir: str, served_args: str, local_args: str, out: str) -> None:
    tasks = TaskManager(include_path=tasks_dir, include_defaults=False)
    scores = {"served": evaluate(tasks, "local-completions", served_args),
              "local": evaluate(tasks, "hf", local_args, device="cpu")}
    with open(out, "w") as f:
        json.dump(scores, f, default=str)


if __name__ == "__main__":
    main(*sys.argv[1:])
