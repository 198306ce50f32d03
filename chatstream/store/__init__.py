"""The stream store."""
