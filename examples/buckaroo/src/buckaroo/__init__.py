"""The demo's Python sources (what the wheel is made of)."""


def summary(rows):
    return len(rows)
