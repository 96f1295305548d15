"""The evaluations a suite config can name.

Each evaluation is a registered class (``EVALUATIONS``), built from one
entry of the suite config's ``evaluations`` list, e.g.
``dict(type='KNN', data_root='data/imagenet')``. Its settings are a frozen
dataclass (``Evaluation.Settings``) that holds the defaults; a key it does
not have is refused, with the accepted ones, before anything runs. An
evaluation that reads another's result names that evaluation's class
(``needs``), never its name. It produces one result
(``results/<name>.json``): the metrics, their protocol fingerprint and the
command that made them, and for a classification the per-image outcomes
(an :class:`~mmbcssl.evaluation.outcomes.Outcomes` under ``outcomes``,
which the suite runner writes beside the result). Trained evaluations
(the linear probe, Mask R-CNN, UperNet) and k-NN run as their own
``tools/*.py`` processes, through
``tools/dist_*.sh`` when the suite has several processes, so one failure
does not take the others down and each resumes on its own.
"""
from __future__ import annotations

import copy
import dataclasses
import os
import os.path as osp
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from mmengine.registry import Registry

from mmbcssl.evaluation.fingerprint import (REPO_ROOT, checkpoint_record,
                                            file_sha256, make_fingerprint,
                                            model_record)
from mmbcssl.evaluation.features import FeatureTransform
from mmbcssl.evaluation.knn import KNNProtocol
from mmbcssl.evaluation.outcomes import Outcomes, read_outcomes
from mmbcssl.evaluation.robustness import (PROTOCOL_CONFIGS, clean_error,
                                           robustness_plan)
from mmbcssl.evaluation.transfer import TransferProtocol
from .context import (EvaluationFailed, EvaluationMissing, SuiteContext,
                      read_json)
from .overrides import refuse_list_indices, set_train_scales, shorten_schedule

EVALUATIONS = Registry('suite evaluation')


def downstream_config(pretrain_config: str, folder: str) -> Optional[str]:
    """The config of ``configs/<folder>`` that starts from
    ``pretrain_config`` (the metafiles' ``Pre-training``); the one with
    published numbers when there are several (the paper's protocol). A
    recipe option (metafile ``Variant Of``) is evaluated with the
    downstream configs of the config it is a variant of."""
    from mmbcssl.evaluation.paper_results import load_entries
    entries = load_entries()
    rel = osp.relpath(osp.abspath(pretrain_config), REPO_ROOT)
    rel = next((e.metadata['Variant Of'] for e in entries
                if e.config == rel and e.metadata.get('Variant Of')), rel)
    found = [
        e for e in entries if e.config.startswith(f'configs/{folder}/')
        and e.metadata.get('Pre-training') == rel
    ]
    found.sort(key=lambda e: (not e.results, e.config))
    return found[0].config if found else None


def _data_options(root: Optional[str], loaders=('train', 'val', 'test'),
                  suffix: str = '') -> List[str]:
    if not root:
        return []
    return [f'{k}_dataloader.dataset.data_root={root}{suffix}'
            for k in loaders]


def _latest_checkpoint(work_dir: str) -> Optional[str]:
    path = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(path):
        return None
    with open(path) as f:
        ckpt = f.read().strip()
    return ckpt if osp.isfile(ckpt) else None


def parse_settings(settings_cls: type, given: Dict[str, Any],
                   owner: str) -> Any:
    """``settings_cls(**given)``, refusing a key it does not have and a
    value of the wrong type, each in one line naming what it accepts.

    Raises:
        TypeError: an unknown key or a value of the wrong type.
    """
    fields = {f.name: f for f in dataclasses.fields(settings_cls)}
    unknown = sorted(set(given) - set(fields))
    if unknown:
        raise TypeError(
            f'unknown setting{"s" if len(unknown) > 1 else ""} '
            f'{", ".join(map(repr, unknown))}; {owner} accepts: '
            f'{", ".join(sorted(fields))}')
    for key, value in given.items():
        hint = fields[key].type
        hint = hint if isinstance(hint, str) else hint.__name__
        kinds = _SIMPLE_TYPES.get(hint)
        if kinds and not (isinstance(value, kinds) and not (
                isinstance(value, bool) and bool not in kinds)):
            raise TypeError(f'{owner}: setting {key!r} must be {hint}, got '
                            f'{value!r}')
    return settings_cls(**given)


# the annotations whose values are checked, and the Python types they take
_SIMPLE_TYPES = {
    'int': (int, ), 'float': (int, float), 'bool': (bool, ),
    'str': (str, ), 'Optional[str]': (str, type(None)),
    'Optional[int]': (int, type(None))
}


@dataclass(frozen=True)
class NoSettings:
    """An evaluation without settings."""


