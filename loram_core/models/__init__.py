"""Models: spec resolution and loading, and the one-time conversion of GGUF files (the packaged SmolLM2 and
Gemma 3, or any file given as ``--model``)."""
