"""The table columns: for each, the protocol it names and where its number
comes from. Every table of the project reads this schema: the suite's
report (:mod:`mmbcssl.suite.report`), its summary on screen, the robustness
report (``tools/robustness_report.py``), the demo's table
(``tools/run_demo.py``) and the metafiles' published numbers, whose
``Protocol`` is a column id (:mod:`mmbcssl.evaluation.paper_results`).

A column reads one metric of one kind of result: the ``kind`` of the suite
evaluation that wrote it (:attr:`mmbcssl.suite.Evaluation.kind`: ``knn``,
``linear``, ``robustness.c``, ...), whatever the suite named it. The
header names the protocol, so that a column never mixes ways of measuring.
"""
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple


@dataclass(frozen=True)
class Column:
    """One table column.

    Args:
        id (str): What results, metafiles and tables call it.
        header (str): Its header, naming the protocol.
        protocol (str): The protocol, for the report's protocol list.
        evaluation (str): The kind of result it reads.
        metric (str): The metric key in that result's ``metrics``.
        scale (float): Factor to the table's unit (percent). Defaults to 1.
        tables (tuple[str]): The tables that show it (:data:`TABLES` ids
            and ``'robustness_report'``). Defaults to none.
        demo_line (str): The line of the demo's table of the teacher's
            other results it is shown on (with the other columns of that
            line; k-NN and linear top-1 have a line per backbone there,
            ``tools/run_demo.py``). Defaults to none.
        published (Mapping): The protocol record of a published number of
            this column, in the fields of a measured cell's
            :func:`mmbcssl.evaluation.fingerprint.comparable_protocol`
            (``data``, ``images``, ``img_size``, ``transform``, ``k``,
            ``temperature``): the paper's protocol, which a metafile entry
            overrides only where its paper measured otherwise. Defaults
            to none: the column takes no published number.
    """
    id: str
    header: str
    protocol: str
    evaluation: str
    metric: str
    scale: float = 1.
    tables: Tuple[str, ...] = ()
    demo_line: str = ''
    published: Mapping[str, Any] = field(default_factory=dict, hash=False,
                                         compare=False)

    def value(self, metrics: Mapping) -> Optional[float]:
        """Its number from a result's metrics; None when it is absent."""
        value = metrics.get(self.metric)
        return None if value is None else float(value) * self.scale


# The data and test transform of the published numbers (arXiv 2312.05695,
# section 4, which evaluates as DINO and EsViT do: eval_knn.py and
# eval_linear.py resize the short edge to 256, bicubic, and crop 224; the
# robustness sets through the same transform, ImageNet-C's 224-px images
# through a centre crop alone or the same transform; Mask R-CNN and
# UperNet with mmdet's and mmseg's test scales). Sizes: ImageNet-1k val
# 50000, ImageNet-C 15 corruptions x 5 severities x 50000, Sketch 50889,
# ImageNet-R 30000, ImageNet-A 7500, COCO val2017 5000, ADE20K val 2000.
_RESIZE_CROP = 'resize 256 (bicubic) + centre crop 224'
_IN1K_VAL = dict(data='ImageNet-1k val', images=50000, img_size=224,
                 transform=_RESIZE_CROP)
_IN_C_CROP = dict(data='ImageNet-C', images=15 * 5 * 50000, img_size=224,
                  transform='centre crop 224')
_IN_C_RESIZE = dict(_IN_C_CROP, transform=_RESIZE_CROP)
_SKETCH = dict(_IN1K_VAL, data='ImageNet-Sketch', images=50889)
_IN_R = dict(_IN1K_VAL, data='ImageNet-R', images=30000)
_IN_A = dict(_IN1K_VAL, data='ImageNet-A', images=7500)
_COCO = dict(data='COCO val2017', images=5000, img_size='1333x800',
             transform='resize 1333x800 (keep ratio)')
_ADE20K = dict(data='ADE20K val', images=2000, img_size='2048x512',
               transform='resize 2048x512 (keep ratio)')
# parameters do not depend on the input; FLOPs are counted at 224 x 224
_PARAMS = dict(counted='parameters with the 1000-class linear head')
_FLOPS = dict(img_size=224)

