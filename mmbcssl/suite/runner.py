"""Run a suite: every evaluation of a suite config for one backbone and
checkpoint, one result file each, resumable and never overwriting.

Layout of a suite work dir::

    suite.json              what was evaluated (config, checkpoint, SHA)
                            and how the weights were made (pretraining)
    results/<name>.json     one per evaluation: status, metrics, protocol
                            fingerprint, the command that made it
    results/<name>.outcomes.npz
                            its per-image outcomes (k-NN, transfer,
                            classifications, COCO, segmentation; :mod:`mmbcssl.
                            evaluation.outcomes`), named by the result and
                            reused with it
    results/superseded/     results replaced by --force, kept (with their
                            outcomes)
    raw/, logs/             each tool's own output and log
    features/               the feature cache (--no-cache: none)
    <name>/                 work dirs of trained evaluations, each made
                            for one request (``.suite_request.json``)
    <name>.superseded.<t>/  a training dir of another request, or one
                            replaced by --force, moved aside and kept
    weights/                the teacher backbone extracted from a whole
                            pre-training checkpoint
    .suite.lock             held by the run that is using the work dir
"""
import contextlib
import fcntl
import json
import os
import os.path as osp
import shutil
import socket
import sys
import time
from typing import Dict, Iterator, List, Optional, Sequence

from mmengine.config import Config
from mmengine.logging import print_log

from mmbcssl.evaluation.fingerprint import (REPO_ROOT, code_version,
                                            data_record, file_sha256,
                                            pretraining_record, protocol_id)
from mmbcssl.evaluation.outcomes import (Outcomes, outcomes_path,
                                         write_outcomes)
from mmbcssl.utils.launch import UserError
from mmbcssl.utils.outputs import write_json
from .context import (EvaluationFailed, EvaluationMissing, SuiteContext,
                      read_json)
from .evaluations import EVALUATIONS, Evaluation


#: in a trained evaluation's work dir: the request it was made for
REQUEST_FILE = '.suite_request.json'


def build_evaluations(suite_config: str) -> List[Evaluation]:
    """The evaluations of a suite config, expanded, in order.

    Raises:
        UserError: an unknown evaluation type (the message lists the known
            ones) or a name used twice.
    """
    if not osp.isfile(suite_config):
        raise UserError(f'suite config {suite_config!r} not found (the '
                        'suites are in configs/suites/)')
    entries = Config.fromfile(suite_config).get('evaluations')
    if not entries:
        raise UserError(f'{suite_config}: no `evaluations` list')
    return build_entries(entries, suite_config)


def build_entries(entries: Sequence[Dict],
                  suite_config: str) -> List[Evaluation]:
    """The evaluations of the ``evaluations`` list of ``suite_config``
    (named in messages); see :func:`build_evaluations`."""
    known = sorted(EVALUATIONS.module_dict)
    out: List[Evaluation] = []
    for entry in entries:
        entry = dict(entry)
        kind = entry.pop('type', None)
        if kind not in EVALUATIONS.module_dict:
            raise UserError(f'{suite_config}: unknown evaluation type '
                            f'{kind!r}; known: {", ".join(known)}')
        try:
            evaluation = EVALUATIONS.get(kind)(**entry)
        except (TypeError, ValueError) as e:
            raise UserError(f'{suite_config}: {kind}: {e}') from None
        out += evaluation.expand()
    names = [e.name for e in out]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UserError(f'{suite_config}: evaluation names used twice: '
                        f'{", ".join(twice)}; give each a distinct name=')
    link(out, suite_config)
    return out


def link(evaluations: List[Evaluation], where: str = 'the suite') -> None:
    """Give each evaluation the names of those it ``needs``: the one
    evaluation of each needed class, or the one its settings choose
    (:meth:`Evaluation.choose`) when there are several. None there: the
    evaluation reports the result as missing when it runs.

    Raises:
        UserError: a choice that is not there, or several candidates and
            no choice.
    """
    for evaluation in evaluations:
        for needed in evaluation.needs:
            found = [e.name for e in evaluations if isinstance(e, needed)]
            chosen = evaluation.choose(needed)
            if chosen is not None and chosen not in found:
                raise UserError(
                    f'{where}: {evaluation.name} reads the {needed.__name__}'
                    f' {chosen!r}, which the suite does not have; it has: '
                    f'{", ".join(found) or "none"}')
            if chosen is None and len(found) > 1:
                raise UserError(
                    f'{where}: {evaluation.name} reads a {needed.__name__} '
                    f'and the suite has several ({", ".join(found)}); '
                    'choose one with probe=<name>')
            chosen = chosen if chosen is not None else (found or [None])[0]
            if chosen is not None:
                evaluation.links[needed] = chosen


