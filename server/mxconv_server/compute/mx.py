"""The one place mxnet is imported, with its import-time DeprecationWarnings filtered."""

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    import mxnet
    from mxnet import nd

__all__ = ["mxnet", "nd"]
