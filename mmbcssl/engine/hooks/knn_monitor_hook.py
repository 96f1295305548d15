"""k-NN accuracy of the teacher during pre-training (the paper's Figure 3).

Every ``interval`` epochs the teacher's backbone (and neck) features of a
train and a val folder are extracted in eval mode, L2-normalised and
classified by the weighted k-NN of :mod:`mmbcssl.evaluation.knn` (k in
{10, 20, 100, 200}, T = 0.07). Each point is logged as scalars (``knn/k20_
top1`` ...) and appended to ``<work_dir>/knn_curve.json``, the curve to
plot.
"""
import json
import os.path as osp
from typing import Optional, Sequence

import torch
import torch.nn as nn
from mmengine import dist
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS

from mmbcssl.evaluation.features import extract_features, knn_dataset
from mmbcssl.evaluation.knn import DEFAULT_KS, knn_evaluate
from mmbcssl.utils.data_checks import DataLayoutError


@HOOKS.register_module()
class KNNMonitorHook(Hook):
    """Weighted k-NN top-1/top-5 of the teacher every ``interval`` epochs.

    Args:
        data_root (str): ``<root>/{train,val}/<class>/<image>`` (ImageNet
            layout, ``meta/{train,val}.txt`` used when present).
        interval (int): Epochs between evaluations; the last epoch is
            always evaluated. Defaults to 20 (the paper's Figure 3).
        img_size (int): Centre crop. Defaults to 224.
        resize (int): Short side before the crop. Defaults to 256.
        ks (Sequence[int]): Defaults to (10, 20, 100, 200).
        temperature (float): Defaults to 0.07.
        batch_size (int): Images per forward, per process. Defaults to 128.
        num_workers (int): Data-loader workers. Defaults to 8.
        half_bank (bool): Keep the train bank in float16 (ImageNet:
            1.28M x 768 -> 1.97 GB). Defaults to True.
        before_training (bool): Also evaluate the initialisation (epoch 0).
            Defaults to False.

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
                 img_size: int = 224,
                 resize: int = 256,
                 ks: Sequence[int] = DEFAULT_KS,
                 temperature: float = 0.07,
                 batch_size: int = 128,
                 num_workers: int = 8,
                 half_bank: bool = True,
                 before_training: bool = False) -> None:
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}')
        self.data_root = data_root
        self.interval = interval
        self.img_size, self.resize = img_size, resize
        self.ks, self.temperature = tuple(ks), temperature
        self.batch_size, self.num_workers = batch_size, num_workers
        self.half_bank = half_bank
        self.before_training = before_training
        self._sets = None

    def before_train(self, runner) -> None:
        # Fail at start, not after the first 20 epochs.
        for split in ('train', 'val'):
            folder = osp.join(self.data_root, split)
            if not osp.isdir(folder):
                raise DataLayoutError(
                    f'KNNMonitorHook: {folder!r} not found; expected '
                    '<data_root>/{train,val}/<class>/<image>. Set '
                    'custom_hooks[...].data_root or remove the hook.')
        self._sets = tuple(
            knn_dataset(self.data_root, split, self.img_size, self.resize)
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

    def evaluate(self, runner, epoch: int) -> Optional[dict]:
        net = self.feature_model(runner.model)
        modes = {m: m.training for m in net.modules()}
        net.eval()
        dtype = torch.float16 if self.half_bank else torch.float32
        try:
            (tr_f, tr_y), (va_f, va_y) = (
                extract_features(net, ds, self.batch_size, self.num_workers,
                                 normalize=True, dtype=dtype)
                for ds in self._sets)
        finally:
            for m, mode in modes.items():
                m.train(mode)
        # The bank is the same on every process; one process classifies.
        metrics = None
        if dist.is_main_process():
            num_classes = int(max(tr_y.max(), va_y.max())) + 1
            # classify on the training device (a GPU when there is one)
            device = next(net.parameters()).device
            metrics = knn_evaluate(
                tr_f.to(device), tr_y, va_f, va_y, num_classes, ks=self.ks,
                temperature=self.temperature, bank_dtype=dtype,
                normalized=True)
        box = [metrics]
        dist.broadcast_object_list(box)  # a no-op on one process
        self._log(runner, epoch, box[0])
        return box[0]

    def _log(self, runner, epoch: int, metrics: dict) -> None:
        for key, value in metrics.items():
            runner.message_hub.update_scalar(f'train/{key}', value)
        runner.visualizer.add_scalars(metrics, step=epoch)
        k_show = 20 if 20 in self.ks else self.ks[0]
        print_log(
            f'k-NN of the teacher after epoch {epoch}: ' + ', '.join(
                f'k={k} top-1 {metrics[f"knn/k{k}_top1"]:.2f}'
                for k in sorted(set(self.ks))) +
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
