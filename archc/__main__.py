"""``python -m archc`` runs the command line."""
import sys

from archc.cli import main

sys.exit(main())
