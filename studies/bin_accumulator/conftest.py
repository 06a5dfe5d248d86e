import pathlib
import sys

# The repository (for ``studies``, ``hw``, ``contract``) and the main tests' helpers
# (``hw_reference``) on the import path.
ROOT = pathlib.Path(__file__).resolve().parents[2]
for path in (ROOT, ROOT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
