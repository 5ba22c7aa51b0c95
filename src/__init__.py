"""convgan: a PyTorch Lightning + Hydra template for convolutional GANs."""

import os
from pathlib import Path

# torch creates its compile cache when imported (torch/_dynamo/package.py) and matplotlib its
# font cache at first use, by default in the system temp directory and ~/.cache: they go to
# the repository's outputs/.cache instead, unless the user named a directory for them
for _variable, _folder in (("TORCHINDUCTOR_CACHE_DIR", "torchinductor"), ("MPLCONFIGDIR", "mpl")):
    os.environ.setdefault(
        _variable, str(Path(__file__).parents[1] / "outputs" / ".cache" / _folder)
    )
