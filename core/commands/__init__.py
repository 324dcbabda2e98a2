"""One module per CLI command (see core/__main__.py)."""
