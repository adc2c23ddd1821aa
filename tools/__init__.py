"""Developer tools: synthetic test videos and benchmarks."""
