"""`python -m bybit_sim` runs the `bybit-sim` command line."""

from bybit_sim.cli import main

main()
