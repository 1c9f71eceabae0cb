"""ganlab: a GAN experiment framework on PyTorch Lightning and Hydra.

``from ganlab import Generator`` loads a trained generator (an export folder or a
checkpoint) for use in any program; see ganlab.generator.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["Generator", "__version__"]


def __getattr__(name: str) -> Any:
    # Imported on first use: `import ganlab` (every command does) stays free of torch.
    if name == "Generator":
        from ganlab.generator import Generator

        return Generator
    raise AttributeError(f"module 'ganlab' has no attribute {name!r}")
