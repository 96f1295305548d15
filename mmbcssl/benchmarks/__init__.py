"""Speed, memory and size measurements behind ``tools/analysis_tools``.

One module per benchmark, each with the argparse ``main`` of its tool:
``complexity`` (``get_flops.py``), ``inference`` (``benchmark.py``),
``dense`` (``benchmark_dense.py``), ``dino_iter`` (``benchmark_dino_iter.py``),
``imagenet_c_loading`` (``benchmark_imagenet_c.py``), ``knn``
(``benchmark_knn.py``) and ``pipeline`` (``benchmark_pipeline.py``);
``common`` holds what they share. ``import mmbcssl`` does not load them;
the evaluation suite's ``Complexity`` counts with :mod:`.complexity`.
"""
