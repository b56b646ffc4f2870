"""Validation, quarantine reasons and duplicate removal."""
