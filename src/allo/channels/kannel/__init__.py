"""Kannel: the SMS gateway adapter and the configuration that points Kannel at Allo."""
