"""Drop what changes from one execution to the next (papermill's timings, the kernel's
message times, the random id of the cell papermill injects) from executed notebooks,
keeping cell tags and the kernel metadata, so that `make executed` rewrites a copy only
where an output changed.

Usage: python docs/strip_run_metadata.py NOTEBOOK.ipynb ...
"""

import sys

import nbformat

for path in sys.argv[1:]:
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        cell.metadata = {k: v for k, v in cell.metadata.items() if k == "tags"}
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.id = "injected-parameters"
    notebook.metadata.pop("papermill", None)
    nbformat.write(notebook, path)
