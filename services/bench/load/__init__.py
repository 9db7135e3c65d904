"""Load generators: `wrk` for closed-loop throughput, an open-loop generator for a fixed rate."""
