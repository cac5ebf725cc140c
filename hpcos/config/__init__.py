"""Configuration management and monitoring repositories: branch status, gated promotion, merge-back, validation."""
