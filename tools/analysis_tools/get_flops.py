#!/usr/bin/env python
"""Parameters and FLOPs (multiply-adds) of the models in configs, with and
without the 1000-class head, compared with the paper's Table 5.

    python tools/analysis_tools/get_flops.py configs/_base_/models/*.py
"""
import argparse
import json
import os.path as osp
import sys

from mmbcssl.utils.analysis import build_model, complexity, table5_match


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('configs', nargs='+', help='config files')
    parser.add_argument('--shape', type=int, default=224, help='image side')
    parser.add_argument('--out', help='also write the numbers as JSON')
    args = parser.parse_args(argv)
    rows = {}
    print(f'{"model":<16} {"params+head":>11} {"FLOPs+head":>10} '
          f'{"params":>8} {"FLOPs":>7}  Table 5')
    for config in args.configs:
        if not osp.isfile(config):
            print(f'error: config {config!r} not found', file=sys.stderr)
            return 2
        name = osp.splitext(osp.basename(config))[0]
        res = complexity(build_model(config), args.shape)
        res['table5'] = table5_match(name, res)
        rows[name] = res
        print(f'{name:<16} {res["params_head"]:10.2f}M '
              f'{res["flops_head"]:9.3f}G {res["params_no_head"]:7.2f}M '
              f'{res["flops_no_head"]:6.3f}G  {res["table5"] or "-"}')
    print('FLOPs are multiply-adds at '
          f'{args.shape}x{args.shape} (mmengine FlopAnalyzer).')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
