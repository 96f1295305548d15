"""A trained evaluation's training dir belongs to one request: a changed
recipe or ``--force`` trains afresh (the old dir moved aside and kept), an
interrupted run of the same request resumes; the robustness sets name the
probe result they read in their request, so a new probe re-runs them.
``tools/train.py`` and ``tools/test.py`` are replaced by a stand-in that
writes what they would and records how it was called."""
import json
import os
import os.path as osp

import pytest

from mmbcssl.evaluation.fingerprint import protocol_id
from mmbcssl.suite import SuiteContext, SuiteRunner
from mmbcssl.suite.context import EvaluationFailed
from mmbcssl.suite.evaluations import LinearProbe, Robustness
from tests.conftest import REPO_ROOT

DINO = osp.join(REPO_ROOT, 'configs', 'dino', 'bcssl-t_9x9_100e.py')


class StandIn(SuiteContext):
    """Runs no tool: ``train.py`` writes one checkpoint per call (its bytes
    number the trainings and hold their arguments), ``test.py`` the
    metrics; ``interrupt`` makes the next training stop after writing
    its checkpoint, as a killed run would."""
    calls: list
    interrupt = False
    trained = 0

    def run_tool(self, name, tool, args, distributed=True):
        self.calls.append((name, tool, list(args)))
        if tool == 'train.py':
            work = args[args.index('--work-dir') + 1]
            os.makedirs(work, exist_ok=True)
            done = sorted(f for f in os.listdir(work)
                          if f.startswith('epoch_'))
            ckpt = osp.join(work, f'epoch_{len(done) + 1}.pth')
            self.trained += 1
            with open(ckpt, 'w') as f:
                f.write(f'training {self.trained}: {args}')
            open(osp.join(work, 'best_accuracy_top1_epoch_1.pth'),
                 'a').close()
            with open(osp.join(work, 'last_checkpoint'), 'w') as f:
                f.write(ckpt)
            if self.interrupt:
                self.interrupt = False
                raise EvaluationFailed('train.py was killed', tool)
        else:
            with open(args[args.index('--out') + 1], 'w') as f:
                json.dump(dict(metrics={'accuracy/top1': 50.0}), f)
        return f'{tool} {" ".join(args)}'

    def trainings(self):
        return [args for _, tool, args in self.calls if tool == 'train.py']

    def tests_of(self, name):
        return [n for n, tool, _ in self.calls
                if tool == 'test.py' and n == name]


@pytest.fixture
def suite(tmp_path, monkeypatch):
    monkeypatch.setattr(LinearProbe, '_check_data', lambda *a: None)
    (tmp_path / 'imagenet-r').mkdir()
    ctx = StandIn(DINO, None, str(tmp_path / 'work'))
    ctx.calls = []

    def run(lr=0.1, force=()):
        evaluations = [LinearProbe(
            name='linear', cfg_options=[f'optim_wrapper.optimizer.lr={lr}'])]
        evaluations += Robustness(
            name='robustness', sets=('r', ), demo=True,
            roots=dict(r=str(tmp_path / 'imagenet-r'))).expand()
        ctx.calls.clear()
        return SuiteRunner(ctx, evaluations, force=force).run()

    return ctx, run


def _aside(ctx):
    return sorted(d for d in os.listdir(ctx.work_dir)
                  if d.startswith('linear.superseded.'))


def test_a_changed_recipe_trains_afresh_and_reruns_the_robustness_sets(
        suite):
    ctx, run = suite
    first = run(lr=0.1)
    assert first['linear']['status'] == 'ok'
    assert first['robustness.r']['status'] == 'ok'
    old_ckpt = first['linear']['checkpoint']
    second = run(lr=0.2)
    (train, ) = ctx.trainings()
    assert '--resume' not in train  # the old recipe's epochs are not kept
    assert 'optim_wrapper.optimizer.lr=0.2' in train
    # the old training moved aside, kept whole, with the request it had
    (aside, ) = _aside(ctx)
    kept = osp.join(ctx.work_dir, aside)
    assert osp.isfile(osp.join(kept, osp.basename(old_ckpt)))
    with open(osp.join(kept, '.suite_request.json')) as f:
        assert json.load(f)['request_id'] == first['linear']['request_id']
    assert second['linear']['request_id'] != first['linear']['request_id']
    # the probe reads no result: its request id is what it always was
    assert second['linear']['request_id'] == protocol_id(
        second['linear']['request'])
    assert 'inputs' not in second['linear']['request']
    # the robustness set ran again, on the new probe, and says which
    assert ctx.tests_of('robustness.r')
    inputs = second['robustness.r']['request']['inputs']['linear']
    assert inputs == dict(
        request_id=second['linear']['request_id'],
        checkpoint_sha256=second['linear']['checkpoint_sha256'])
    assert second['robustness.r']['request_id'] != \
        first['robustness.r']['request_id']


def test_an_interrupted_run_of_the_same_request_resumes(suite):
    ctx, run = suite
    ctx.interrupt = True
    first = run()
    assert first['linear']['status'] == 'failed'
    second = run()
    (train, ) = ctx.trainings()
    assert '--resume' in train
    assert _aside(ctx) == []
    with open(ctx.path('linear', '.suite_request.json')) as f:
        assert json.load(f)['request_id'] == first['linear']['request_id']
    assert second['linear']['status'] == 'ok'
    assert second['linear']['checkpoint'].endswith('epoch_2.pth')
    # a third run finds everything done
    run()
    assert ctx.calls == []


def test_force_trains_the_probe_afresh_and_reruns_its_dependents(suite):
    ctx, run = suite
    first = run()
    second = run(force=['linear'])
    (train, ) = ctx.trainings()
    assert '--resume' not in train
    assert len(_aside(ctx)) == 1
    assert second['linear']['checkpoint'].endswith('epoch_1.pth')
    assert second['linear']['checkpoint_sha256'] != \
        first['linear']['checkpoint_sha256']
    assert ctx.tests_of('robustness.r')
    assert second['robustness.r']['request']['inputs']['linear'][
        'checkpoint_sha256'] == second['linear']['checkpoint_sha256']
