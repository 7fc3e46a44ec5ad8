"""Order Manager: Bybit V5 order execution service."""
