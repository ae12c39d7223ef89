"""What the GitHub tools that annotate a pull request from JUnit XML need to find a job's
file and line, and the two forms of JUnit XML that give it to them. Pure.

What each tool reads (from their sources; README "JUnit consumers" has the table):

* dorny/test-reporter (``reporter: python-xunit`` or ``java-junit``, the same parser):
  only a failure's text. ``JavaJunitParser.exceptionThrowSource`` takes the first line that
  looks like a Java stack frame, ``at <package>.<Class>...(<file name>:<line>)``, and
  ``getFilePath`` accepts it when a file git tracks has that name and its directories end
  with the package (the dotted parts before the first one that starts with a capital).
  :func:`frame` writes such a line into every failed job's report.
* EnricoMi/publish-unit-test-result-action: ``process_junit_xml_elems`` reads a testcase's
  ``file`` and ``line`` attributes; ``get_case_annotation`` annotates ``file`` (else the
  classname) at ``line`` (else 0). It never reads the failure's text.
* mikepenz/action-junit-report: ``createTestCaseAnnotation`` takes ``file`` and ``line``
  from the testcase (else from the failure, else from the testsuite);
  ``resolveFileAndLine`` falls back to the classname's last dotted part as the file
  (``sh`` for ``cijobs.build-wheel.sh``) and to a ``<file>...:<line>`` match in the text.

Jenkins' schema (``junit-10.xsd``) allows neither ``file`` nor ``line`` on a testcase, so
no XML is both valid there and complete for the last two: :class:`JunitForm` picks one.

A retried job's earlier attempts are Maven Surefire's elements, which that schema allows in
a testcase: ``<flakyFailure>`` for each failed attempt of a job that passed in the end,
``<rerunFailure>`` for each earlier attempt of one that did not (its last attempt is
pytest's ``<failure>``), each with the attempt's report as its ``<stackTrace>``.

pytest's junitxml writes neither attributes nor such elements, and under xdist only the
controller writes the XML, from the reports workers send. So what a job adds rides on its
report as user properties (:data:`CARRIERS`), and :func:`rewrite` turns them into
attributes and elements once pytest has written the file.
"""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from enum import StrEnum
from pathlib import Path


class JunitForm(StrEnum):
    """Which JUnit XML the run writes (ini ``cidag_junit_form``)."""

    JENKINS = "jenkins"  # pytest's own: valid against Jenkins' schema; dorny finds the job
    GITHUB = "github"  # each job's testcase also gets ``file`` and a 1-based ``line``


#: The job's file and line ride to the XML as user properties of its report (they cross
#: xdist's channel with it) and :func:`rewrite` turns them into attributes.
FILE_PROPERTY = "cidag_junit_file"
LINE_PROPERTY = "cidag_junit_line"
#: An earlier attempt of a retried job, as JSON (:func:`attempt_property`).
ATTEMPT_PROPERTY = "cidag_junit_attempt"
#: Every property :func:`rewrite` takes out of a testcase.
CARRIERS = frozenset({FILE_PROPERTY, LINE_PROPERTY, ATTEMPT_PROPERTY})
FLAKY_FAILURE = "flakyFailure"
RERUN_FAILURE = "rerunFailure"

#: The "class" of a job's frame: the first dotted part that starts with a capital ends the
#: package for dorny's ``getFilePath``, so the directories before it must not.
FRAME_CLASS = "Job"


def frame(path: str, line: int, job_id: str) -> str:
    """A Java-stack-frame-like line naming a job file and a 1-based line, for dorny's parser.

    ``frame("cijobs/build-wheel.sh", 3, "build-wheel")`` is
    ``"  at cijobs.Job.build-wheel(build-wheel.sh:3)"``: the directories as the package, the
    file's name in the parentheses. dorny finds files in a directory whose parts start with a
    lowercase letter and hold no dot (as Java packages do), not at the top of the checkout.
    """
    directory, _, name = path.rpartition("/")
    package = directory.replace("/", ".") + "." if directory else ""
    return f"  at {package}{FRAME_CLASS}.{job_id}({name}:{line})"


def properties(path: str, line: int) -> list[tuple[str, str]]:
    """The user properties that carry a job's file and 1-based line to the XML."""
    return [(FILE_PROPERTY, path), (LINE_PROPERTY, str(line))]


def attempt_property(element: str, message: str, kind: str, text: str) -> tuple[str, str]:
    """The user property that carries an earlier attempt to the XML: ``element`` is
    :data:`FLAKY_FAILURE` or :data:`RERUN_FAILURE`, ``kind`` its ``type`` (the attempt's
    outcome: failed, timeout), ``text`` its report."""
    if element not in (FLAKY_FAILURE, RERUN_FAILURE):
        raise ValueError(f"not an attempt's element: {element!r}")
    return ATTEMPT_PROPERTY, json.dumps({"element": element, "message": message, "type": kind, "text": text})


#: What XML 1.0 cannot hold (a log's ANSI escapes): written as pytest's junitxml writes it, ``#x1B``.
_NOT_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(text: str) -> str:
    return _NOT_XML.sub(lambda m: f"#x{ord(m.group()):02X}", text)


def _add_attempt(case: ET.Element, value: str) -> None:
    data = json.loads(value)
    if data.get("element") not in (FLAKY_FAILURE, RERUN_FAILURE):
        raise ValueError(f"{ATTEMPT_PROPERTY} names no attempt element: {value[:80]!r}")
    element = ET.SubElement(
        case, data["element"], message=_xml_text(str(data["message"])), type=_xml_text(str(data["type"]))
    )
    ET.SubElement(element, "stackTrace").text = _xml_text(str(data["text"]))


def rewrite(xml_path: Path) -> int:
    """Rewrite the JUnit file at ``xml_path``: each testcase's :data:`CARRIERS` become what
    they carry: the properties of :func:`properties` its ``file`` and ``line`` attributes,
    each of :func:`attempt_property` an element; the properties go (an emptied
    ``<properties>`` too). Returns how many testcases changed; ``ValueError`` for a carrier
    that holds no attempt.

    The file is replaced in one rename, so a reader sees the old or the new file, whole.
    """
    tree = ET.parse(xml_path)
    changed = 0
    for case in tree.iter("testcase"):
        holder = case.find("properties")
        if holder is None:
            continue
        ours = [p for p in holder.findall("property") if p.get("name") in CARRIERS]
        if not ours:
            continue
        for prop in ours:
            name, value = prop.get("name"), prop.get("value", "")
            if name == FILE_PROPERTY:
                case.set("file", value)
            elif name == LINE_PROPERTY:
                case.set("line", value)
            else:
                _add_attempt(case, value)
            holder.remove(prop)
        if len(holder) == 0:
            case.remove(holder)
        changed += 1
    if changed:
        temporary = xml_path.with_name(f".{xml_path.name}.{os.getpid()}.tmp")
        tree.write(temporary, encoding="utf-8", xml_declaration=True)
        temporary.replace(xml_path)
    return changed
