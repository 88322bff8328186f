"""Test tooling: real servers as pytest fixtures."""
