"""birdkit: a BirdCLEF submission kit."""

__version__ = "0.1.0"
