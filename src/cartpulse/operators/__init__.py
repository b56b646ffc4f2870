"""Pure stream operators: Arrow tables and state in, new state and outputs out."""
