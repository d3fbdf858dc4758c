"""The `space` model format: a zip of the host's `spaces` package, imported in isolation on the board.

The torch backend builds the task's architecture from it (eager modules, not a conversion); close()
restores sys.modules and sys.path, so one model's space code never leaks into the next.
"""

import importlib
import os
import sys
import zipfile

from .base import ModelLoadError, short_error


def _space_modules():
    return {k: v for k, v in sys.modules.items() if k == "spaces" or k.startswith("spaces.")}


class SpaceImport:
    """The `spaces` package of a model zip, imported in isolation and undone by close()."""

    def __init__(self, zip_path):
        self.zip_path = os.path.abspath(zip_path)
        self.saved = {}
        self.module = None

    def open(self):
        if not zipfile.is_zipfile(self.zip_path):
            raise ModelLoadError(
                f"model format 'space' expects a zip holding the package spaces/, {self.zip_path} is not a zip"
            )
        self.saved = _space_modules()
        for name in self.saved:
            del sys.modules[name]
        sys.path.insert(0, self.zip_path)
        importlib.invalidate_caches()
        try:
            module = importlib.import_module("spaces")
        except Exception as exc:  # SyntaxError, ImportError, TypeError of newer typing...
            self.close()
            raise ModelLoadError(
                "model format 'space' imports the host's search-space code (package spaces/ in {}), which "
                "needs the Python and packages the host uses; here, Python {} ({}), the import failed: {}. "
                "Export the model as TorchScript on the host (model_format 'torchscript'), or as ONNX for "
                "the onnxruntime or tensorrt backend".format(
                    self.zip_path,
                    ".".join(str(v) for v in sys.version_info[:3]),
                    sys.executable,
                    short_error(exc, 300),
                )
            ) from exc
        where = os.path.abspath(getattr(module, "__file__", "") or "")
        if not where.startswith(self.zip_path + os.sep):
            self.close()
            raise ModelLoadError(f"{self.zip_path} holds no package spaces/ (found spaces at {where or '?'})")
        self.module = module
        return module

    def close(self):
        for name in list(_space_modules()):
            del sys.modules[name]
        sys.modules.update(self.saved)
        self.saved = {}
        while self.zip_path in sys.path:
            sys.path.remove(self.zip_path)
        self.module = None