@contextlib.contextmanager
def work_dir_lock(work_dir: str) -> Iterator[None]:
    """Hold ``<work_dir>/.suite.lock`` for the duration of a run.

    Two suite runs in one work dir would extract, train and write the same
    files at once (two ``tools/train.py`` in one ``linear/``), so the
    second is refused, naming the holder. The lock is an ``flock`` on an
    open file: the kernel releases it when the holder exits, however it
    exits, so a killed run leaves no stale lock behind.

    Raises:
        UserError: another process holds the lock.
    """
    os.makedirs(work_dir, exist_ok=True)
    path = osp.join(work_dir, '.suite.lock')
    with open(path, 'a+') as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            try:
                holder = json.loads(f.read() or '{}')
            except ValueError:
                holder = {}
            raise UserError(
                f'{work_dir} is in use by another suite run (pid '
                f'{holder.get("pid", "?")} on {holder.get("host", "?")}, '
                f'since {holder.get("since", "?")}: '
                f'{holder.get("command", "?")}); wait for it to end, or '
                'use another --work-dir') from None
        f.seek(0)
        f.truncate()
        json.dump(dict(pid=os.getpid(), host=socket.gethostname(),
                       since=time.strftime('%Y-%m-%d %H:%M:%S'),
                       command=' '.join(sys.argv)), f)
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class SuiteRunner:
    """Run the evaluations of a suite for one backbone.

    Args:
        ctx (SuiteContext): Config, checkpoint, work dir, processes.
        evaluations (list[Evaluation]): From :func:`build_evaluations`.
        force (Sequence[str]): Names to re-run although a result with the
            same request exists (the old result moves to
            ``results/superseded/``).
        only (Sequence[str], optional): Run only these (their needs must
            have results already).
    """

    def __init__(self,
                 ctx: SuiteContext,
                 evaluations: List[Evaluation],
                 force: Sequence[str] = (),
                 only: Optional[Sequence[str]] = None) -> None:
        names = {e.name for e in evaluations}
        unknown = sorted(set(force) - names) + sorted(set(only or ()) -
                                                      names)
        if unknown:
            raise UserError(f'unknown evaluation name(s) '
                            f'{", ".join(unknown)}; this suite has: '
                            f'{", ".join(sorted(names))}')
        link(evaluations)
        self.ctx = ctx
        self.evaluations = evaluations
        self.force = set(force)
        self.only = set(only) if only else None
        self.pretraining: Optional[Dict] = None  # set by run()

    def result_path(self, name: str) -> str:
        return self.ctx.result_path(name)

    def check_work_dir(self) -> None:
        """A work dir holds the results of one backbone and checkpoint;
        another one's would be mixed in, so it is refused."""
        info = read_json(self.ctx.path('suite.json'))
        mine = self._identity()
        if info and (info.get('config'), info.get('checkpoint_sha256')) != (
                mine['config'], mine['checkpoint_sha256']):
            raise UserError(
                f'{self.ctx.work_dir} holds the results of '
                f'{info.get("config")} with checkpoint SHA-256 '
                f'{str(info.get("checkpoint_sha256"))[:12]}; use another '
                '--work-dir for this backbone or checkpoint')

    def _identity(self) -> Dict:
        return dict(config=osp.relpath(osp.abspath(self.ctx.config),
                                       REPO_ROOT),
                    checkpoint=self.ctx.checkpoint,
                    checkpoint_sha256=self.ctx.sha256)

    def run(self) -> Dict[str, Dict]:
        """Every evaluation in order; returns ``{name: result}``.

        Raises:
            UserError: another run uses the work dir
                (:func:`work_dir_lock`), or it holds another backbone's
                results.
        """
        with work_dir_lock(self.ctx.work_dir):
            self.check_work_dir()
            return self._run_all()

    def _run_all(self) -> Dict[str, Dict]:
        os.makedirs(self.ctx.path('results'), exist_ok=True)
        self.pretraining = pretraining_record(self.ctx.config,
                                              self.ctx.checkpoint)
        write_json(self.ctx.path('suite.json'), self.record())
        done: Dict[str, Dict] = {}
        for evaluation in self.evaluations:
            done[evaluation.name] = self._one(evaluation, done)
        if self.only is not None:  # what this invocation was asked for
            return {k: v for k, v in done.items() if k in self.only}
        return done

    def record(self) -> Dict:
        """What ``suite.json`` says: the backbone, its weights and how they
        were made, the code, the evaluations, and the downstream config
        each trained evaluation resolved (None: none was found)."""
        downstream = {}
        for e in self.evaluations:
            if hasattr(e, 'config'):
                try:
                    downstream[e.name] = e.config(self.ctx)
                except EvaluationMissing:
                    downstream[e.name] = None
        return dict(self._identity(), code=code_version(),
                    pretraining=self.pretraining,
                    evaluations=[e.name for e in self.evaluations],
                    downstream=downstream)

    def _one(self, evaluation: Evaluation, done: Dict[str, Dict]) -> Dict:
        name = evaluation.name
        path = self.result_path(name)
        old = read_json(path)
        request = evaluation.request(self.ctx)
        inputs = self._inputs(evaluation, done)
        if inputs:  # no dependency: the request is what it always was
            request['inputs'] = inputs
        key = protocol_id(request)
        if self.only is not None and name not in self.only:
            return old or dict(status='not run')
        if old and old.get('request_id') == key and old.get(
                'status') == 'ok' and name not in self.force:
            print_log(f'{name}: done already ({path}), skipped',
                      logger='current')
            return old
        if old and (old.get('status') == 'ok' or name in self.force):
            self._supersede(path)
        if osp.exists(outcomes_path(path)):
            # no result names it (a run stopped before writing its
            # result): the evaluation makes its own
            os.remove(outcomes_path(path))
        self._claim_work_dirs(evaluation, request, key)
        print_log(f'{name}: running', logger='current')
        start = time.time()
        try:
            result = dict(status='ok', **evaluation.run(self.ctx, done))
        except EvaluationMissing as e:
            result = dict(status='missing', reason=e.reason,
                          command=e.command)
        except EvaluationFailed as e:
            result = dict(status='failed', reason=e.reason,
                          command=e.command)
        except Exception as e:  # one evaluation's bug is not the suite's
            result = dict(status='failed',
                          reason=f'{type(e).__name__}: {e}', command='')
        result.update(name=name, request=request, request_id=key,
                      seconds=round(time.time() - start, 1))
        # an evaluation hands back the outcomes it read from its tool; they
        # are written beside the result, named by it (before it, so a kill
        # in between leaves a file no result names, removed above)
        outcomes = result.pop('outcomes', None)
        if result['status'] == 'ok' and isinstance(outcomes, Outcomes):
            result['outcomes'] = write_outcomes(path, outcomes)
        ckpt = result.get('checkpoint')
        if result['status'] == 'ok' and ckpt and osp.isfile(ckpt):
            # what a dependent's request names (:meth:`_inputs`)
            result['checkpoint_sha256'] = file_sha256(ckpt)
        fp = result.get('fingerprint')
        if fp and (fp.get('run') or {}).get('data_root'):
            # the data it was measured on, demo data or not, for the
            # report's banner and flags, kept should the data be removed
            fp['data'] = data_record(str(fp['run']['data_root']))
        if result.get('fingerprint') and self.pretraining:
            # how the evaluated weights were made, for the report
            result['fingerprint']['pretraining'] = self.pretraining
        write_json(path, result)
        status = result['status']
        detail = '' if status == 'ok' else f': {result["reason"]}'
        print_log(f'{name}: {status}{detail} ({result["seconds"]:.0f}s)',
                  logger='current', level=20 if status == 'ok' else 30)
        return result

    @staticmethod
    def _inputs(evaluation: Evaluation,
                done: Dict[str, Dict]) -> Dict[str, Dict]:
        """The identity of each result ``evaluation`` reads: its request id
        and the SHA-256 of its checkpoint, so a probe of another recipe,
        or one trained again (``--force``), makes its dependents run
        again rather than count as done."""
        out = {}
        for needed_name in sorted(evaluation.links.values()):
            result = done.get(needed_name) or {}
            out[needed_name] = dict(
                request_id=result.get('request_id'),
                checkpoint_sha256=result.get('checkpoint_sha256'))
        return out

    def _claim_work_dirs(self, evaluation: Evaluation, request: Dict,
                         key: str) -> None:
        """Give ``evaluation`` work dirs made for this request: one made
        for another (or for no recorded) request, and any under
        ``--force``, moves aside to ``<dir>.superseded.<time>/`` (kept),
        so a changed recipe never resumes the old training; one of the
        same request stays, so an interrupted run resumes."""
        for folder in evaluation.work_dirs(self.ctx):
            marker = osp.join(folder, REQUEST_FILE)
            made_for = (read_json(marker) or {}).get('request_id')
            if osp.isdir(folder) and (made_for != key
                                      or evaluation.name in self.force):
                base = f'{folder}.superseded.' + time.strftime(
                    '%Y%m%d-%H%M%S')
                aside, n = base, 1
                while osp.exists(aside):
                    aside, n = f'{base}-{n}', n + 1
                shutil.move(folder, aside)
                why = ('--force' if made_for == key else
                       f'it was made for request {made_for}, this is '
                       f'{key}')
                print_log(f'{evaluation.name}: {folder} moved aside to '
                          f'{aside} ({why}); training starts afresh',
                          logger='current', level=30)
            os.makedirs(folder, exist_ok=True)
            write_json(marker, dict(request_id=key, request=request))

    def _supersede(self, path: str) -> None:
        """Keep a result that is about to be replaced, with its per-image
        outcomes (renamed beside it, and the result naming them so)."""
        folder = osp.join(osp.dirname(path), 'superseded')
        os.makedirs(folder, exist_ok=True)
        stamp = time.strftime('%Y%m%d-%H%M%S')
        base = osp.splitext(osp.basename(path))[0]
        kept = osp.join(folder, f'{base}.{stamp}.json')
        shutil.move(path, kept)
        result = read_json(kept) or {}
        record = result.get('outcomes')
        source = osp.join(osp.dirname(path), str((record or {}).get('file')))
        if record and osp.isfile(source):
            shutil.move(source, outcomes_path(kept))
            result['outcomes'] = dict(
                record, file=osp.basename(outcomes_path(kept)))
            write_json(kept, result)
