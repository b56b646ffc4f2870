"""Readers that yield raw Arrow batches from files and streams."""
