"""Parse a job file's metadata block into :class:`JobSpec` objects.

Pure: no pytest import. A job file is a script with an optional PEP 723 style block::

    #!/usr/bin/env bash
    # /// cidag
    # needs = ["build-js"]
    # timeout = 120
    # ///

The TOML inside the block is validated strictly; every problem is a :class:`JobSpecError`
that names the file and the line, so a user can fix it without reading a traceback.
"""

from __future__ import annotations

import difflib
import itertools
import math
import os
import re
import shlex
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

BLOCK_TYPE = "cidag"
OPEN_RE = re.compile(r"^#\s*///\s*(?P<type>[A-Za-z0-9-]+)\s*$")
CLOSE_RE = re.compile(r"^#\s*///\s*$")
#: A line a reader takes for the opening of a cidag block (indented, upper case, text after
#: it, a stray byte order mark): an error, so that no block is silently ignored.
LOOKALIKE_RE = re.compile(r"^[\s\ufeff]*#+\s*///\s*cidag(?![A-Za-z0-9-])", re.IGNORECASE)

#: Job names (and matrix values) must be usable in node ids, log file names and env vars.
#: Matched with ``fullmatch`` (``$`` would let a trailing newline through).
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MARKER_RE = IDENT_RE
ENV_NAME_RE = IDENT_RE

#: The run directory names a job's files after its id (items.py uses these suffixes).
LOG_SUFFIX = ".log"
OUTPUTS_SUFFIX = ".outputs"
#: A retried job's earlier attempts keep their logs as ``<id>@attempt<N>.log`` (its last
#: attempt's is ``<id>.log``). No job id holds an ``@``, so no job's file is another's.
ATTEMPT_MARK = "@attempt"
#: Most times a job is tried again (block ``retries``, ``--cidag-retries``).
MAX_RETRIES = 10
#: Longest wait between two attempts (block ``retry_delay``), seconds.
MAX_RETRY_DELAY = 3600


def attempt_log_name(job_id: str, number: int) -> str:
    """The name of attempt ``number``'s log once a later attempt has begun."""
    return f"{job_id}{ATTEMPT_MARK}{number}{LOG_SUFFIX}"


#: Longest job id (ASCII, so characters are bytes): its files' names must fit NAME_MAX (255).
LONGEST_SUFFIX = max((LOG_SUFFIX, OUTPUTS_SUFFIX, attempt_log_name("", MAX_RETRIES)), key=len)
MAX_ID_LENGTH = 255 - len(LONGEST_SUFFIX)

#: Legs a matrix job may have (GitHub Actions' cap on a matrix).
MAX_LEGS = 256

#: Seconds; a week is longer than any CI job should be allowed to hang.
MAX_TIMEOUT = 7 * 24 * 3600

KEYS: dict[str, str] = {
    "name": "the job's name (default: the file name without .sh)",
    "needs": "names of jobs that must pass before this one starts",
    "timeout": "seconds before the job's process tree is killed",
    "markers": "pytest markers for the job, for -m selection",
    "env": "extra environment variables, a table of strings",
    "matrix": "a table of lists; one job per combination",
    "cwd": "working directory, relative to the rootdir",
    "nice": "niceness (-20..19) the job runs with",
    "resources": "named resources; jobs holding a common one never run at the same time",
    "inputs": "gitignore-style globs of the files the job reads; with it, a pass is cached",
    "outputs": "globs of the files the job makes, stored with a cached pass and restored on a hit",
    "env_inputs": "names of environment variables whose values are part of the cache key",
    "retries": f"times a failed or timed-out job is run again (0-{MAX_RETRIES})",
    "retry_delay": "seconds to wait before each retry",
    "testcases": "true when the job narrows its test suite by CIDAG_TESTCASES (--cidag-first-testcases runs it first)",
}

#: Marks a first-pass item's id (``--cidag-first-testcases``): ``test@first[3.12]``, before
#: the leg, so ``::test@first`` selects every first-pass leg as ``::test`` selects the others.
FIRST_SUFFIX = "@first"


