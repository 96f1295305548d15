"""Convert a published checkpoint into backbone weights of this project.

Reads facebookresearch/dino (ResNet-50, ViT; full checkpoints or
backbone-only releases), microsoft/esvit (Swin), facebookresearch/ConvNeXt,
timm (``convnext_*``, ``swin_*``) and mmpretrain checkpoints, and writes
``backbone.*`` weights that load with
``init_cfg=dict(type='Pretrained', checkpoint=OUT, prefix='backbone.')``
and ``tools/knn_eval.py --checkpoint OUT``. ``--to timm`` instead exports a
BC-SSL (or ConvNeXt) backbone, deploy-folded, to timm's ConvNeXt.

Every key is checked against the target backbone (read off the weights, or
``--config``): nothing is written for weights of another architecture, nor,
without ``--allow-unmatched``, when parameters stay unmatched.
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

from mmbcssl.converters import (FORMATS, ConversionError, convert_checkpoint,
                                known_formats, save_backbone)
from mmbcssl.converters.targets import describe_cfg
from mmbcssl.utils.launch import UserError, run_cli


def build_parser() -> argparse.ArgumentParser:
    formats = '; '.join(f'{n}: {FORMATS[n].description}'
                        for n in known_formats())
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        epilog=f'formats -- {formats}')
    parser.add_argument('checkpoint', help='published checkpoint to read')
    parser.add_argument('out', help='output .pth')
    parser.add_argument(
        '--from', dest='fmt', default='auto', metavar='FORMAT',
        help='source format: auto (detect from the keys), '
        f'{", ".join(known_formats())}. Defaults to auto')
    parser.add_argument(
        '--weights', choices=['teacher', 'student'],
        help='network of a DINO / EsViT / self-supervised mmpretrain '
        'checkpoint. Defaults to the teacher of DINO and EsViT files')
    parser.add_argument(
        '--config',
        help='a config whose model.backbone the weights must fit (e.g. '
        'configs/_base_/models/resnet50.py); without it the architecture '
        'is read off the weights')
    parser.add_argument(
        '--to', choices=['mmpretrain', 'timm'], default='mmpretrain',
        help='mmpretrain: backbone.* weights for this project (default); '
        "timm: a BC-SSL / ConvNeXt backbone folded into timm's ConvNeXt")
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing output file')
    parser.add_argument(
        '--allow-unmatched', action='store_true',
        help='write the matched weights even if some backbone keys stay '
        'missing or source keys unused')
    parser.add_argument(
        '--trust-checkpoint', action='store_true',
        help='allow any pickled object, not only tensors, plain containers '
        'and the argparse arguments of DINO / EsViT / ConvNeXt / timm '
        'training checkpoints; only for files from a source you trust')
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()

    def _run() -> None:
        args = parser.parse_args(argv)
        if osp.exists(args.out) and not args.overwrite:
            raise UserError(f'{args.out} exists; pass --overwrite to '
                            'replace it')
        if osp.abspath(args.out) == osp.abspath(args.checkpoint):
            raise UserError('the output would replace the source checkpoint'
                            '; choose another output path')
        try:
            result = convert_checkpoint(
                args.checkpoint, fmt=args.fmt, weights=args.weights,
                config=args.config, to=args.to,
                allow_unmatched=args.allow_unmatched,
                trust=args.trust_checkpoint)
            save_backbone(result, args.out, overwrite=args.overwrite)
        except ConversionError as e:
            raise UserError(str(e)) from None
        part = f' ({result.part})' if result.part else ''
        print(f'read {args.checkpoint} as {result.format}{part}')
        print(f'backbone: {describe_cfg(result.backbone_cfg)}')
        print(result.report.summary())
        if result.timm is not None:
            print(f'wrote {args.out} for timm: '
                  f'{result.timm.create_model_call(args.out)}')
        else:
            print(f'wrote {args.out}: init_cfg=dict(type=\'Pretrained\', '
                  f'checkpoint={args.out!r}, prefix=\'backbone.\') or '
                  f'tools/knn_eval.py <config> --checkpoint {args.out}')

    return run_cli(_run)


if __name__ == '__main__':
    sys.exit(main())
