"""#31's many-models figures: `measure` runs them (measure.py, with gaps.py and streams.py),
`section` and `targets` put them in BENCHMARKS.md (report.py)."""

from .measure import measure
from .report import section, targets

__all__ = ["measure", "section", "targets"]
