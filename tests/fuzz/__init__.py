"""Fuzzing the decoder (a package so its conftest does not shadow tests/conftest.py)."""
