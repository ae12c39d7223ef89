"""pytest-xdist glue: loaded only when xdist is, in runs with jobs."""
