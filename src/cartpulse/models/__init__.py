"""Models over the lake: customer lifetime value, demand forecast, purchase propensity."""
