"""What is drawn: pure functions from recorded tensors (and a model) to rich renderables, shared by the
commands and by `cache.show` in a notebook. Nothing here prints; one place in each caller does.

    views/tensor.py    one tensor: statistics, first values, a heatmap or sparkline
    views/summary.py   a whole pass: tokens, per-layer table, router table, next-token candidates
    views/steps.py     the step-through debugger's view of each piece
    views/capture.py   the public `capture`, whose recordings can `show` themselves (and draw pictures in Jupyter)
    views/svg.py       pictures as SVG text: heatmaps, attention per head, the router grid, bars
    views/report.py    a whole forward pass as one HTML page (`minigptoss step --export DIR`)
"""
