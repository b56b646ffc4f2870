"""Bot alerts: the outbox and its webhook delivery."""
