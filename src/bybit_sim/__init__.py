"""bybit_sim: a local Bybit V5 exchange simulator (REST, WebSockets, matching engine, faults)."""
