"""EnricoMi/publish-unit-test-result-action's own parsing and annotation code on a JUnit file,
as its ``publish_test_results.parse_files`` and ``Publisher`` call it with the action's defaults.
Prints each annotation's path, line and title as JSON.

Usage: python enricomi.py CHECKOUT JUNIT_XML, with the checkout's python/requirements.txt
installed in that Python.
"""

import json
import sys

sys.path.insert(0, f"{sys.argv[1]}/python")

from publish import get_case_annotations
from publish.junit import parse_junit_xml_files, process_junit_xml_elems
from publish.unittestresults import get_test_results

elems = parse_junit_xml_files([sys.argv[2]], large_files=False, drop_testcases=False)
parsed = process_junit_xml_elems(elems, time_factor=1.0, test_file_prefix=None).with_commit("0" * 40)
results = get_test_results(parsed, dedup_classes_by_file_name=False)
annotations = get_case_annotations(results.case_results, report_individual_runs=False)
print(json.dumps([{"path": a.path, "line": a.start_line, "title": a.title} for a in annotations]))