class Evaluation:
    """One entry of a suite: its settings, what it needs, and how it runs.

    Args:
        name (str): The result's name (``results/<name>.json``); defaults
            to the type in lower case.
        **settings: The entry's other keys: fields of :attr:`Settings`.

    Raises:
        TypeError: a key that is no field of :attr:`Settings`, or a value
            of the wrong type (the message lists the accepted keys).
    """
    #: the typed settings; their defaults are the dataclass's
    Settings: type = NoSettings
    #: the classes of the evaluations whose results this one reads
    needs: Tuple[type, ...] = ()
    #: what a result of this class measures (:attr:`kind`); empty: the
    #: class name in lower case
    KIND = ''

    def __init__(self, name: Optional[str] = None, **settings) -> None:
        self.name = name or type(self).__name__.lower()
        #: needed class -> the name of the evaluation that provides it
        #: (set by :func:`link`)
        self.links: Dict[type, str] = {}
        # as given in the suite config: part of the request, so a result
        # stays reusable while the entry is unchanged
        self.settings = settings
        self.s = parse_settings(self.Settings, settings,
                                type(self).__name__)

    @property
    def kind(self) -> str:
        """What the result measures, whatever the entry's ``name``: the
        key the report's columns read it by
        (:data:`mmbcssl.evaluation.columns.COLUMNS`)."""
        return self.KIND or type(self).__name__.lower()

    def expand(self) -> List['Evaluation']:
        """The evaluations this entry stands for (itself, by default)."""
        return [self]

    def request(self, ctx: SuiteContext) -> Dict[str, Any]:
        """What makes a result of this evaluation reusable: a re-run with
        the same request skips it."""
        return dict(type=type(self).__name__, name=self.name,
                    settings=self.settings, config=self._rel(ctx.config),
                    config_sha256=file_sha256(ctx.config),
                    checkpoint_sha256=ctx.sha256)

    def work_dirs(self, ctx: SuiteContext) -> List[str]:
        """The dirs whose contents a run continues from (a training's
        checkpoints): made for one request; another request, or
        ``--force``, starts in a fresh one (:class:`SuiteRunner`)."""
        return []

    def run(self, ctx: SuiteContext, done: Dict[str, Dict]) -> Dict:
        """Run; return ``dict(metrics=..., fingerprint=..., command=...)``.

        Raises:
            EvaluationMissing: data or a needed result is absent.
            EvaluationFailed: a launched tool failed.
        """
        raise NotImplementedError

    @staticmethod
    def _rel(path: str) -> str:
        return osp.relpath(osp.abspath(path), REPO_ROOT)

    def _need_dirs(self, *dirs: str, command: str = '') -> None:
        for d in dirs:
            if not osp.isdir(d):
                raise EvaluationMissing(
                    f'{d!r} does not exist (see the README, "Data '
                    'preparation")', command)

    def choose(self, needed: type) -> Optional[str]:
        """Which evaluation of class ``needed`` this one reads when the
        suite has several (a name), or None: the only one."""
        return None

    def _needed(self, done: Dict[str, Dict], needed: type,
                command: str = '') -> Dict:
        """The result of the evaluation of class ``needed`` that
        :func:`link` found for this one."""
        name = self.links.get(needed)
        result = done.get(name) if name else None
        if not result or result.get('status') != 'ok':
            raise EvaluationMissing(
                f'needs the {name or needed.KIND!r} result (a '
                f'{needed.__name__}), which this run does not have',
                command)
        return result

    @staticmethod
    def _tool_result(path: str) -> Dict:
        """A tool's result JSON, its per-image outcomes (the record beside
        it, :func:`~mmbcssl.evaluation.outcomes.write_outcomes`) read into
        ``outcomes``: the suite runner writes them beside its own result.

        Raises:
            EvaluationFailed: the tool left no result, or outcomes that are
                not the result's own.
        """
        result = read_json(path)
        if result is None:
            raise EvaluationFailed(f'{path} is missing or not valid JSON')
        if result.get('outcomes'):
            result['outcomes'] = Evaluation._tool_outcomes(
                path, result['outcomes'])
        return result

    @staticmethod
    def _tool_outcomes(path: str, record: Mapping[str, Any]) -> Outcomes:
        """The per-image outcomes a tool's result at ``path`` names with
        ``record``.

        Raises:
            EvaluationFailed: they are missing or not the result's own.
        """
        try:
            return read_outcomes(path, record)
        except (OSError, ValueError) as e:
            raise EvaluationFailed(str(e)) from None

    def _raw(self, ctx: SuiteContext, suffix: str = '.json') -> str:
        os.makedirs(ctx.path('raw'), exist_ok=True)
        return ctx.path('raw', self.name + suffix)


