"""The built-in demo data: see :mod:`mmbcssl.datasets.demo.make`."""
from .make import (DemoSizes, demo_data_holding, make_demo_data,
                   read_manifest)

__all__ = [
    'DemoSizes', 'demo_data_holding', 'make_demo_data', 'read_manifest',
    'main'
]


def _field_docs(cls) -> dict:
    """``{name: text}`` from the ``Args:`` section of ``cls``'s docstring,
    so that the command line's help is the dataclass's own documentation."""
    import re
    args = (cls.__doc__ or '').split('Args:', 1)[-1]
    return {
        m.group(1): ' '.join(m.group(2).split())
        for m in re.finditer(r'^\s+(\w+) \([^)]*\): (.+?)(?=^\s+\w+ \(|\Z)',
                             args, re.M | re.S)
    }


def main(argv=None) -> int:
    """Command line: ``python -m mmbcssl.datasets.demo --out data/demo``."""
    import argparse
    from dataclasses import fields
    parser = argparse.ArgumentParser(
        description='Make the built-in demo data (ImageNet-, COCO-, '
        'ADE20K-, A/R/Sketch- and ImageNet-C-style) deterministically.')
    parser.add_argument('--out', default='data/demo', help='output folder')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--force', action='store_true',
        help='regenerate even if a matching output exists')
    defaults = DemoSizes()
    helps = _field_docs(DemoSizes)
    for f in fields(DemoSizes):
        flag = '--' + f.name.replace('_', '-')
        text = helps.get(f.name, '')
        if f.type is bool or isinstance(getattr(defaults, f.name), bool):
            parser.add_argument(flag, action='store_true', help=text)
        else:
            parser.add_argument(flag, type=int,
                                default=getattr(defaults, f.name), help=text)
    args = parser.parse_args(argv)
    sizes = DemoSizes(**{f.name: getattr(args, f.name)
                         for f in fields(DemoSizes)})
    try:
        make_demo_data(args.out, sizes, seed=args.seed, force=args.force)
    except (ValueError, FileExistsError) as e:
        print(f'error: {e}')
        return 2
    return 0
