"""convgan: a PyTorch Lightning + Hydra template for convolutional GANs."""

import os
from pathlib import Path

# torch creates its compile cache when imported (torch/_dynamo/package.py) and matplotlib its
# font cache at first use, by default in the system temp directory and ~/.cache: they go to
# convgan's cache directory ($XDG_CACHE_HOME or ~/.cache, /convgan: where the decoded data and
# the domain feature extractor are cached too), unless the user named a directory for them
_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "convgan"
for _variable, _folder in (("TORCHINDUCTOR_CACHE_DIR", "torchinductor"), ("MPLCONFIGDIR", "mpl")):
    os.environ.setdefault(_variable, str(_cache / _folder))