def is_first_pass_id(name: str) -> bool:
    """Whether an item's name is a first-pass job's (``test@first``, ``test@first[3.12]``)."""
    return name.split("[", 1)[0].endswith(FIRST_SUFFIX)


class JobSpecError(Exception):
    """A problem with a job file, located at ``path:line``."""

    def __init__(self, path: Path | str, line: int, message: str) -> None:
        self.path = Path(path)
        self.line = line
        self.message = message
        super().__init__(f"{path}:{line}: {message}")


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for a close match, else ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.6)
    if not close:
        return ""
    if len(close) == 1:
        return f" (did you mean '{close[0]}'?)"
    return " (did you mean " + " or ".join(f"'{c}'" for c in close) + "?)"


@dataclass(frozen=True)
class Block:
    """The raw metadata block: its TOML text and where it sits in the file (1-based lines)."""

    toml: str
    start: int  # line of "# /// cidag"
    end: int  # line of the closing "# ///"
    lines: tuple[str, ...]  # the TOML lines, line i is at file line start + 1 + i


def find_block(text: str, path: Path | str) -> Block | None:
    """Find the ``# /// cidag`` block in ``text``; ``None`` when there is none."""
    lines = text.splitlines()
    found: Block | None = None
    i = 0
    while i < len(lines):
        m = OPEN_RE.match(lines[i].rstrip())
        if not m or m.group("type") != BLOCK_TYPE:
            if LOOKALIKE_RE.match(lines[i]):
                raise JobSpecError(
                    path,
                    i + 1,
                    f"{lines[i].rstrip()!r} is not read as the start of a '# /// {BLOCK_TYPE}' block: "
                    f"write '# /// {BLOCK_TYPE}' alone on its line, unindented and in lower case",
                )
            i += 1
            continue
        if found is not None:
            raise JobSpecError(path, i + 1, f"a second '# /// {BLOCK_TYPE}' block (the first is at line {found.start})")
        start = i + 1
        body: list[str] = []
        i += 1
        while True:
            if i >= len(lines):
                raise JobSpecError(path, start, f"the '# /// {BLOCK_TYPE}' block is not closed: add a line '# ///'")
            line = lines[i].rstrip()
            if CLOSE_RE.match(line):
                break
            if line == "#":
                body.append("")
            elif line.startswith("# "):
                body.append(line[2:])
            else:
                raise JobSpecError(
                    path,
                    i + 1,
                    f"the '# /// {BLOCK_TYPE}' block opened at line {start} is not closed before "
                    "this line; every line of the block must start with '# ' and it ends with '# ///'",
                )
            i += 1
        found = Block("\n".join(body) + "\n", start, i + 1, tuple(body))
        i += 1
    return found


def _key_line(block: Block, key: str) -> int:
    """The file line where ``key`` is assigned in the block (the block's line if not found)."""
    pat = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*[=.]")
    for i, line in enumerate(block.lines):
        if pat.match(line):
            return block.start + 1 + i
    # a [table] header, e.g. [env]
    hdr = re.compile(rf"^\s*\[\s*[\"']?{re.escape(key)}[\"']?\s*\]")
    for i, line in enumerate(block.lines):
        if hdr.match(line):
            return block.start + 1 + i
    return block.start


def _type_name(value: object) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)


#: Fields of a :class:`JobSpec` that are not part of its cache key.
NOT_IN_KEY = frozenset({"path", "line", "retries", "retry_delay", "testcases"})


