"""Structured logs (JSONL), metrics and alerts."""
