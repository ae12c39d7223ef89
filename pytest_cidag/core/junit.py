"""What the GitHub tools that annotate a pull request from JUnit XML need to find a job's
file and line. Pure.

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
the valid XML pytest writes serves only dorny.
"""

from __future__ import annotations

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
