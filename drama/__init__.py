"""Drama (ICLR 2025) reproduction: Mamba-2 world model, DFS replay and imagination actor-critic."""

__version__ = "0.1.0"
