"""The embedded language understanding: text normalisation, hashed n-gram features, linear models."""
