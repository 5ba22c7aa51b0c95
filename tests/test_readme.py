"""README's bad-input examples are the real lines: each command is run and its line compared."""

import os
import re
import shlex

import pytest

from tests.conftest import ROOT, run_entry

README = (ROOT / "README.md").read_text()
EXAMPLES = re.findall(r"^\$ python -m (src\.\w+) (.+)\n(error: .+)$", README, flags=re.M)


def test_readme_has_bad_input_examples():
    assert len(EXAMPLES) >= 10


@pytest.mark.parametrize(("module", "args", "line"), EXAMPLES, ids=[e[1][:40] for e in EXAMPLES])
def test_a_readme_example_gives_its_line(tmp_path, module, args, line):
    if "CPUs here" in line or "[0, 8]" in line and (os.cpu_count() or 1) != 2:
        pytest.skip("the bound depends on this machine's CPU count")
    arguments = shlex.split(args)  # as a shell would pass them
    if not any(a.startswith("hydra.run.dir=") for a in arguments):
        arguments.append(f"hydra.run.dir={tmp_path / 'run'}")
    status, err = run_entry(module, "logger=csv", *arguments)
    assert status == 2, err[-2000:]
    assert err.strip().splitlines()[-1] == line