@dataclass(frozen=True)
class KNNSettings:
    """Settings of :class:`KNN` (and, but ``query``, of
    :class:`KNNRobustness`).

    Args:
        data_root (str): ImageNet layout (``train/``, ``val/``).
            Defaults to 'data/imagenet'.
        ks (Sequence[int]): Neighbour counts. Defaults to (10, 20, 100,
            200).
        temperature (float): Vote temperature. Defaults to 0.07.
        img_size (int): Centre crop. Defaults to 224.
        resize (int): Short side before the crop. Defaults to 256.
        batch_size (int): Defaults to 256.
        num_workers (int): Defaults to 8.
        random_init (bool): The random-init baseline instead of the
            weights. Defaults to False.
        seed (int): Seed of the random initialisation. Defaults to 0.
        fast (bool): BatchNorms folded and the channels-last layout.
            Defaults to True.
    """
    data_root: str = 'data/imagenet'
    # the protocol's own defaults, stated once (KNNProtocol, FeatureTransform)
    ks: Sequence[int] = KNNProtocol.ks
    temperature: float = KNNProtocol.temperature
    img_size: int = FeatureTransform.crop
    resize: int = FeatureTransform.resize
    batch_size: int = KNNProtocol.batch_size
    num_workers: int = 8
    random_init: bool = False
    seed: int = 0
    fast: bool = True


@dataclass(frozen=True)
class KNNQuerySettings(KNNSettings):
    """Settings of :class:`KNN`: :class:`KNNSettings` and

    Args:
        query (Sequence[str], optional): ``tools/knn_eval.py`` arguments
            of another query set than ImageNet's val (what
            :class:`KNNRobustness` gives each set). Defaults to None.
    """
    query: Optional[Sequence[str]] = None


@EVALUATIONS.register_module()
class KNN(Evaluation):
    """Weighted k-NN of the teacher's features (``tools/knn_eval.py``);
    settings: :class:`KNNQuerySettings`."""
    Settings = KNNQuerySettings

    @property
    def kind(self):
        if self.s.query:  # one of KNNRobustness's sets: no column reads it
            return self.name
        return 'knn_random_init' if self.s.random_init else 'knn'

    def run(self, ctx, done):
        s = self.s
        out = self._raw(ctx)
        args = [ctx.config, '--data-root', s.data_root, '--ks',
                *map(str, s.ks), '--temperature', str(s.temperature),
                '--img-size', str(s.img_size), '--resize',
                str(s.resize), '--batch-size', str(s.batch_size),
                '--num-workers', str(s.num_workers), '--seed',
                str(s.seed), '--out', out, '--overwrite']
        weights = None if s.random_init else ctx.backbone_weights()
        if weights:
            args += ['--checkpoint', weights]
        if ctx.feature_cache:
            args += ['--feature-cache', ctx.feature_cache]
        if s.fast:
            args += ['--deploy', '--channels-last']
        query = list(s.query or [])
        args += query
        command = ' '.join(ctx.tool_command('knn_eval.py', args))
        needed = [osp.join(s.data_root, 'train')]
        needed.append(query[1] if query else osp.join(s.data_root, 'val'))
        self._need_dirs(*needed, command=command)
        command = ctx.run_tool(self.name, 'knn_eval.py', args)
        return dict(self._tool_result(out), command=command)


@dataclass(frozen=True)
class KNNRobustnessSettings(KNNSettings):
    """Settings of :class:`KNNRobustness`: the :class:`KNNSettings` and

    Args:
        roots (dict): Set -> root, sets among a, r, sketch, c. Defaults to
            the four under ``data/``.
        corruptions (Sequence[str]): ImageNet-C corruptions. Defaults to
            one of each category.
        severity (int): ImageNet-C severity. Defaults to 3.
        max_queries (int): Images per set. Defaults to 5000.
    """
    roots: Dict[str, str] = field(default_factory=lambda: dict(
        a='data/imagenet-a', r='data/imagenet-r',
        sketch='data/imagenet-sketch', c='data/imagenet-c'))
    corruptions: Sequence[str] = ('gaussian_noise', 'defocus_blur', 'snow',
                                  'jpeg_compression')
    severity: int = 3
    max_queries: int = 5000


@EVALUATIONS.register_module()
class KNNRobustness(Evaluation):
    """k-NN of the robustness sets against the ImageNet train bank, votes
    restricted to each set's classes: robustness without a trained probe,
    on a subset of each set (one result per set, ``knn_robustness.<set>``;
    ImageNet-C one per corruption at one severity); settings:
    :class:`KNNRobustnessSettings`.
    """
    Settings = KNNRobustnessSettings

    def expand(self):
        s = self.s
        own = {f.name for f in dataclasses.fields(KNNRobustnessSettings)} - {
            f.name for f in dataclasses.fields(KNNSettings)}
        # the k-NN keys as given: the sets' requests stay what they were
        knn = {k: v for k, v in self.settings.items() if k not in own}
        out = []
        for key, root in s.roots.items():
            query = ['--query', root, '--max-queries', str(s.max_queries)]
            if key == 'sketch':
                query += ['--query-prefix', 'sketch']
            if key in ('a', 'r'):  # the official 200-wnid lists
                query += ['--query-classes', f'imagenet-{key}']
            if key != 'c':
                out.append(KNN(name=f'{self.name}.{key}', query=query, **knn))
                continue
            for corruption in s.corruptions:
                out.append(KNN(
                    name=f'{self.name}.c_{corruption}',
                    query=query + ['--corruption', corruption,
                                   '--severity', str(s.severity)],
                    **knn))
        return out


