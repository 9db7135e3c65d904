"""Sales pipelines: ordered stages, each open, won or lost; `sales` is there from the start."""
