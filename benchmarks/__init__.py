"""Benchmarks: each script runs on its own (`.venv/bin/python benchmarks/<name>.py`). Being a package keeps
`benchmarks/mastodon.py` from shadowing the Mastodon.py library for the type checker."""