_C_DEMO = 'IN-C-style mCE / mean error (crop)'
_SRA_DEMO = 'Sketch / R / A top-1 (subset logits)'
_COCO_DEMO = 'Mask R-CNN box AP / AP50, mask AP / AP50 (%)'
# In the order every table shows them.
_ALL = (
    Column('params_m', 'Params (M)', 'with the 1000-class linear head',
           'complexity', 'params_m', tables=('cost', ),
           published=_PARAMS),
    Column('flops_g', 'FLOPs (G)',
           'multiply-adds at 224 x 224, with the head', 'complexity',
           'flops_g', tables=('cost', ),
           published=_FLOPS),
    Column('throughput', 'img/s', 'inference images per second',
           'throughput', 'throughput', tables=('cost', )),
    Column('knn_top1_k10', 'k-NN top-1 (k=10)',
           'the k-NN of k-NN top-1 with k=10', 'knn', 'knn/k10_top1'),
    Column('knn_top1', 'k-NN top-1',
           'weighted k-NN, k=20, T=0.07, L2-normalised teacher features; '
           'resize 256 + centre crop 224', 'knn', 'knn/k20_top1',
           tables=('knn_linear', 'cost', 'robustness_report'),
           published=dict(_IN1K_VAL, k=20, temperature=0.07)),
    Column('knn_random_init_k10', 'k-NN top-1, random init (k=10)',
           'the random-init k-NN with k=10', 'knn_random_init',
           'knn/k10_top1'),
    Column('knn_random_init', 'k-NN top-1, random init',
           'the same k-NN on the randomly initialised backbone (seed 0): '
           'the baseline pre-training must beat', 'knn_random_init',
           'knn/k20_top1', tables=('knn_linear', )),
    Column('linear_top1', 'Linear top-1 (last epoch)',
           'linear probe on frozen features after its last epoch; val: '
           'resize 256 + centre crop 224', 'linear', 'accuracy/top1',
           tables=('knn_linear', 'cost', 'robustness_report'),
           published=_IN1K_VAL),
    Column('linear_top1_best', 'Linear top-1 (best epoch)',
           'the same probe validated after every epoch, the highest val '
           'top-1 (chosen on val, as DINO\'s eval_linear.py reports; the '
           'published linear numbers)', 'linear',
           'best_epoch/accuracy/top1',
           tables=('knn_linear', 'cost', 'robustness_report'),
           published=_IN1K_VAL),
    Column('c_mce', 'IN-C mCE (AlexNet-norm., crop 224)',
           'mean over 15 corruptions of the error summed over severities '
           "divided by AlexNet's; centre crop 224 of the 224-px images",
           'robustness.c', 'imagenet-c/mCE',
           tables=('robustness', 'robustness_report'), demo_line=_C_DEMO,
           published=_IN_C_CROP),
    Column('c_rel_mce', 'IN-C rel. mCE (crop 224)',
           'relative mCE: errors minus the clean error, AlexNet-normalised; '
           'centre crop 224', 'robustness.c', 'imagenet-c/relative_mCE',
           tables=('robustness', 'robustness_report'),
           published=_IN_C_CROP),
    Column('c_mean_error', 'IN-C mean error (unnorm., crop 224)',
           'plain mean of the 75 top-1 errors; centre crop 224',
           'robustness.c', 'imagenet-c/mean_error',
           tables=('robustness', 'robustness_report'), demo_line=_C_DEMO,
           published=_IN_C_CROP),
    Column('c_mce_resize256',
           'IN-C mCE (AlexNet-norm., resize 256 + crop 224)',
           'mCE with the clean val transform (resize 256, centre crop 224)',
           'robustness.c_resize256', 'imagenet-c/mCE',
           tables=('robustness', 'robustness_report'),
           published=_IN_C_RESIZE),
    Column('c_mean_error_resize256',
           'IN-C mean error (unnorm., resize 256 + crop 224)',
           'plain mean of the 75 top-1 errors with the clean val '
           "transform: the BC-SSL authors' robustness script",
           'robustness.c_resize256', 'imagenet-c/mean_error',
           tables=('robustness', 'robustness_report'),
           published=_IN_C_RESIZE),
    Column('sketch_top1', 'Sketch top-1',
           '1000 classes; resize 256 + centre crop 224', 'robustness.sketch',
           'accuracy/top1', tables=('robustness', 'robustness_report'),
           demo_line=_SRA_DEMO,
           published=_SKETCH),
    Column('r_top1', 'IN-R top-1 (200-class)',
           'logits restricted to the 200 classes (official)',
           'robustness.r', 'accuracy/top1',
           tables=('robustness', 'robustness_report'), demo_line=_SRA_DEMO,
           published=_IN_R),
    Column('r_top1_1000way', 'IN-R top-1 (1000-way)',
           "argmax over 1000 classes (the BC-SSL authors' script)",
           'robustness.r_1000way', 'accuracy/top1',
           tables=('robustness', 'robustness_report'),
           published=_IN_R),
    Column('a_top1', 'IN-A top-1 (200-class)',
           'logits restricted to the 200 classes (official)',
           'robustness.a', 'accuracy/top1',
           tables=('robustness', 'robustness_report'), demo_line=_SRA_DEMO,
           published=_IN_A),
    Column('a_top1_1000way', 'IN-A top-1 (1000-way)',
           "argmax over 1000 classes (the BC-SSL authors' script)",
           'robustness.a_1000way', 'accuracy/top1',
           tables=('robustness', 'robustness_report'),
           published=_IN_A),
    Column('transfer_mean', 'Transfer mean',
           "mean over the preset's sets of the L-BFGS logistic-regression "
           'score (CLIP protocol)', 'transfer', 'average',
           tables=('knn_linear', ),
           demo_line='transfer mean (demo4 preset)'),
    Column('coco_box_ap', 'COCO box AP',
           'pycocotools bbox mAP@[.5:.95], val2017', 'mask_rcnn',
           'coco/bbox_mAP', 100., tables=('dense', ), demo_line=_COCO_DEMO,
           published=_COCO),
    Column('coco_box_ap50', 'COCO box AP50',
           'pycocotools bbox AP at IoU 0.5, val2017', 'mask_rcnn',
           'coco/bbox_mAP_50', 100., demo_line=_COCO_DEMO,
           published=_COCO),
    Column('coco_mask_ap', 'COCO mask AP',
           'pycocotools segm mAP@[.5:.95], val2017', 'mask_rcnn',
           'coco/segm_mAP', 100., tables=('dense', ), demo_line=_COCO_DEMO,
           published=_COCO),
    Column('coco_mask_ap50', 'COCO mask AP50',
           'pycocotools segm AP at IoU 0.5, val2017', 'mask_rcnn',
           'coco/segm_mAP_50', 100., demo_line=_COCO_DEMO,
           published=_COCO),
    Column('ade20k_miou', 'ADE20K mIoU', 'single-scale mIoU, 150 classes',
           'upernet', 'mIoU', tables=('dense', ),
           published=_ADE20K),
)
COLUMNS: Dict[str, Column] = {c.id: c for c in _ALL}

