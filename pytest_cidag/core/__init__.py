"""Pure modules: no pytest (or xdist) import, so the controller, the workers and any
exporter can use them, and tests exercise them directly. tests/test_reports.py checks it."""
