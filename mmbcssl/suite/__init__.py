"""The evaluation suite: one backbone and checkpoint in, every evaluation
of a suite config run (resumably, cached), one result file each, and the
report that gathers them (:mod:`mmbcssl.suite.report`)."""
from .context import EvaluationFailed, EvaluationMissing, SuiteContext
from .evaluations import EVALUATIONS, Evaluation, downstream_config
from .runner import SuiteRunner, build_evaluations

__all__ = [
    'EVALUATIONS', 'Evaluation', 'EvaluationFailed', 'EvaluationMissing',
    'SuiteContext', 'SuiteRunner', 'build_evaluations', 'downstream_config'
]
