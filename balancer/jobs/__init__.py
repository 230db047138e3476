"""Jobs: prompt ids, submission and dispatch."""
