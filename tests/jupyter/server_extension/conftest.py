"""pytest-jupyter's fixtures (jp_fetch, jp_serverapp, ...) and its async-test hooks, for this folder only.

Imported here instead of a global `pytest_plugins = ["pytest_jupyter.jupyter_server"]`: that plugin's
autouse fixtures (a fresh event loop and a ServerApp clean-up around every test) would otherwise
wrap every test of the suite.
"""

from pytest_jupyter.jupyter_server import *
