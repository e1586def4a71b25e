"""SMPP 3.4: the adapter that sends, the listener that holds the receiver bind, and what it reads."""