@dataclass(frozen=True)
class JobSpec:
    """One job as declared in one file (a matrix job is one spec with many legs).

    ``line`` is the 1-based line of the metadata block (1 when there is none), for IDEs.
    """

    path: Path
    name: str
    needs: tuple[str, ...] = ()
    timeout: float | None = None
    markers: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    matrix: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    cwd: str | None = None
    nice: int = 0
    resources: tuple[str, ...] = ()
    #: None: never cached; () caches on the script, block and needs alone
    inputs: tuple[str, ...] | None = None
    outputs: tuple[str, ...] = ()
    env_inputs: tuple[str, ...] = ()
    #: None: not set in the block (``--cidag-retries`` and the like decide)
    retries: int | None = None
    retry_delay: float | None = None
    #: It reads CIDAG_TESTCASES to narrow its suite: --cidag-first-testcases runs it first.
    testcases: bool = False
    line: int = 1

    @property
    def cacheable(self) -> bool:
        return self.inputs is not None

    def block_data(self) -> dict[str, Any]:
        """The resolved block, as plain data (part of a cache key): every field but where it
        is, how often it is tried (which changes how often it runs, not what it does), and
        ``testcases`` (it adds a first pass, whose key has its own CIDAG_TESTCASES)."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in NOT_IN_KEY}
        data["env"] = dict(sorted(self.env.items()))
        data["matrix"] = {k: list(v) for k, v in self.matrix.items()}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    def legs(self) -> list[JobLeg]:
        """The runnable instances: one per matrix combination, or one when there is no matrix."""
        if not self.matrix:
            return [JobLeg(self, self.name, {})]
        keys = list(self.matrix)
        legs = []
        for combo in itertools.product(*(self.matrix[k] for k in keys)):
            values = dict(zip(keys, combo, strict=True))
            legs.append(JobLeg(self, f"{self.name}[{'-'.join(combo)}]", values))
        return legs


@dataclass(frozen=True)
class JobLeg:
    """A runnable job: a spec plus one matrix combination. ``id`` is the test name."""

    spec: JobSpec
    id: str
    matrix_values: Mapping[str, str]

    @property
    def first_pass_id(self) -> str:
        """The id of this leg's first-pass item: ``test@first``, ``test@first[3.12]``."""
        return self.spec.name + FIRST_SUFFIX + self.id[len(self.spec.name) :]

    def environ(self) -> dict[str, str]:
        """Variables this leg adds to the caller's environment (before runtime ones)."""
        env = dict(self.spec.env)
        for key, value in self.matrix_values.items():
            env[f"CIDAG_MATRIX_{key.upper()}"] = value
        return env


def default_name(path: Path) -> str:
    return path.name[: -len(".sh")] if path.name.endswith(".sh") else path.name


def parse_text(text: str, path: Path, *, root: Path | None = None) -> JobSpec:
    """Parse a job file's text into a :class:`JobSpec`; raise :class:`JobSpecError`.

    With ``root`` (the rootdir), ``cwd`` must resolve (symlinks followed) to a path under it.

    A UTF-8 byte order mark at the start is skipped, as Python skips it before a PEP 723 block.
    """
    block = find_block(text.removeprefix("\ufeff"), path)
    if block is None:
        name = _check_name(default_name(path), path, 1, "file name")
        _check_id_length(name, {}, path, 1, "file name")
        return JobSpec(path=path, name=name)
    try:
        data = tomllib.loads(block.toml)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        line = block.start
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        if m:
            line = block.start + int(m.group(1))
            msg = msg[: m.start()].rstrip() + f" (column {int(m.group(2)) + 2})"
        elif "end of document" in msg:
            # point at the last line with content: that is where the unfinished value is
            filled = [i for i, text in enumerate(block.lines) if text.strip()]
            line = block.start + 1 + filled[-1] if filled else block.end
        raise JobSpecError(path, line, f"invalid TOML in the '{BLOCK_TYPE}' block: {msg}") from None
    return _validate(data, block, path, root)


def parse_file(path: Path, *, root: Path | None = None) -> JobSpec:
    """Read and parse ``path``. Undecodable bytes are replaced, not fatal."""
    text = path.read_bytes().decode("utf-8", errors="replace")
    return parse_text(text, path, root=root)


def is_under(cwd: str, root: Path) -> bool:
    """Whether ``root / cwd`` resolves (symlinks followed, missing parts kept) to ``root`` or below."""
    real_root = os.path.realpath(root)
    return Path(os.path.realpath(root / cwd)).is_relative_to(real_root)


