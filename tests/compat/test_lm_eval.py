"""lm-evaluation-harness (#33), unmodified, scoring the default SmolLM2 through our ingress
(its `local-completions` model: loglikelihood through `echo` with `logprobs` on
/v1/completions, and generate_until) and the same checkpoint in plain transformers in the same
process (its `hf` model): the two must agree.

Its tasks are defined here from local files (nothing from a hub). lm-eval runs from a venv of
its own (`make compat`: .venv-compat/lmeval), which takes torch and transformers from .venv
rather than downloading them again, through lm_eval_driver.py: both evaluations in one process
by lm-eval's Python API, which unlike its CLI can leave its thousands of built-in task files
unread (19 CPU-s at each CLI start here).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from adapters import base_dir
from helpers import LLM, ROOT

LM_EVAL_PYTHON = ROOT / ".venv-compat" / "lmeval" / "bin" / "python"
DRIVER = Path(__file__).with_name("lm_eval_driver.py")
# Questions whose answer a 135M model gets right or wrong by a margin (both happen here).
QUESTIONS = [
    ("What is the capital of France?", ["Paris", "London", "Rome", "Berlin"], 0),
    ("What color is the sky on a clear day?", ["green", "blue", "red", "black"], 1),
    ("How many legs does a spider have?", ["six", "four", "eight", "ten"], 2),
    ("What do bees make?", ["milk", "honey", "silk", "wax paper"], 1),
    ("Which is the largest planet?", ["Mars", "Venus", "Jupiter", "Mercury"], 2),
    ("What is two plus two?", ["three", "four", "five", "twenty-two"], 1),
]
TASKS = {
    "smmf_choice": {
        "output_type": "multiple_choice",
        "doc_to_text": "Question: {{question}}\nAnswer:",
        "doc_to_choice": "{{choices}}",
        "doc_to_target": "{{answer}}",
        "metric_list": [{"metric": "acc"}],
    },
    "smmf_answer": {
        "output_type": "generate_until",
        # One example first, so that the model answers in a word, as the target is.
        "doc_to_text": "Question: What is the color of snow?\nAnswer: white\n\nQuestion: {{question}}\nAnswer:",
        "doc_to_target": "{{choices[answer]}}",
        "generation_kwargs": {"until": ["\n", "."], "max_gen_toks": 12, "do_sample": False, "temperature": 0},
        "metric_list": [{"metric": "exact_match", "ignore_case": True, "ignore_punctuation": True}],
        "filter_list": [{"name": "strip", "filter": [{"function": "regex", "regex_pattern": r"\s*(.*)"},
                                                     {"function": "take_first"}]}],
    },
}


def write_tasks(directory: Path) -> None:
    data = directory / "questions.jsonl"
    data.write_text("".join(json.dumps({"question": q, "choices": c, "answer": a}) + "\n" for q, c, a in QUESTIONS))
    for name, spec in TASKS.items():
        task = {"task": name, "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(data)}},
                "test_split": "test", **spec}
        (directory / f"{name}.yaml").write_text(json.dumps(task))  # YAML reads JSON


def run_lm_eval(directory: Path, served_args: str, local_args: str) -> dict:
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    out = directory / "scores.json"
    done = subprocess.run([str(LM_EVAL_PYTHON), str(DRIVER), str(directory), served_args, local_args, str(out)],
                          capture_output=True, text=True, timeout=600, env=env, cwd=directory)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return json.loads(out.read_text())


def test_lm_evals_scores_through_our_api_equal_its_scores_of_the_same_checkpoint_in_transformers(base_url, tmp_path):
    assert LM_EVAL_PYTHON.exists(), f"{LM_EVAL_PYTHON} is missing: `make compat` builds it"
    write_tasks(tmp_path)
    checkpoint = base_dir()
    scores = run_lm_eval(tmp_path, f"model={LLM},base_url={base_url}/v1/completions,tokenizer={checkpoint},"
                                   "tokenizer_backend=huggingface,num_concurrent=1,max_retries=1",
                         f"pretrained={checkpoint},dtype=float32")
    served, local = scores["served"], scores["local"]
    assert set(served["results"]) == set(TASKS), "the driver ran the tasks written here, and only those"

    # The scores lm-eval reports, equal.
    for name, metric in (("smmf_choice", "acc,none"), ("smmf_answer", "exact_match,strip")):
        assert served["results"][name][metric] == local["results"][name][metric], (name, served["results"][name])
    assert 0 < served["results"]["smmf_choice"]["acc,none"], "every choice wrong: nothing was compared"
    assert 0 < served["results"]["smmf_answer"]["exact_match,strip"], "every answer wrong: nothing was compared"

    # Below them, each choice's loglikelihood within 1e-3 (float32 both; measured: within 1e-4), and each
    # generated answer the same text.
    for ours, theirs in zip(served["samples"]["smmf_choice"], local["samples"]["smmf_choice"]):
        assert ours["doc"] == theirs["doc"]
        for (a, greedy_a), (b, greedy_b) in zip((r[0] for r in ours["resps"]), (r[0] for r in theirs["resps"])):
            assert abs(float(a) - float(b)) <= 1e-3, (ours["doc"], a, b)
            assert greedy_a == greedy_b
    assert [s["resps"] for s in served["samples"]["smmf_answer"]] == [s["resps"] for s in local["samples"]["smmf_answer"]]
