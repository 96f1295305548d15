"""What every evaluation of a suite run shares: the backbone config, the
weights, the work dir, and how to launch a tool."""
import json
import os
import os.path as osp
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from mmbcssl.evaluation.fingerprint import REPO_ROOT, file_sha256
from mmbcssl.utils.processes import die_with_parent

# Distributed launchers of the tools that have one (tools/dist_*.sh).
DIST_LAUNCHERS = {
    'train.py': 'dist_train.sh',
    'test.py': 'dist_test.sh',
    'knn_eval.py': 'dist_knn_eval.sh',
}


class EvaluationMissing(Exception):
    """An evaluation cannot run: its data or a result it needs is absent.

    Args:
        reason (str): What is missing.
        command (str): The command that produces it.
    """

    def __init__(self, reason: str, command: str = '') -> None:
        super().__init__(reason)
        self.reason, self.command = reason, command


class EvaluationFailed(Exception):
    """A tool an evaluation launched exited with an error."""

    def __init__(self, reason: str, command: str = '') -> None:
        super().__init__(reason)
        self.reason, self.command = reason, command


@dataclass
class SuiteContext:
    """The run's inputs and helpers.

    Args:
        config (str): The backbone's config: a pre-training config
            (``configs/dino/*.py``, ``configs/esvit/*.py``) whose metafile
            entry links the downstream configs that start from it.
        checkpoint (str, optional): Its weights: a whole pre-training
            checkpoint (the teacher is used), an extracted ``backbone.*``
            file or a converted published checkpoint. None: random init.
        work_dir (str): Where results, logs and caches go.
        gpus (int): Processes per launched tool (``tools/dist_*.sh`` when
            more than 1; gloo CPU processes without GPUs).
        use_cache (bool): Share features through the on-disk cache.
    """
    config: str
    checkpoint: Optional[str]
    work_dir: str
    gpus: int = 1
    use_cache: bool = True
    python: str = sys.executable
    log: List[str] = field(default_factory=list)
    _backbone: Optional[str] = None

    @property
    def sha256(self) -> Optional[str]:
        return file_sha256(self.checkpoint) if self.checkpoint else None

    @property
    def feature_cache(self) -> Optional[str]:
        return osp.join(self.work_dir, 'features') if self.use_cache \
            else None

    def path(self, *parts: str) -> str:
        return osp.join(self.work_dir, *parts)

    def result_path(self, name: str) -> str:
        """The result file of evaluation ``name``."""
        return self.path('results', f'{name}.json')

    def backbone_weights(self) -> Optional[str]:
        """An extracted ``backbone.*`` file of the checkpoint: the file
        itself when it already is one, else its teacher, extracted once
        into the work dir (atomically)."""
        if self.checkpoint is None or self._backbone:
            return self._backbone
        from mmbcssl.apis.inference import read_state_dict
        state = read_state_dict(self.checkpoint)
        if not any(k.startswith('teacher.backbone.') for k in state):
            self._backbone = self.checkpoint
            return self._backbone
        out = self.path('weights', 'backbone_teacher.pth')
        if not osp.isfile(out):
            from mmbcssl.apis.backbone_weights import (extract_backbone,
                                                       save_backbone_weights)
            kept, _ = extract_backbone(state, 'teacher')
            save_backbone_weights(
                kept, out, dict(source=osp.abspath(self.checkpoint),
                                part='teacher', source_sha256=self.sha256))
        self._backbone = out
        return out

    def tool_command(self, tool: str, args: List[str],
                     distributed: bool = True) -> List[str]:
        """The command line of ``tools/<tool>``: through its
        ``tools/dist_*.sh`` launcher when the run has several processes."""
        launcher = DIST_LAUNCHERS.get(osp.basename(tool))
        if distributed and self.gpus > 1 and launcher:
            # dist_test.sh wants <config> <checkpoint> <gpus>; the others
            # <config> <gpus>
            n_lead = 2 if launcher == 'dist_test.sh' else 1
            return (['bash', osp.join(REPO_ROOT, 'tools', launcher)] +
                    args[:n_lead] + [str(self.gpus)] + args[n_lead:])
        return [self.python, osp.join(REPO_ROOT, 'tools', tool)] + args

    def run_tool(self, name: str, tool: str, args: List[str],
                 distributed: bool = True) -> str:
        """Run a tool with its output in ``logs/<name>.log``; return the
        command. Raises :class:`EvaluationFailed` on a non-zero exit."""
        cmd = self.tool_command(tool, args, distributed)
        shown = ' '.join(cmd)
        os.makedirs(self.path('logs'), exist_ok=True)
        log_path = self.path('logs', f'{name}.log')
        env = dict(os.environ, PYTHON=self.python)
        start = time.time()
        with open(log_path, 'a') as log:
            log.write(f'$ {shown}\n')
            log.flush()
            # the tool dies with the suite (SIGKILL, OOM killer included)
            code = subprocess.call(cmd, cwd=REPO_ROOT, stdout=log,
                                   stderr=subprocess.STDOUT, env=env,
                                   preexec_fn=die_with_parent())
        self.log.append(f'{name}: {time.time() - start:.0f}s, exit {code}')
        if code != 0:
            tail = _last_error(log_path)
            raise EvaluationFailed(
                f'{tool} exited with {code}: {tail} (log: {log_path})',
                shown)
        return shown


def _last_error(log_path: str) -> str:
    """The tool's one-line ``error:`` message, else the log's last line."""
    with open(log_path, errors='replace') as f:
        lines = [line.strip() for line in f if line.strip()]
    errors = [line for line in lines if line.startswith('error:')]
    return (errors or lines or ['no output'])[-1][:300]


def read_json(path: str) -> Optional[Dict]:
    """The JSON at ``path``, or None when it is absent or unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
