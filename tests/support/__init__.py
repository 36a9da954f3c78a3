"""Test support: real services (PostgreSQL, Azurite) started for the test session."""