@dataclass(frozen=True)
class DownstreamSettings:
    """Settings of a trained evaluation (:class:`LinearProbe`,
    :class:`Finetune`).

    Args:
        config (str, optional): The downstream config. Defaults to the one
            of ``configs/<folder>`` that starts from the backbone's
            pre-training config (:func:`downstream_config`).
        data_root (str, optional): Its data root. Defaults to the
            config's.
        epochs (int, optional): Train this many of the config's epochs,
            its schedule scaled to them
            (:func:`mmbcssl.suite.overrides.shorten_schedule`). Defaults
            to None: the config's.
        cfg_options (Sequence[str]): ``key=value`` overrides, none naming
            a list position (``param_scheduler.0.end``: an edit of the
            config can move it). Defaults to none.

    Raises:
        ValueError: a ``cfg_options`` key that names a list position.
    """
    config: Optional[str] = None
    data_root: Optional[str] = None
    epochs: Optional[int] = None
    cfg_options: Sequence[str] = ()

    def __post_init__(self):
        refuse_list_indices(self.cfg_options)


class _TrainThenTest(Evaluation):
    """Train a downstream config from the backbone weights (resuming an
    interrupted run of the same request: the runner gives another request
    a fresh training dir, :meth:`work_dirs`), then evaluate its last
    checkpoint."""
    Settings = DownstreamSettings
    folder = ''

    def config(self, ctx: SuiteContext) -> str:
        config = self.s.config or downstream_config(
            ctx.config, self.folder)
        if not config:
            raise EvaluationMissing(
                f'no configs/{self.folder} config starts from '
                f'{self._rel(ctx.config)} (metafile "Pre-training"); name '
                'one with config=... in the suite config')
        return config

    def request(self, ctx):
        req = super().request(ctx)
        try:
            config = self.config(ctx)
        except EvaluationMissing:
            return req
        req.update(downstream=config, downstream_sha256=file_sha256(config))
        return req

    def work_dirs(self, ctx):
        return [ctx.path(self.name)]

    def derived_options(self, cfg) -> List[str]:
        """The overrides the typed settings make of the loaded downstream
        config ``cfg`` (placed where its own schedulers and transforms
        are, found by type).

        Raises:
            ValueError: the config cannot take a setting.
        """
        return shorten_schedule(cfg, self.s.epochs) if self.s.epochs else []

    def options(self, ctx: SuiteContext) -> List[str]:
        """``--cfg-options`` of the train and test runs: the settings'
        (:meth:`derived_options`), then the entry's ``cfg_options``, then
        the backbone weights.

        Raises:
            EvaluationFailed: the config cannot take a setting.
        """
        opts = []
        if self._derives():
            from mmengine.config import Config
            config = self.config(ctx)
            try:
                opts = self.derived_options(Config.fromfile(config))
            except ValueError as e:
                raise EvaluationFailed(f'{self._rel(config)}: {e}') from None
        opts += list(self.s.cfg_options)
        weights = ctx.backbone_weights()
        opts.append('model.backbone.init_cfg.checkpoint=' +
                    str(weights) if weights else
                    'model.backbone.init_cfg=None')
        return opts

    def _derives(self) -> bool:
        return bool(self.s.epochs)

    def run(self, ctx, done):
        config = self.config(ctx)
        work = ctx.path(self.name)
        train = [config, '--work-dir', work]
        if _latest_checkpoint(work):
            train.append('--resume')
        opts = self.options(ctx)
        self._check_data(ctx, config, opts)
        ctx.run_tool(f'{self.name}-train', 'train.py',
                     train + ['--cfg-options', *opts])
        ckpt = _latest_checkpoint(work)
        weights = ctx.backbone_weights()
        result, command = self._test(ctx, config, ckpt, opts,
                                     backbone=weights)
        return dict(result, command=command, checkpoint=ckpt, config=config,
                    backbone_weights=weights)

    def _test(self, ctx: SuiteContext, config: str, ckpt: str,
              opts: List[str], tag: str = '',
              backbone: Optional[str] = None) -> tuple:
        """``tools/test.py`` on one checkpoint: (its result, command).
        ``backbone``: the weights the checkpoint was trained from, for its
        fingerprint (default: its training config's)."""
        out = self._raw(ctx, suffix=f'{tag}.json')
        test = [config, ckpt, '--work-dir',
                osp.join(ctx.path(self.name), f'test{tag}'), '--out', out,
                '--overwrite']
        if backbone:
            test += ['--backbone-from', backbone]
        test += ['--cfg-options', *opts]
        command = ctx.run_tool(f'{self.name}-test{tag}', 'test.py', test)
        return self._tool_result(out), command

    def _check_data(self, ctx, config: str, opts: List[str]) -> None:
        from mmbcssl.utils.data_checks import DataLayoutError, check_data
        from mmbcssl.utils.launch import load_config
        from mmengine.config import DictAction
        cfg = load_config(config)
        parsed = {}
        for opt in opts:
            key, _, value = opt.partition('=')
            parsed[key] = DictAction._parse_iterable(value)
        cfg.merge_from_dict(parsed)
        try:
            check_data(cfg)
        except DataLayoutError as e:
            raise EvaluationMissing(
                str(e), ' '.join(ctx.tool_command('train.py', [config]))
            ) from None


