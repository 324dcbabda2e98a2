"""Warpaint core: model, correspondence, conditions, training. Never imports a UI."""
