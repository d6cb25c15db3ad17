"""`python -m keras_structconv.cli`."""

import sys

from keras_structconv.cli import main

sys.exit(main())