def _check_name(name: str, path: Path, line: int, what: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise JobSpecError(
            path,
            line,
            f"{what} {name!r} is not a valid job name: use letters, digits and . _ + - "
            "(starting with a letter or digit)",
        )
    return name


def _check_id_length(name: str, matrix: Mapping[str, Sequence[str]], path: Path, line: int, fix: str) -> None:
    """The longest leg id must fit in the names of the run directory's files."""
    longest = name
    if matrix:
        longest += "[" + "-".join(max(values, key=len) for values in matrix.values()) + "]"
    if len(longest) > MAX_ID_LENGTH:
        raise JobSpecError(
            path,
            line,
            f"job id '{longest[:20]}...' is {len(longest)} characters long; at most {MAX_ID_LENGTH} are allowed, "
            f"as its files are named after it ('<id>{LONGEST_SUFFIX}' must fit in 255 bytes): shorten the {fix}",
        )


def _validate(data: dict[str, Any], block: Block, path: Path, root: Path | None) -> JobSpec:
    def err(key: str, message: str) -> JobSpecError:
        return JobSpecError(path, _key_line(block, key), message)

    for key in data:
        if key not in KEYS:
            raise err(key, f"unknown key '{key}'{did_you_mean(key, list(KEYS))}; known keys: {', '.join(KEYS)}")

    def str_list(key: str, value: Any, *, allow_str: bool = False) -> tuple[str, ...]:
        if allow_str and isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise err(key, f"'{key}' must be an array of strings, got {_type_name(value)}: {value!r}")
        return tuple(value)

    kwargs: dict[str, Any] = {}
    name = data.get("name", default_name(path))
    if not isinstance(name, str):
        raise err("name", f"'name' must be a string, got {_type_name(name)}: {name!r}")
    kwargs["name"] = _check_name(name, path, _key_line(block, "name"), "name")

    if "needs" in data:
        needs = str_list("needs", data["needs"], allow_str=True)
        for n in needs:
            if not n.strip():
                raise err("needs", "'needs' has an empty job name")
        if len(set(needs)) != len(needs):
            dup = next(n for n in needs if needs.count(n) > 1)
            raise err("needs", f"'needs' names '{dup}' twice")
        kwargs["needs"] = needs

    def seconds(key: str, *, positive: bool, most: int, most_text: str) -> float:
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise err(key, f"'{key}' must be a number of seconds, got {_type_name(value)}: {value!r}")
        if (isinstance(value, float) and not math.isfinite(value)) or value < 0 or (positive and value == 0):
            least = "a positive number of seconds" if positive else "a number of seconds, at least 0"
            raise err(key, f"'{key}' must be {least}, got {value!r}")
        if value > most:
            shown = repr(value) if len(repr(value)) <= 20 else f"{repr(value)[:10]}... ({len(repr(value))} digits)"
            raise err(key, f"'{key}' of {shown} seconds is more than {most_text} ({most}); is it in seconds?")
        return float(value)

    if "timeout" in data:
        kwargs["timeout"] = seconds("timeout", positive=True, most=MAX_TIMEOUT, most_text="a week")

    if "markers" in data:
        markers = str_list("markers", data["markers"])
        for mk in markers:
            if not MARKER_RE.fullmatch(mk):
                raise err("markers", f"marker {mk!r} is not a valid pytest marker name (a Python identifier)")
        kwargs["markers"] = markers

    if "env" in data:
        env = data["env"]
        if not isinstance(env, dict):
            raise err("env", f"'env' must be a table of strings, got {_type_name(env)}: {env!r}")
        for k, v in env.items():
            if not ENV_NAME_RE.fullmatch(k):
                raise err(
                    "env",
                    f"'env' key {k!r} is not a valid environment variable name: "
                    "use letters, digits and _ (not starting with a digit)",
                )
            if not isinstance(v, str):
                raise err(
                    "env",
                    f"'env' value of {k} must be a string, got {_type_name(v)}: {v!r} "
                    f'(quote it: {k} = "{_tomlish(v)}")',
                )
            if "\0" in v:
                raise err("env", f"'env' value of {k} holds a NUL character, which no environment variable can hold")
        kwargs["env"] = dict(env)

    if "matrix" in data:
        matrix = data["matrix"]
        if not isinstance(matrix, dict) or not matrix:
            raise err("matrix", f"'matrix' must be a non-empty table of arrays, got {matrix!r}")
        out: dict[str, tuple[str, ...]] = {}
        for k, values in matrix.items():
            if not IDENT_RE.fullmatch(k):
                raise err("matrix", f"'matrix' key {k!r} must be an identifier (it becomes CIDAG_MATRIX_{k.upper()})")
            if not isinstance(values, list) or not values:
                raise err("matrix", f"'matrix' entry '{k}' must be a non-empty array, got {values!r}")
            strs: list[str] = []
            for v in values:
                if isinstance(v, dict | list):
                    raise err("matrix", f"'matrix' entry '{k}' holds {_type_name(v)}; use strings or integers")
                if isinstance(v, float):
                    raise err(
                        "matrix",
                        f"'matrix' value {v!r} of '{k}' is a float, which loses digits (3.10 is 3.1): "
                        f'write it as a string, "{v}"',
                    )
                s = _tomlish(v)
                if not NAME_RE.fullmatch(s):
                    raise err(
                        "matrix",
                        f"'matrix' value {s!r} of '{k}' cannot be part of a job id: use letters, digits and . _ + -",
                    )
                strs.append(s)
            if len(set(strs)) != len(strs):
                dup = next(s for s in strs if strs.count(s) > 1)
                raise err("matrix", f"'matrix' entry '{k}' lists {dup!r} twice")
            out[k] = tuple(strs)
        legs = math.prod(len(values) for values in out.values())
        if legs > MAX_LEGS:
            counts = " x ".join(str(len(values)) for values in out.values())
            raise err(
                "matrix",
                f"'matrix' makes {legs} legs ({counts}), more than the {MAX_LEGS} a job may have: "
                "split the job or trim the values",
            )
        upper = [k.upper() for k in out]
        if len(set(upper)) != len(upper):
            raise err("matrix", "'matrix' keys collide once upper-cased for CIDAG_MATRIX_*: " + ", ".join(out))
        seen: dict[str, tuple[str, ...]] = {}
        for combo in itertools.product(*out.values()):
            leg = "-".join(combo)
            if leg in seen:
                raise err(
                    "matrix",
                    f"'matrix' combinations {seen[leg]} and {combo} both make the leg id [{leg}]: "
                    "a value with '-' in it runs into the next value; rename one",
                )
            seen[leg] = combo
        kwargs["matrix"] = out

    if "cwd" in data:
        cwd = data["cwd"]
        if not isinstance(cwd, str) or not cwd:
            raise err("cwd", f"'cwd' must be a non-empty string, got {cwd!r}")
        if "\0" in cwd:
            raise err("cwd", f"'cwd' {cwd!r} holds a NUL character, which no path can hold")
        if Path(cwd).is_absolute():
            raise err("cwd", f"'cwd' must be relative to the rootdir, got the absolute path {cwd!r}")
        if root is not None and not is_under(cwd, root):
            raise err("cwd", f"'cwd' {cwd!r} leads outside the rootdir (symlinks followed): name a directory under it")
        kwargs["cwd"] = cwd

    if "nice" in data:
        nice = data["nice"]
        if isinstance(nice, bool) or not isinstance(nice, int) or not -20 <= nice <= 19:
            raise err("nice", f"'nice' must be an integer from -20 to 19, got {nice!r}")
        kwargs["nice"] = nice

    if "resources" in data:
        resources = str_list("resources", data["resources"])
        for res in resources:
            if not res.strip() or res != res.strip():
                raise err("resources", f"resource {res!r} must be a non-empty name without surrounding spaces")
        kwargs["resources"] = tuple(dict.fromkeys(resources))

    for key in ("inputs", "outputs"):
        if key in data:
            patterns = str_list(key, data[key])
            for pattern in patterns:
                problem = _pattern_problem(pattern)
                if problem:
                    raise err(key, f"'{key}' pattern {pattern!r} {problem}")
            kwargs[key] = patterns

    if "env_inputs" in data:
        names = str_list("env_inputs", data["env_inputs"])
        for env_name in names:
            if not ENV_NAME_RE.fullmatch(env_name):
                raise err(
                    "env_inputs",
                    f"'env_inputs' name {env_name!r} is not a valid environment variable name: "
                    "use letters, digits and _ (not starting with a digit)",
                )
        kwargs["env_inputs"] = tuple(dict.fromkeys(names))

    if "retries" in data:
        retries = data["retries"]
        if isinstance(retries, bool) or not isinstance(retries, int):
            raise err(
                "retries",
                f"'retries' must be a whole number from 0 to {MAX_RETRIES}, got {_type_name(retries)}: {retries!r}",
            )
        if not 0 <= retries <= MAX_RETRIES:
            raise err("retries", f"'retries' must be a whole number from 0 to {MAX_RETRIES}, got {retries!r}")
        kwargs["retries"] = retries

    if "retry_delay" in data:
        kwargs["retry_delay"] = seconds("retry_delay", positive=False, most=MAX_RETRY_DELAY, most_text="an hour")

    if "testcases" in data:
        testcases = data["testcases"]
        if not isinstance(testcases, bool):
            raise err(
                "testcases",
                f"'testcases' must be true or false, got {_type_name(testcases)}: {testcases!r} "
                "(write testcases = true, unquoted, for a job that narrows its suite by CIDAG_TESTCASES)",
            )
        kwargs["testcases"] = testcases

    # the longest leg id names files: blame the matrix if there is one, else the name
    if "matrix" in kwargs:
        line, fix = _key_line(block, "matrix"), "name or the matrix values"
    else:
        line, fix = (_key_line(block, "name"), "name") if "name" in data else (1, "file name")
    # a first-pass leg's id is longer: test@first[3.12]
    longest_name = kwargs["name"] + FIRST_SUFFIX if kwargs.get("testcases") else kwargs["name"]
    _check_id_length(longest_name, kwargs.get("matrix", {}), path, line, fix)
    return JobSpec(path=path, line=block.start, **kwargs)


def _pattern_problem(pattern: str) -> str | None:
    """What is wrong with an ``inputs``/``outputs`` glob, or None. Globs are relative to the
    rootdir and stay under it; ``!`` in front excludes."""
    bare = pattern.removeprefix("!")
    if not bare.strip():
        return "is empty"
    if "\0" in bare:
        return "holds a NUL character, which no path can hold"
    if bare.startswith("/") or (len(bare) > 1 and bare[1] == ":"):
        return f"is an absolute path: patterns are relative to the rootdir (write {bare.lstrip('/')!r})"
    if ".." in bare.replace("\\", "/").split("/"):
        return "leads outside the rootdir ('..'): name files under the rootdir"
    return None


def _tomlish(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


# --- how to run a job file --------------------------------------------------------------


def read_shebang(path: Path, data: bytes | None = None) -> str | None:
    """The interpreter line of ``path`` (or of its contents ``data``) without ``#!``, or ``None``."""
    if data is not None:
        head = data[:4096].split(b"\n", 1)[0]
    else:
        try:
            with path.open("rb") as f:
                head = f.readline(4096)
        except OSError:
            return None
    if not head.startswith(b"#!"):
        return None
    return head[2:].decode("utf-8", errors="replace").strip() or None


def command_for(path: Path, data: bytes | None = None) -> list[str]:
    """The argv that runs ``path`` as the kernel would through its shebang.

    Like ``execve``, everything after the interpreter is one optional argument. A file
    without a shebang runs with bash (only ``*.sh`` files are jobs without one).
    """
    shebang = read_shebang(path, data)
    if shebang is None:
        return ["bash", str(path)]
    parts = shebang.split(None, 1)
    return [*parts, str(path)]


def display_command(argv: Sequence[str]) -> str:
    return shlex.join(argv)
