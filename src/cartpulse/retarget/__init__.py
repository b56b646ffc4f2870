"""Abandoned-cart emails: customer directory, offers, signed links, rendering and sending."""