@dataclass(frozen=True)
class LinearProbeSettings(DownstreamSettings):
    """Settings of :class:`LinearProbe`: :class:`DownstreamSettings` and

    Args:
        checkpoint (str, optional): A probe of ``config`` trained already:
            it is evaluated on the val set, not trained (and the result
            has no best-epoch metrics). Defaults to None (train the probe).
    """
    checkpoint: Optional[str] = None


@EVALUATIONS.register_module()
class LinearProbe(_TrainThenTest):
    """The linear probe of the backbone (``configs/linear``): trained
    through ``tools/train.py``, evaluated on the val set at two epochs.

    The result's ``accuracy/*`` are the last epoch's probe;
    ``best_epoch/accuracy/*`` the probe of the epoch with the highest val
    top-1 (the checkpoint hook's ``best_accuracy_top1_epoch_<n>.pth``) and
    ``best_epoch/epoch`` that epoch. The second is the number DINO's
    ``eval_linear.py`` reports (and so the BC-SSL paper's linear column):
    it validates after every epoch and prints the maximum, chosen on the
    val set itself. The robustness evaluations use the last epoch's probe.

    Settings: :class:`LinearProbeSettings` (the config defaults to the
    probe of the backbone's pre-training config in ``configs/linear/
    metafile.yml``).
    """
    Settings = LinearProbeSettings
    KIND = 'linear'
    folder = 'linear'
    #: the file name mmengine's CheckpointHook gives the best epoch's
    #: checkpoint with ``save_best='accuracy/top1'``
    BEST_PATTERN = re.compile(r'best_accuracy_top1_epoch_(\d+)\.pth')

    def options(self, ctx):
        return _data_options(self.s.data_root) + super().options(ctx)

    def run(self, ctx, done):
        if self.s.checkpoint:
            config = self.config(ctx)
            result, command = self._test(
                ctx, config, self.s.checkpoint,
                _data_options(self.s.data_root) + list(self.s.cfg_options))
            return dict(result, command=command,
                        checkpoint=self.s.checkpoint, config=config)
        result = super().run(ctx, done)
        best, epoch = self.best_checkpoint(ctx.path(self.name))
        best_result, _ = self._test(ctx, result['config'], best,
                                    self.options(ctx), tag='_best_epoch',
                                    backbone=result['backbone_weights'])
        metrics = dict(result['metrics'])
        metrics.update({f'best_epoch/{k}': v
                        for k, v in best_result['metrics'].items()})
        metrics['best_epoch/epoch'] = epoch
        return dict(result, metrics=metrics, best_epoch_checkpoint=best,
                    outcomes=with_best_epoch(result.get('outcomes'),
                                             best_result.get('outcomes')))

    def best_checkpoint(self, work_dir: str) -> tuple:
        """(path, epoch) of the best epoch's checkpoint in ``work_dir``.

        Raises:
            EvaluationFailed: there is not exactly one.
        """
        found = [(osp.join(work_dir, f), int(m.group(1)))
                 for f in sorted(os.listdir(work_dir))
                 for m in [self.BEST_PATTERN.fullmatch(f)] if m]
        if len(found) != 1:
            raise EvaluationFailed(
                f'{work_dir} holds {len(found)} best_accuracy_top1_epoch_*'
                '.pth files, expected 1: the probe config must validate '
                "every epoch with default_hooks.checkpoint.save_best="
                "'accuracy/top1' (configs/_base_/linear_in1k.py)")
        return found[0]


def with_best_epoch(last: Optional[Outcomes],
                    best: Optional[Outcomes]) -> Optional[Outcomes]:
    """The last epoch's outcomes with the best epoch's beside them, on the
    same val images: its arrays and ``meta['metrics']`` entries prefixed
    ``best_epoch/`` as its metrics are (``best_epoch/accuracy/top1`` is
    recomputed from array ``best_epoch/top1``). The last epoch's alone
    when the best epoch has none.

    Raises:
        EvaluationFailed: the two were made on different images.
    """
    if last is None or best is None:
        return last
    if best.images != last.images:
        raise EvaluationFailed(
            'the best epoch\'s val outcomes hold other images than the '
            'last epoch\'s: both tests must use the same val set')
    arrays = dict(last.arrays)
    arrays.update({f'best_epoch/{k}': v for k, v in best.arrays.items()})
    metrics = dict(last.meta.get('metrics', {}))
    for key, entry in best.meta.get('metrics', {}).items():
        entry = dict(entry)
        if 'arrays' in entry:
            entry['arrays'] = [f'best_epoch/{a}' for a in entry['arrays']]
        metrics[f'best_epoch/{key}'] = entry
    return Outcomes(last.images, arrays, last.kind,
                    dict(last.meta, metrics=metrics))


