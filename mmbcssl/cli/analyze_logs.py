"""``tools/analysis_tools/analyze_logs.py``: training curves and summary.

Plots any scalars of one or more runs on one figure (one panel per key, one
line per run): what mmengine logs in ``<work_dir>/<timestamp>/vis_data/
scalars.json`` (``loss``, ``lr``, ``time``, and what hooks add: weight
decay, teacher momentum and temperature ...) and the k-NN monitor's
``<work_dir>/knn_curve.json`` (``knn/k20_top1`` ...: the paper's Figure 3).
Keys may be glob patterns. Prints, per run, the time per iteration and the
last and best value of each key.

Example::

    python tools/analysis_tools/analyze_logs.py \\
        work_dirs/demo/dino --keys loss lr 'knn/k*_top1' \\
        --out curves.png
"""
import argparse
import json
import sys
from typing import List, Optional

from mmbcssl.fileio import atomic_write
from mmbcssl.utils.launch import UserError, run_cli
from mmbcssl.visualization.images import (OutputExistsError, check_output,
                                          save_figure)
from mmbcssl.visualization.log_plots import (LogFormatError, check_keys,
                                             format_summary, load_run,
                                             plot_runs, summarize)

# the paper's Figure 3 is k-NN top-1 (k = 20) during pre-training
DEFAULT_KEYS = ('loss', 'knn/k20_top1')


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n', 1)[1])
    parser.add_argument(
        'logs', nargs='+',
        help='work dirs, scalars.json or knn_curve.json files (one run '
        'each)')
    parser.add_argument(
        '--keys', nargs='+',
        help='keys or glob patterns to plot (default: loss and '
        'knn/k20_top1, those logged)')
    parser.add_argument('--legend', nargs='+',
                        help='one label per run (default: work dir names)')
    parser.add_argument('--x-axis', choices=['iter', 'epoch'],
                        help='default: epoch when a per-epoch curve is '
                        'plotted, else iter')
    parser.add_argument('--smooth', type=int, default=1,
                        help='moving average over logged points')
    parser.add_argument('--title', help='figure title')
    parser.add_argument('--out', help='output PNG (without: summary only)')
    parser.add_argument('--summary-json', help='write the summary as JSON')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace existing outputs')
    parser.add_argument('--palette', action='store_true',
                        help='write a 256-colour PNG (about 3x smaller)')

    def _run() -> None:
        args = parser.parse_args(argv)
        if args.legend and len(args.legend) != len(args.logs):
            raise UserError(f'{len(args.legend)} --legend labels for '
                            f'{len(args.logs)} runs')
        for out in (args.out, args.summary_json):
            if out:
                check_output(out, args.overwrite)
        labels = args.legend or [None] * len(args.logs)
        runs = [load_run(p, lab) for p, lab in zip(args.logs, labels)]
        keys = args.keys or [
            k for k in DEFAULT_KEYS if any(k in r.series for r in runs)]
        if not keys:
            raise UserError(f'none of {", ".join(DEFAULT_KEYS)} was logged;'
                            ' name the keys to plot with --keys')
        check_keys(runs, keys)
        if args.out:
            fig = plot_runs(runs, keys, args.x_axis, args.title,
                            smooth=args.smooth)
            w, h = save_figure(fig, args.out, args.overwrite, args.palette)
            print(f'wrote {args.out} ({w} x {h} px)')
        rows = summarize(runs, keys)
        print(format_summary(rows))
        if args.summary_json:
            atomic_write(json.dumps(rows, indent=2) + '\n',
                         args.summary_json)

    def _guarded() -> None:
        try:
            _run()
        except (LogFormatError, OutputExistsError) as e:
            raise UserError(str(e)) from None

    return run_cli(_guarded)


if __name__ == '__main__':
    sys.exit(main())
