"""HTTP routes: pinned, aggregated, fan-out and pass-through."""
