"""Turn a self-supervised checkpoint into backbone weights.

The output holds ``backbone.*`` keys (teacher by default, the student with
``--student``), so it loads with
``init_cfg=dict(type='Pretrained', checkpoint=OUT, prefix='backbone.')`` in
mmpretrain classifiers, mmdet detectors and mmseg segmentors, and with
``load_from`` into an mmpretrain ``ImageClassifier``.
"""
import argparse
import io
import os
import os.path as osp
import sys
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch

from mmbcssl.apis.inference import strip_wrappers, sub_state
from mmbcssl.fileio import TRUST_ENV, atomic_write, safe_torch_load
from mmbcssl.utils.launch import UserError, run_cli
from mmbcssl.utils.outputs import refuse_existing

# Where the backbone lives in each algorithm's state dict.
SOURCES = {'teacher': 'teacher.backbone.', 'student': 'backbone.'}


def extract(state_dict: Dict[str, torch.Tensor],
            source: str = 'teacher') -> Tuple[OrderedDict, List[str]]:
    """``backbone.*`` weights of ``source``, and the key groups dropped."""
    state_dict = strip_wrappers(state_dict)
    prefix = SOURCES[source]
    kept = OrderedDict((f'backbone.{k}', v)
                       for k, v in sub_state(state_dict, prefix).items())
    if not kept:
        found = sorted({k.split('.')[0] for k in state_dict})
        raise UserError(
            f'no {source} backbone weights (keys starting with {prefix!r}) '
            f'in this checkpoint; its top-level keys are {found}. Is it a '
            'DINO/EsViT pre-training checkpoint?')
    dropped = sorted({k.split('.')[0] for k in state_dict
                      if not k.startswith(prefix)})
    return kept, dropped


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('checkpoint', help='pre-training checkpoint')
    parser.add_argument('out', help='output .pth with backbone.* weights')
    parser.add_argument('--student', action='store_true',
                        help='take the student instead of the teacher')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing output file')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='allow arbitrary pickled objects (trusted '
                        'files only)')
    parser.add_argument('--debug', action='store_true',
                        help='show the traceback of an error')

    def _run() -> None:
        args = parser.parse_args(argv)
        if not osp.isfile(args.checkpoint):
            raise UserError(f'checkpoint {args.checkpoint!r} not found')
        refuse_existing([args.out], args.overwrite, 'out')
        if args.trust_checkpoint:
            os.environ[TRUST_ENV] = '1'
        ckpt = safe_torch_load(args.checkpoint, map_location='cpu')
        state = ckpt.get('state_dict', ckpt)
        source = 'student' if args.student else 'teacher'
        kept, dropped = extract(state, source)
        meta = dict(source=osp.abspath(args.checkpoint), part=source,
                    epoch=ckpt.get('meta', {}).get('epoch'))
        buf = io.BytesIO()
        torch.save(dict(state_dict=kept, meta=meta), buf)
        atomic_write(buf.getvalue(), args.out)
        n = sum(v.numel() for v in kept.values())
        print(f'kept {len(kept)} {source} backbone tensors ({n / 1e6:.2f}M '
              f'values) as backbone.*; dropped: {", ".join(dropped)}; '
              f'wrote {args.out}')

    return run_cli(_run, argv)


if __name__ == '__main__':
    sys.exit(main())
