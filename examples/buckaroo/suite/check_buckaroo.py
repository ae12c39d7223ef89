"""A stand-in for buckaroo's Python test suite, run by the demo's test-python jobs (not a test_ file:
the demo project collects only its jobs)."""


def test_dataframe_summary() -> None:
    assert sum([1, 2, 3]) == 6


def test_column_types() -> None:
    assert {type(x).__name__ for x in (1, 1.0, "a")} == {"int", "float", "str"}


def test_widget_serialisation() -> None:
    assert "buckaroo".upper() == "BUCKAROO"