@dataclass(frozen=True)
class FinetuneSettings(DownstreamSettings):
    """Settings of :class:`Finetune`: :class:`DownstreamSettings` and

    Args:
        task (str): 'mask_rcnn' (configs/mask_rcnn) or 'upernet'
            (configs/upernet). Defaults to 'mask_rcnn'.
        train_scales (Sequence[Sequence[int]], optional): ``(w, h)``
            scales of the training pipeline's ``RandomChoiceResize``
            (:func:`mmbcssl.suite.overrides.set_train_scales`). Defaults
            to None: the config's.
    """
    task: str = 'mask_rcnn'
    train_scales: Optional[Sequence[Sequence[int]]] = None


@EVALUATIONS.register_module()
class Finetune(_TrainThenTest):
    """Mask R-CNN (``task='mask_rcnn'``) or UperNet (``task='upernet'``)
    fine-tuned from the backbone, then box/mask AP or mIoU on val.

    Settings: :class:`FinetuneSettings`.
    """
    Settings = FinetuneSettings

    def __init__(self, name=None, task='mask_rcnn', **settings):
        if task not in ('mask_rcnn', 'upernet'):
            raise ValueError(f"Finetune task must be 'mask_rcnn' or "
                             f"'upernet', got {task!r}")
        super().__init__(name or task, task=task, **settings)
        self.folder = task

    @property
    def kind(self):
        return self.s.task

    def _derives(self):
        return super()._derives() or bool(self.s.train_scales)

    def derived_options(self, cfg):
        opts = super().derived_options(cfg)
        if self.s.train_scales:
            opts += set_train_scales(cfg, self.s.train_scales)
        return opts

    def options(self, ctx):
        root = self.s.data_root
        opts = []
        if root and self.folder == 'mask_rcnn':
            ann = f'{root}/annotations/instances_val2017.json'
            opts = _data_options(root, suffix='/') + [
                f'val_evaluator.ann_file={ann}',
                f'test_evaluator.ann_file={ann}'
            ]
        elif root:
            opts = _data_options(root)
        return opts + super().options(ctx)


@dataclass(frozen=True)
class ProbedSettings:
    """What every robustness evaluation of the linear probe shares.

    Args:
        roots (dict, optional): Set -> data root. Defaults to the
            configs'.
        demo (bool): The ``*_demo`` configs. Defaults to False.
        classes (str, optional): The probe head's wnid list. Defaults to
            the configs' (ImageNet-1k).
        probe (str, optional): Which :class:`LinearProbe` of the suite
            (its name) when it has several. Defaults to the only one.
        config_dir (str): Where the robustness configs are. Defaults to
            'configs/robustness'.
        cfg_options (Sequence[str]): ``key=value`` overrides, none naming
            a list position. Defaults to none.
    """
    roots: Optional[Dict[str, str]] = None
    demo: bool = False
    classes: Optional[str] = None
    probe: Optional[str] = None
    config_dir: str = 'configs/robustness'
    cfg_options: Sequence[str] = ()

    def __post_init__(self):
        refuse_list_indices(self.cfg_options)


@dataclass(frozen=True)
class RobustnessSettings(ProbedSettings):
    """Settings of :class:`Robustness`: :class:`ProbedSettings` and

    Args:
        sets (Sequence[str]): Among c, sketch, r, a. Defaults to all four.
        protocols (Sequence[str]): 'official' and/or 'authors' (see
            configs/robustness/README.md). Defaults to ('official', ).
    """
    sets: Sequence[str] = ('c', 'sketch', 'r', 'a')
    protocols: Sequence[str] = ('official', )


@dataclass(frozen=True)
class RobustnessSetSettings(ProbedSettings):
    """Settings of :class:`RobustnessSet`: :class:`ProbedSettings` and

    Args:
        set (str): One of c, sketch, r, a.
        config_stem (str): Its config in configs/robustness
            (:data:`mmbcssl.evaluation.robustness.PROTOCOL_CONFIGS`).
    """
    set: str = ''
    config_stem: str = ''


@EVALUATIONS.register_module()
class Robustness(Evaluation):
    """ImageNet-C/Sketch/R/A through the linear probe (``needs`` a
    :class:`LinearProbe`), one result per set and protocol; settings:
    :class:`RobustnessSettings`.
    """
    Settings = RobustnessSettings

    def expand(self):
        s = self.s
        # the shared keys as given: the sets' requests stay what they were
        shared = {k: v for k, v in self.settings.items()
                  if k not in ('sets', 'protocols')}
        return [
            RobustnessSet(name=f'{self.name}.{name}', set=key,
                          config_stem=stem, **shared)
            for key, name, stem in robustness_plan(s.sets, s.protocols)
        ]


