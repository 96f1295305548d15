"""k-NN accuracy of the teacher during pre-training (the paper's Figure 3).

Every ``interval`` epochs the teacher's backbone (and neck) is evaluated by
:func:`mmbcssl.evaluation.knn.run_knn`, the function ``tools/knn_eval.py``
calls, on a train and a val folder, with the input the config's
``data_preprocessor`` states. Each point is logged as scalars (``knn/k20_
top1`` ...) and appended to ``<work_dir>/knn_curve.json``, the curve to
plot.
"""
import json
import os.path as osp
from typing import Optional

import torch.nn as nn
from mmengine import dist
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS

from mmbcssl.evaluation.features import FeatureTransform
from mmbcssl.evaluation.knn import KNNProtocol, run_knn
from mmbcssl.utils.data_checks import DataLayoutError


@HOOKS.register_module()
class KNNMonitorHook(Hook):
    """Weighted k-NN top-1/top-5 of the teacher every ``interval`` epochs.

    Args:
        data_root (str): ``<root>/{train,val}/<class>/<image>`` (ImageNet
            layout, ``meta/{train,val}.txt`` used when present).
        interval (int): Epochs between evaluations; the last epoch is
            always evaluated. Defaults to 20 (the paper's Figure 3).
        img_size (int, optional): Centre crop. Defaults to the config's
            test pipeline, else :class:`FeatureTransform`'s 224.
        resize (int, optional): Short side before the crop. Defaults to
            the config's test pipeline, else 256.
        num_workers (int): Data-loader workers. Defaults to 8.
        before_training (bool): Also evaluate the initialisation (epoch 0).
            Defaults to False.
        **protocol: :class:`KNNProtocol` settings (``ks``,
            ``temperature``, ``bank_dtype``, ``batch_size``); an unknown
            one is refused. Defaults to the protocol's.

    Note:
        Features come from ``model.teacher`` when the model has one (DINO:
        the protocol evaluates the teacher), else from ``model.backbone``.
        Every module is put in eval mode for the extraction (BatchNorm uses
        its running statistics) and restored to its previous mode after.
    """
    priority = 'LOW'

    def __init__(self,
                 data_root: str,
                 interval: int = 20,
                 img_size: Optional[int] = None,
                 resize: Optional[int] = None,
                 num_workers: int = 8,
                 before_training: bool = False,
                 **protocol) -> None:
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}')
        self.data_root = data_root
        self.interval = interval
        self.img_size, self.resize = img_size, resize
        self.protocol = KNNProtocol.from_dict(protocol)
        self.num_workers = num_workers
        self.before_training = before_training
        self._sets = self.transform = None

    def before_train(self, runner) -> None:
        # Fail at start, not after the first 20 epochs.
        for split in ('train', 'val'):
            folder = osp.join(self.data_root, split)
            if not osp.isdir(folder):
                raise DataLayoutError(
                    f'KNNMonitorHook: {folder!r} not found; expected '
                    '<data_root>/{train,val}/<class>/<image>. Set '
                    'custom_hooks[...].data_root or remove the hook.')
        self.transform = FeatureTransform.from_config(
            runner.cfg, self.resize, self.img_size)
        self._sets = tuple(
            self.transform.dataset(self.data_root, split)
            for split in ('train', 'val'))
        if self.before_training:
            self.evaluate(runner, epoch=runner.epoch)

    def after_train_epoch(self, runner) -> None:
        if self.every_n_epochs(runner, self.interval) or \
                self.is_last_train_epoch(runner):
            self.evaluate(runner, epoch=runner.epoch + 1)

    @staticmethod
    def feature_model(model: nn.Module) -> nn.ModuleDict:
        """backbone (+ neck) of the teacher, or of the model."""
        if is_model_wrapper(model):
            model = model.module
        source = getattr(model, 'teacher', model)
        parts = nn.ModuleDict(dict(backbone=source.backbone))
        if getattr(source, 'neck', None) is not None:
            parts['neck'] = source.neck
        return parts

    def evaluate(self, runner, epoch: int) -> dict:
        net = self.feature_model(runner.model)
        modes = {m: m.training for m in net.modules()}
        net.eval()
        try:
            result = run_knn(net, self.protocol, self.transform,
                             *self._sets, num_workers=self.num_workers)
        finally:
            for m, mode in modes.items():
                m.train(mode)
        self._log(runner, epoch, result.metrics)
        return result.metrics

    def _log(self, runner, epoch: int, metrics: dict) -> None:
        for key, value in metrics.items():
            runner.message_hub.update_scalar(f'train/{key}', value)
        runner.visualizer.add_scalars(metrics, step=epoch)
        ks = self.protocol.ks
        k_show = 20 if 20 in ks else ks[0]
        print_log(
            f'k-NN of the teacher after epoch {epoch}: ' + ', '.join(
                f'k={k} top-1 {metrics[f"knn/k{k}_top1"]:.2f}'
                for k in ks) +
            f' (curve: knn_curve.json, k={k_show} in the paper)',
            logger='current')
        if dist.is_main_process():
            path = osp.join(runner.work_dir, 'knn_curve.json')
            curve = []
            if osp.isfile(path):
                with open(path) as f:
                    curve = json.load(f)
            # a resumed run re-evaluates an epoch: keep the newest point
            curve = [p for p in curve if p['epoch'] != epoch]
            curve.append(dict(epoch=epoch, **metrics))
            with open(path, 'w') as f:
                json.dump(sorted(curve, key=lambda p: p['epoch']), f,
                          indent=2)
