"""GPU twins of the CPU kernels in cpu/ (same names, same math, same layouts).

lanp.cu: the CUDA C kernels (cupy backend; also built as a host library by the tests);
plan: their work items, fused/two-step split, memory groups and sub-batches (pure numpy);
limits: what a launch may use on a device, from its attributes (pure); devices: the input's
device, its attributes, the memory budget; cupy_backend: backend ``cupy``; graph / cg: the
numba.cuda kernels, twins of cpu/graph.py and cpu/cg.py; numba_backend: backend ``numba-cuda``.
Nothing here is imported until a GPU backend is asked for (lanp.kernels.backends.LazyBackend).
"""
