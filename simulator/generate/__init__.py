"""Generation: the spec, the capture maker, the run and its worker processes and parallel backends."""
