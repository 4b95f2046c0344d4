"""The names a model may take: an application started through the API, and a LoRA adapter,
which is a model of its own to clients."""

import re

MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
