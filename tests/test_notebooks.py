"""The notebooks are stored executed (the repository shows their outputs) and run top to
bottom from any working directory (so they cannot rot)."""

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import ROOT

NOTEBOOKS = ["01_quickstart.ipynb", "02_evaluate.ipynb"]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_stored_with_its_outputs(name):
    notebook = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count for cell in code)  # every cell ran (make notebooks)
    outputs = [o for cell in code for o in cell.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the pictures are there
    assert not [o for o in outputs if o.output_type == "error"]
    assert not [o for o in outputs if "Tip:" in str(o.get("text", ""))]  # a quiet console


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_executes_from_another_working_directory(name, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the domain model's cache
    monkeypatch.setenv("WANDB_MODE", "offline")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    notebook = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    where = {"metadata": {"path": str(elsewhere)}}  # the kernel's working directory
    NotebookClient(notebook, timeout=600, resources=where).execute()
    errors = [o for c in notebook.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    assert not list(elsewhere.iterdir())  # everything went under the repository's outputs/
