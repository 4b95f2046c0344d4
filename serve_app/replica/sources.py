"""Model sources: where weights come from, and turning them into a local HF directory.

A source is one of: a local Hugging Face directory, a local .gguf file,
`package:<pkg>/<path>` (weights shipped inside an installed Python package), a
Hugging Face Hub id, or `simulated` (no weights: the simulated engine). GGUF files are de-quantized once and kept as safetensors in a
cache directory, because de-quantizing takes many seconds and loading the
converted copy about one.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

logger = logging.getLogger("ray.serve")

PACKAGE_PREFIX = "package:"
SIMULATED_SOURCE = "simulated"


class ModelSourceError(RuntimeError):
    """A model source that cannot be found or loaded; the message names the source."""


@dataclass(frozen=True)
class ResolvedSource:
    kind: Literal["hf_dir", "gguf", "hub", "simulated"]
    location: str  # a directory, a .gguf file, or a hub repo id

    @property
    def exists_locally(self) -> bool:
        return self.kind != "hub" and os.path.exists(self.location)


def _package_path(source: str) -> Path:
    package, _, inner = source[len(PACKAGE_PREFIX) :].partition("/")
    spec = importlib.util.find_spec(package) if package else None
    if spec is None or not spec.submodule_search_locations:
        raise ModelSourceError(
            f"model source '{source}': Python package '{package}' is not installed"
        )
    return Path(next(iter(spec.submodule_search_locations))) / inner


def resolve(source: str) -> ResolvedSource:
    """Classify a source without loading anything. Raises ModelSourceError."""
    if source == SIMULATED_SOURCE:
        return ResolvedSource("simulated", source)
    if source.startswith(PACKAGE_PREFIX):
        path = _package_path(source)
    else:
        path = Path(source).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelSourceError(f"model source '{source}': GGUF file {path} does not exist")
        return ResolvedSource("gguf", str(path))
    if path.is_dir():
        return ResolvedSource("hf_dir", str(path))
    if source.startswith(PACKAGE_PREFIX) or source.startswith(("/", ".", "~")) or source.count("/") != 1:
        raise ModelSourceError(f"model source '{source}': {path} does not exist")
    return ResolvedSource("hub", source)


def source_exists(source: str) -> bool:
    try:
        return resolve(source).exists_locally
    except ModelSourceError:
        return False


def local_dir(source: str, cache_dir: str) -> tuple[str, str | None]:
    """A local directory for `source` and, for GGUF, the file name inside it.

    Hub ids are fetched once into the Hugging Face cache; an unreachable hub fails
    fast with an error that names the source.
    """
    resolved = resolve(source)
    if resolved.kind == "simulated":
        raise ModelSourceError(f"model source '{source}' has no weights: only an llm with engine 'simulated' takes it")
    if resolved.kind == "hf_dir":
        return resolved.location, None
    if resolved.kind == "gguf":
        path = Path(resolved.location)
        return str(path.parent), path.name
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(resolved.location, etag_timeout=10), None
    except Exception as exc:  # every hub failure becomes one clear load error
        raise ModelSourceError(
            f"model source '{source}' could not be fetched from the Hugging Face Hub: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def converted_gguf_dir(gguf_path: str, cache_dir: str) -> Path:
    """Cache location of a GGUF file's converted copy, keyed by path, size and mtime."""
    st = os.stat(gguf_path)
    key = hashlib.sha256(f"{os.path.realpath(gguf_path)}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    return Path(cache_dir) / "converted" / f"{Path(gguf_path).stem}-{key}"


def convert_gguf(directory: str, gguf_file: str, cache_dir: str, trust_remote_code: bool) -> str:
    """De-quantize a GGUF checkpoint once; later calls return the cached safetensors copy.

    Replicas that start together on one node (and the test lanes on one machine) would each
    convert it, about 20 s of a core for the default model here: the first takes a lock beside
    the copy and converts, the others wait on that lock and then load its copy."""
    target = converted_gguf_dir(os.path.join(directory, gguf_file), cache_dir)
    if (target / "config.json").is_file():
        return str(target)
    from serve_app.replica import progress

    progress.report(progress.CONVERTING)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # let go when closed, or when the process dies
        if not (target / "config.json").is_file():
            _convert(directory, gguf_file, target, trust_remote_code)
    progress.report(progress.LOADING)
    return str(target)


def _convert(directory: str, gguf_file: str, target: Path, trust_remote_code: bool) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("converting GGUF %s/%s into %s (one time)", directory, gguf_file, target)
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=gguf_file, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(
            directory, gguf_file=gguf_file, dtype="float32", trust_remote_code=trust_remote_code
        )
    except Exception as exc:
        raise ModelSourceError(f"GGUF file {directory}/{gguf_file} could not be loaded: {exc}") from exc
    # transformers refuses to save a model that still carries its GGUF quantizer; the
    # weights are already de-quantized, so dropping it yields a plain checkpoint.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = tempfile.mkdtemp(dir=target.parent, prefix=".tmp-")
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.rename(tmp, target)  # atomic: a crash mid-save never leaves half a copy at target
    except OSError:  # another host sharing the cache over a filesystem without flock got there first
        if not (target / "config.json").is_file():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def hf_format_dir(source: str, cache_dir: str, trust_remote_code: bool) -> str:
    """A local Hugging Face directory for `source`: GGUF sources give their converted copy."""
    directory, gguf_file = local_dir(source, cache_dir)
    if gguf_file:
        directory = convert_gguf(directory, gguf_file, cache_dir, trust_remote_code)
    return directory
