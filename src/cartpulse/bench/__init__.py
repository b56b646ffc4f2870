"""`cartpulse bench` scenarios."""
