"""Business rules: plain functions with keyword arguments that raise domain errors."""
