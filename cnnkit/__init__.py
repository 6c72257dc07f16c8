"""cnnkit: the helper package of the Hands-On CNNs course.

Modules: ``device``, ``profile``, ``repro``, ``data``, ``ops``, ``models``, ``train``, ``viz`` and
``grading``. Importing cnnkit has no side effects: nothing is seeded, downloaded or printed.
"""
from .device import autocast, get_device, to_device
from .profile import get_profile, settings
from .repro import seed_everything

__version__ = "0.1.0"
__all__ = ["autocast", "get_device", "to_device", "get_profile", "settings", "seed_everything", "__version__"]
