"""Fill compiled XForms with JavaRosa, the form engine inside ODK Collect.

tests/javarosa/FormDriver.java is compiled against the JavaRosa that pyxform ships inside
ODK_Validate.jar and runs in one JVM for the whole test session; each request is one line.
Fields are named by their XLSForm name; the XForm's binds give their paths.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from lxml import etree
from pyxform.validators.odk_validate import ODK_VALIDATE_PATH

DRIVER_SOURCE = Path(__file__).parent / "javarosa" / "FormDriver.java"
XF = "{http://www.w3.org/2002/xforms}"
SEPARATOR = "\x1f"
# Pakistan time, so that dates and times behave as on the monitors' tablets.
TIMEZONE = "Asia/Karachi"


class JavaRosaError(RuntimeError):
    pass


class JavaRosa:
    """One JVM running FormDriver; `fill(xform_path)` starts a new form instance."""

    def __init__(self, workdir: Path):
        for tool in ("java", "javac"):
            if shutil.which(tool) is None:
                raise JavaRosaError(
                    f"{tool} is missing: the form-logic tests run the forms in JavaRosa. "
                    "Install a JDK (apt-get install default-jdk-headless)."
                )
        subprocess.run(
            ["javac", "-cp", ODK_VALIDATE_PATH, "-d", str(workdir), str(DRIVER_SOURCE)],
            check=True,
            capture_output=True,
        )
        self.process = subprocess.Popen(
            [
                "java",
                f"-Duser.timezone={TIMEZONE}",
                "-Djava.awt.headless=true",
                "-cp",
                f"{workdir}:{ODK_VALIDATE_PATH}",
                "FormDriver",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            encoding="utf-8",
            bufsize=1,
        )

    def call(self, *parts: str) -> str:
        self.process.stdin.write("\t".join(parts) + "\n")
        self.process.stdin.flush()
        reply = self.process.stdout.readline().rstrip("\n")
        if not reply:
            raise JavaRosaError(f"FormDriver stopped answering after {parts!r}")
        kind, _, value = reply.partition("\t")
        if kind == "ERR":
            raise JavaRosaError(f"{parts!r}: {value}")
        return value

    def fill(self, xform_path: Path) -> FilledForm:
        return FilledForm(self, xform_path)

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


class FilledForm:
    """One instance of a form being filled in, as on a tablet."""

    def __init__(self, engine: JavaRosa, xform_path: Path):
        self.engine = engine
        tree = etree.parse(str(xform_path))
        self.paths: dict[str, str] = {}
        for bind in tree.iter(f"{XF}bind"):
            path = bind.get("nodeset")
            self.paths.setdefault(path.rsplit("/", 1)[1], path)
        # Choice names of every select, so a test cannot answer with a choice the form lacks.
        lists = {
            instance.get("id"): {item.findtext(f"{XF}name") for item in instance.iter(f"{XF}item")}
            for instance in tree.iter(f"{XF}instance")
            if instance.get("id")
        }
        self.choices: dict[str, set[str]] = {}
        for itemset in tree.iter(f"{XF}itemset"):
            match = re.match(r"instance\('([^']+)'\)", itemset.get("nodeset", ""))
            if match:
                self.choices[itemset.getparent().get("ref")] = lists[match.group(1)]
        engine.call("LOAD", str(xform_path))

    def path(self, name: str) -> str:
        if name not in self.paths:
            raise KeyError(f"no field named {name!r} in the form")
        return self.paths[name]

    def set(self, **answers) -> FilledForm:
        """Answer fields in the order given (later questions may depend on earlier ones)."""
        for name, value in answers.items():
            value = "" if value is None else str(value)
            self._check_choice(name, value)
            self.engine.call("SET", self.path(name), value)
        return self

    def _check_choice(self, name: str, value: str) -> None:
        names = self.choices.get(self.path(name))
        unknown = [v for v in value.split() if names is not None and v not in names]
        if unknown:
            raise ValueError(f"{name} has no choice {unknown[0]!r}; it has {sorted(names)}")

    def answer(self, name: str, value) -> str:
        """Answer as Collect does: 'ok', 'constraint', 'required' or 'not-shown'."""
        self._check_choice(name, str(value))
        return self.engine.call("ANSWER", self.path(name), str(value))

    def get(self, name: str) -> str:
        return self.engine.call("GET", self.path(name))

    def relevant(self, name: str) -> bool:
        return self.engine.call("RELEVANT", self.path(name)) == "true"

    def evaluate(self, expression: str) -> str:
        return self.engine.call("EVAL", expression)

    def values(self, expression: str) -> list[str]:
        """The values of the nodes an expression selects."""
        result = self.evaluate(expression)
        return result.split(SEPARATOR) if result else []
