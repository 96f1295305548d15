"""Turn a self-supervised checkpoint into backbone weights.

The output holds ``backbone.*`` keys (teacher by default, the student with
``--student``): see :mod:`mmbcssl.apis.backbone_weights`.
"""
import argparse
import os
import os.path as osp
import sys
from typing import List, Optional

from mmbcssl.apis.backbone_weights import (extract_backbone,
                                           save_backbone_weights)
from mmbcssl.apis.inference import state_dict_of
from mmbcssl.fileio import TRUST_ENV, safe_torch_load
from mmbcssl.utils.launch import require_file, run_cli
from mmbcssl.utils.outputs import refuse_existing


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
        require_file(args.checkpoint, 'checkpoint',
                     'a pre-training checkpoint (.pth)')
        refuse_existing([args.out], args.overwrite, 'out')
        if args.trust_checkpoint:
            os.environ[TRUST_ENV] = '1'
        ckpt = safe_torch_load(args.checkpoint, map_location='cpu')
        state = state_dict_of(ckpt, args.checkpoint)
        source = 'student' if args.student else 'teacher'
        kept, dropped = extract_backbone(state, source)
        # mmengine's checkpoints keep the epoch in a `meta` dict; a file
        # without one (or with `meta` of another kind) records none
        trained = ckpt.get('meta')
        meta = dict(source=osp.abspath(args.checkpoint), part=source,
                    epoch=trained.get('epoch')
                    if isinstance(trained, dict) else None)
        save_backbone_weights(kept, args.out, meta)
        n = sum(v.numel() for v in kept.values())
        print(f'kept {len(kept)} {source} backbone tensors ({n / 1e6:.2f}M '
              f'values) as backbone.*; dropped: {", ".join(dropped)}; '
              f'wrote {args.out}')

    return run_cli(_run, argv)


if __name__ == '__main__':
    sys.exit(main())