# The report's tables, by what they show (arXiv 2312.05695: Table 5 has
# the kernel sweep's k-NN, linear, robustness, params and FLOPs; Table 4
# COCO): (id, title).
TABLES = (
    ('knn_linear', 'k-NN and linear probe'),
    ('dense', 'COCO and ADE20K'),
    ('robustness', 'Robustness'),
    ('cost', 'Params, FLOPs, throughput, k-NN and linear'),
)


def table_columns(table: str) -> Tuple[str, ...]:
    """The ids of the columns a table shows, in order."""
    return tuple(c.id for c in COLUMNS.values() if table in c.tables)


def demo_lines() -> Dict[str, Tuple[str, ...]]:
    """The demo table: line label -> the ids of its columns, in order."""
    lines: Dict[str, Tuple[str, ...]] = {}
    for c in COLUMNS.values():
        if c.demo_line:
            lines[c.demo_line] = lines.get(c.demo_line, ()) + (c.id, )
    return lines


def column_values(results: Mapping[str, Mapping]) -> Dict[str, float]:
    """``{column id: value}`` of the columns the results fill.

    Args:
        results (Mapping): kind -> result (a dict with ``metrics``; only
            results with ``status`` 'ok', or without one, count).
    """
    out = {}
    for c in COLUMNS.values():
        result = results.get(c.evaluation)
        if not result or result.get('status', 'ok') != 'ok':
            continue
        value = c.value(result.get('metrics') or {})
        if value is not None:
            out[c.id] = value
    return out


def kind_metrics(kind: str) -> Tuple[str, ...]:
    """The metrics the columns read from a result of ``kind`` (none for a
    kind no column shows)."""
    return tuple(c.metric for c in COLUMNS.values() if c.evaluation == kind)


def shown_metrics(metrics: Mapping) -> Dict[str, float]:
    """The metrics of a result that some column reads, as they are (the
    suite's summary on screen)."""
    keys = {c.metric for c in COLUMNS.values()}
    return {k: v for k, v in metrics.items()
            if k in keys and isinstance(v, (int, float))}
