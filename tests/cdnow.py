"""The CDNOW reference sample and its published BG/NBD and Gamma-Gamma estimates."""

from __future__ import annotations

from tests.conftest import CDNOW_SUMMARY

__all__ = ["CDNOW_SUMMARY", "PUBLISHED"]

# Fader, Hardie & Lee (2005) and Fader & Hardie (2013), on the 39-week calibration period.
PUBLISHED = {
    "r": 0.243,
    "alpha": 4.414,
    "a": 0.793,
    "b": 2.426,
    "p": 6.25,
    "q": 3.74,
    "gamma": 15.44,
}
