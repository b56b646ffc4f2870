"""The micro-batch stream engine: event log in, operators, serving store and lake out."""
