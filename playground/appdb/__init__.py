"""The app database's Django backend: PostgreSQL, health-checked without a round trip (base.py)."""