@EVALUATIONS.register_module()
class RobustnessSet(Evaluation):
    """One robustness evaluation of the linear probe; see
    :class:`Robustness`."""
    Settings = RobustnessSetSettings
    needs = (LinearProbe, )

    @property
    def kind(self):
        stems = {stem: name for name, stem in PROTOCOL_CONFIGS.values()}
        stem = self.s.config_stem
        return f'robustness.{stems[stem]}' if stem in stems else self.name

    def choose(self, needed):
        return self.s.probe

    def run(self, ctx, done):
        s = self.s
        stem = s.config_stem + ('_demo' if s.demo else '')
        config = osp.join(s.config_dir, f'{stem}.py')
        probe = self._needed(done, LinearProbe,
                             'the LinearProbe evaluation of this suite')
        root = (s.roots or {}).get(s.set)
        opts = list(s.cfg_options)
        if root:
            opts.append(f'test_dataloader.dataset.data_root={root}')
        if s.classes:
            opts.append(f'test_dataloader.dataset.base_classes='
                        f'{s.classes}')
        if s.set == 'c':
            error = clean_error(probe['metrics'])
            if error is not None:
                opts.append(f'test_cfg.clean_error={error!r}')
            opts.append('test_cfg.pass_results_dir=' +
                        ctx.path('imagenet_c_passes'))
        out = self._raw(ctx)
        args = [config, probe['checkpoint'], '--model-from',
                probe['config'], '--work-dir',
                ctx.path('robustness', self.name), '--out', out,
                '--overwrite']
        if probe.get('backbone_weights'):  # what the probe was trained from
            args += ['--backbone-from', probe['backbone_weights']]
        if opts:
            args += ['--cfg-options', *opts]
        command = ' '.join(ctx.tool_command('test.py', args))
        if root is None:
            from mmengine.config import Config
            root = Config.fromfile(config).test_dataloader.dataset.data_root
        self._need_dirs(root, command=command)
        command = ctx.run_tool(self.name, 'test.py', args)
        return dict(self._tool_result(out), command=command)


@dataclass(frozen=True)
class TransferSettings(TransferProtocol):
    """Settings of :class:`Transfer`: the feature settings of
    :class:`mmbcssl.evaluation.transfer.TransferProtocol` and

    Args:
        registry (str): The data-set registry. Defaults to
            'configs/transfer/datasets.py'.
        preset (str, optional): One of its presets. Defaults to None.
        sets (Sequence[str], optional): Its sets to run. Defaults to None:
            the preset's, else all.
    """
    registry: str = 'configs/transfer/datasets.py'
    preset: Optional[str] = None
    sets: Optional[Sequence[str]] = None


@EVALUATIONS.register_module()
class Transfer(Evaluation):
    """Linear transfer to small data sets (``tools/transfer_linear.py``):
    one result with every set's score and the mean over the preset;
    settings: :class:`TransferSettings`.
    """
    Settings = TransferSettings

    def run(self, ctx, done):
        s = dataclasses.asdict(self.s)
        out_dir = self._raw(ctx, suffix='')
        model = [ctx.config] + ([ctx.backbone_weights()]
                                if ctx.checkpoint else [])
        args = [s['registry'], '--model', *model, '--name', 'model',
                '--out-dir', out_dir, '--overwrite', '--img-size',
                str(s['img_size']), '--resize', str(s['resize']),
                '--batch-size', str(s['batch_size']), '--num-workers',
                str(s['num_workers'])]
        if s.get('preset'):
            args += ['--preset', s['preset']]
        if s.get('sets'):
            args += ['--sets', *s['sets']]
        if ctx.feature_cache:
            args += ['--feature-cache', ctx.feature_cache]
        command = ctx.run_tool(self.name, 'transfer_linear.py', args,
                               distributed=False)
        data = read_json(osp.join(out_dir, 'results.json'))
        per_set = data['results']['model']
        metrics = {f'{k}/{v["fingerprint"]["protocol"]["metric"]}':
                   v['score'] for k, v in per_set.items()}
        metrics['average'] = data['summary']['average']['model']
        first = next(iter(per_set.values()))['fingerprint']
        protocol = dict(task='transfer-linear', preset=data['preset'],
                        sets={k: v['fingerprint']['protocol']
                              for k, v in per_set.items()})
        fingerprint = make_fingerprint(protocol, first['checkpoint'],
                                       first['model'], first['run'])
        outcomes = self._tool_outcomes(osp.join(out_dir, 'results.json'),
                                       data['outcomes']['model'])
        return dict(metrics=metrics, fingerprint=fingerprint,
                    command=command, outcomes=outcomes)


