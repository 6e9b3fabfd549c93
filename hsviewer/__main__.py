import sys

from hsviewer.cli import main

sys.exit(main())
