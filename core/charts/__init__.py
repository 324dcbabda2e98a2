"""Charts: dense, part-aware maps from output pixels to exemplar pixels (training-free engine v2)."""

from core.charts.base import ChartMap

__all__ = ["ChartMap"]
