"""Allo: an AI-first omnichannel contact center for telecom operators."""

__version__ = "0.1.0"
