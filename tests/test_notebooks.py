"""The notebooks run top to bottom from the repository root (so they cannot rot)."""

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", ["01_quickstart.ipynb", "02_evaluate.ipynb"])
def test_notebook_executes(name, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # the domain model's cache
    monkeypatch.setenv("WANDB_MODE", "offline")
    notebook = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
    NotebookClient(notebook, timeout=600, resources={"metadata": {"path": str(ROOT)}}).execute()
    errors = [o for c in notebook.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
