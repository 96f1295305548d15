"""What a backbone learned, as pictures: class activation maps, effective
receptive fields, feature PCA and training curves.

The functions return matplotlib figures and plain data so that reports can
embed them; ``tools/visualization/`` and ``tools/analysis_tools/
analyze_logs.py`` are the command-line front ends.
"""
from .cam import compute_maps, grid_figure, render_cells
from .erf import area_ratios, erf_figure, erf_map, erf_record, erf_report
from .feature_pca import feature_pca_rgb
from .images import list_images, load_image, save_figure, to_input
from .layers import (LayerError, UnknownLayerError, check_layer,
                     default_cam_layer, get_layer, stage_names,
                     to_feature_map)
from .log_plots import (RunLog, format_summary, load_run, plot_runs,
                        summarize)
from .model import VisModel, build_vis_model

__all__ = [
    'compute_maps', 'grid_figure', 'render_cells', 'area_ratios',
    'erf_figure', 'erf_map', 'erf_record', 'erf_report', 'feature_pca_rgb',
    'list_images', 'load_image', 'save_figure', 'to_input', 'LayerError',
    'UnknownLayerError', 'check_layer', 'default_cam_layer', 'get_layer',
    'stage_names', 'to_feature_map', 'RunLog', 'format_summary', 'load_run',
    'plot_runs', 'summarize', 'VisModel', 'build_vis_model'
]
