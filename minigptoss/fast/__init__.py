"""Fast kernels, each held to a readable definition in the package root by tests (tests/test_fast_mxfp4.py).

    fast/mxfp4.py   the experts' MXFP4 products: table decode, scaling after the block dot products, two threads
    fast/dense.py   the large dense products (qkv, out, unembedding) a chunk of rows per thread, bf16 widened per chunk
    fast/pages.py   madvise(WILLNEED): the routed experts' file pages read ahead of their products
    fast/compiled.py  optional numba kernels for the experts' products (pip install "minigptoss[fast]")
    fast/attention.py  a long prompt's attention: chunks of query rows against their band of keys
                       (tests/test_attention.py)
"""
