"""Getting models: discovery on disk, GGUF conversion and its cache, the memory plan, loading."""
