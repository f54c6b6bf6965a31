"""Models: spec resolution and loading, and the packaged SmolLM2 conversion."""
