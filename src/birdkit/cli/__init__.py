"""Command-line shells: argument parsing only, each command in its own module calling library functions."""
