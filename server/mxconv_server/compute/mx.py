"""The one place mxnet is imported, with the process settings MXNet computes best with.

Both settings act once, so they are made here, before MXNet's first use:

* oneDNN's instruction-set cap. ``DNNL_MAX_CPU_ISA=AVX512_MIC`` keeps MXNet 1.9.1's oneDNN 2.4
  off its newer AVX-512 "brgconv" kernels, which compute in NHWC: on the benchmark machine
  (AMD EPYC with AVX-512, 1 thread, medians) their NCHW <-> NHWC reorders cost 2 ms each way on
  (8,64,56,56), against 0.7 ms for the nChw16c layout of the direct AVX-512 kernels it falls
  back to, whose convolution is as fast. Over eleven shapes: (8,64,56,56)x(64,64,3,3) 21.2 ->
  18.9 ms, 7x7 stride-2 stem 3.4 -> 2.6 ms, depthwise 3x3 0.39 -> 0.27 ms, the rest (1x1, 5x5,
  grouped, a Gluon training step) within noise. A CPU on which brgconv is the better choice
  gets it back with ``DNNL_MAX_CPU_ISA=ALL`` in the environment (this is only a default).
* glibc's allocator keeps freed memory for the next request (:func:`keep_freed_memory`).
"""

import ctypes
import ctypes.util
import os
import warnings

os.environ.setdefault("DNNL_MAX_CPU_ISA", "AVX512_MIC")

#: glibc mallopt() parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
#: Free memory at the top of the heap beyond this goes back to the system.
TRIM_THRESHOLD_BYTES = 256 * 1024 * 1024


def keep_freed_memory() -> bool:
    """Serve the memory of one request from what the previous request freed.

    By default glibc maps every block of more than a few MiB freshly and unmaps it on free, so
    each request's tensors are new pages, and every page costs a fault when first written:

    * a (1,64,224,224) output took 1,900-3,100 faults per call, and the call 5-17 ms instead
      of 3.5-5 ms (1 thread, medians; PyTorch alike);
    * orjson reserves about 12x a document's size to parse it (100 MB for the 8.6 MB base64
      JSON of an (8,64,56,56) tensor), always mapped afresh as it is over glibc's largest mmap
      threshold (32 MiB): 2,090 faults and 8.2 ms a parse, against 3.5 ms and none from the
      heap. Only the pages written count towards RSS either way (measured: same peak RSS).

    So no block is mapped on its own (``M_MMAP_MAX=0``: all come from the heap, and glibc
    still falls back to mmap where the heap cannot grow), and up to 256 MiB of freed heap is
    kept. The cost is that a worker holds on to the memory its largest request touched.
    Returns False where the C library is not glibc (nothing changed)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    return bool(mallopt(_M_MMAP_MAX, 0) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))


keep_freed_memory()

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    import mxnet
    from mxnet import nd

__all__ = ["mxnet", "nd", "keep_freed_memory"]