@dataclass(frozen=True)
class ComplexitySettings:
    """Settings of :class:`Complexity`.

    Args:
        img_size (int): Input side. Defaults to 224.
    """
    img_size: int = 224


@EVALUATIONS.register_module()
class Complexity(Evaluation):
    """Params and FLOPs (multiply-adds) of the backbone as an ImageNet
    classifier (with a 1000-class linear head, as the paper's Table 5
    counts); settings: :class:`ComplexitySettings`."""
    Settings = ComplexitySettings

    def run(self, ctx, done):
        import torch
        from mmbcssl.apis import build_from_config, load_model_config
        from mmbcssl.benchmarks.complexity import complexity
        img_size = self.s.img_size
        cfg = load_model_config(ctx.config)
        body = dict(type='ImageClassifier',
                    backbone=copy.deepcopy(cfg.model.backbone),
                    neck=copy.deepcopy(cfg.model.get('neck')))
        probe = build_from_config(cfg, body).eval()
        with torch.no_grad():
            feat = probe.extract_feat(torch.zeros(1, 3, img_size, img_size))
        dim = (feat[-1] if isinstance(feat, (tuple, list)) else feat)
        dim = dim.flatten(1).shape[1] if dim.dim() == 2 else dim.shape[1]
        body['head'] = dict(type='LinearClsHead', num_classes=1000,
                            in_channels=dim)
        model = build_from_config(cfg, body).eval()
        result = complexity(model, img_size)
        metrics = dict(params_m=result['params_head'],
                       flops_g=result['flops_head'],
                       params_m_backbone=result['params_no_head'],
                       flops_g_backbone=result['flops_no_head'])
        protocol = dict(task='complexity', img_size=img_size,
                        counted='multiply-adds (mmengine FlopAnalyzer), '
                        'with a 1000-class linear head')
        return dict(metrics=metrics, command='(in process)',
                    fingerprint=make_fingerprint(
                        protocol, checkpoint_record(None, 'not needed'),
                        dict(model_record(cfg.model),
                             config=self._rel(ctx.config))))


@dataclass(frozen=True)
class ThroughputSettings:
    """Settings of :class:`Throughput`.

    Args:
        batch_size (int): Defaults to 128.
        img_size (int): Defaults to 224.
        device (str, optional): Defaults to None: 'cuda' when available,
            else 'cpu'.
        amp (bool): Mixed precision. Defaults to False.
        channels_last (bool): Defaults to True.
        repeats (int): Timed runs (the median is kept). Defaults to 5.
    """
    batch_size: int = 128
    img_size: int = 224
    device: Optional[str] = None
    amp: bool = False
    channels_last: bool = True
    repeats: int = 5


@EVALUATIONS.register_module()
class Throughput(Evaluation):
    """Inference images per second of the backbone
    (``tools/analysis_tools/benchmark.py``); settings:
    :class:`ThroughputSettings`."""
    Settings = ThroughputSettings

    def run(self, ctx, done):
        import torch
        s = dataclasses.asdict(self.s)
        if s['device'] is None:
            s['device'] = 'cuda' if torch.cuda.is_available() else 'cpu'
        out = self._raw(ctx)
        args = [ctx.config, '--batch-size', str(s['batch_size']),
                '--img-size', str(s['img_size']), '--device', s['device'],
                '--repeats', str(s['repeats']), '--out', out]
        if s['amp']:
            args.append('--amp')
        if s['channels_last']:
            args.append('--channels-last')
        command = ctx.run_tool(self.name, 'analysis_tools/benchmark.py',
                               args, distributed=False)
        data = read_json(out)
        (row, ) = data['results'].values()
        protocol = dict(task='throughput', **data['setting'])
        return dict(
            metrics=dict(throughput=row['median']), command=command,
            fingerprint=make_fingerprint(
                protocol, checkpoint_record(None, 'not needed'),
                model_record(_model_cfg(ctx.config)),
                dict(global_batch=s['batch_size'], world_size=1)))


def _model_cfg(config: str):
    from mmengine.config import Config
    return Config.fromfile(config).model


def result_kind(name: str, result: Mapping) -> str:
    """The :attr:`Evaluation.kind` of a result file: from the evaluation
    its request names, rebuilt from the request's settings; the result's
    name when the request names none this code knows."""
    request = result.get('request') or {}
    kind = request.get('type')
    if kind not in EVALUATIONS.module_dict:
        return name
    try:
        return EVALUATIONS.get(kind)(name=name,
                                     **request.get('settings', {})).kind
    except (TypeError, ValueError):
        return name


def results_by_kind(results: Mapping[str, Mapping]) -> Dict[str, Mapping]:
    """``{kind: result}`` of ``{name: result}``; of two results of one
    kind, the one named after the kind, else the first by name."""
    out: Dict[str, Mapping] = {}
    for name, result in sorted(results.items()):
        kind = result_kind(name, result)
        if kind not in out or name == kind:
            out[kind] = result
    return out
