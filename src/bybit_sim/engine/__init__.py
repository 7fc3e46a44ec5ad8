"""The simulated exchange: instruments, price paths, synthetic books, matching, wallet, positions.

Everything here is synchronous and single-threaded: the HTTP/WebSocket layers call it from the
event loop, so no locks are needed and every operation is atomic with respect to others.
"""
