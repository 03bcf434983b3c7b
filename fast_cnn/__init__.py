"""The NumPy CNN's fast path: cnn_numpy.py's layers re-laid out for the CPU's caches, and each batch computed
as two halves in two processes.

    python cnn_numpy.py                          # the report's run, through this package (--layers fast)
    python cnn_numpy.py --layers textbook        # the readable layers of cnn_numpy.py instead, one process
    python -m pytest tests/test_fast_layers.py tests/test_fast_halves.py    # proven equal to the textbook

layers.py: Conv2d, MaxPool2d (and PoolCorners) with cnn_numpy.py's interface and math, in other memory
layouts; cnn() builds the report's CNN from them. halves.py: Halves, the batch-splitting worker. What each
trick buys is measured in benchmarks/README.md.
"""
