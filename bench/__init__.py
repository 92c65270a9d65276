"""Benchmarks for the chatbot service (run from the repository root)."""
