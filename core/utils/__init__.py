"""Small helpers (flow pictures)."""
