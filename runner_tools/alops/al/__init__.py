"""Query strategies, streaming and sharded scoring, simulation with an oracle.

May import: alops.core, alops.data."""
