"""Atari100k analysis: human-normalised scores, rliable aggregates, tables and figures."""
