"""``python -m archc`` runs the command line.

For ``-m`` Python puts the working directory first on ``sys.path``. It is removed here,
before the plug-in registry searches ``sys.path`` for ``archc.ops`` entry points, so
running archc in a folder that holds a ``*.dist-info`` (a downloaded model folder, say)
cannot make it import a plug-in from that folder: only installed distributions load.
"""
import os
import sys


def _drop_working_directory() -> None:
    if getattr(sys.flags, "safe_path", False) or not sys.path:
        return  # python -P: the working directory was never added
    try:
        cwd = os.getcwd()
    except OSError:  # the working directory was deleted
        cwd = None
    if sys.path[0] in ("", cwd):
        del sys.path[0]


_drop_working_directory()

from archc.cli import main  # noqa: E402 - after the search path is fixed

sys.exit(main())
