"""Repository-wide pytest setup: the notebooks run on their tiny settings under pytest."""

import os

# Read by the notebooks' first cell (nbmake kernels inherit this process's environment).
os.environ.setdefault("VNNET_NOTEBOOK_FAST", "1")
