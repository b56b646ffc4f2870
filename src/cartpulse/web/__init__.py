"""The HTTP side: unsubscribe links now; collector and dashboard later."""
