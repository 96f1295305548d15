"""``tools/visualization/vis_erf.py``: effective receptive fields.

As RepLKNet (Ding et al. 2022) measures them: the gradient of a stage's
central output point with respect to the input, averaged over images
(about 50 in the paper, each resized to 1024 x 1024), shown as
``log10(x + 1)`` scaled to [0, 1]; one heat map per model, several models in
one figure. The JSON gives the high-contribution area ratios: the smallest
centred square covering t = 20%, 30%, 50% and 99% of the contribution, as a
share of the input area. Works on trained checkpoints and, without one, at
initialisation.

Example::

    python tools/visualization/vis_erf.py data/demo/imagenet/val \\
        --model configs/_base_/models/bcssl-t_3x3.py \\
        --model configs/_base_/models/bcssl-t_9x9.py \\
            work_dirs/demo/suite/weights/backbone_teacher.pth \\
        --img-size 224 --num-images 50 --out erf.png --json erf.json
"""
import argparse
import json
import sys
from typing import Iterator, List, Optional

import torch

from mmbcssl.apis import init_backbone
from mmbcssl.cli.vis_cam import (add_model_args, model_specs, pick_device,
                                 quiet_init_logs, run_vis_cli)
from mmbcssl.fileio import atomic_write
from mmbcssl.utils.launch import UserError, load_config
from mmbcssl.visualization.erf import (GRAD_MODES, THRESHOLDS, area_ratios,
                                       erf_figure, erf_map, erf_record,
                                       erf_report)
from mmbcssl.visualization.images import (check_output, list_images,
                                          load_image, save_figure, to_input)
from mmbcssl.visualization.layers import stage_names


def image_batches(paths: List[str], img_size: int, batch_size: int,
                  device: torch.device) -> Iterator[torch.Tensor]:
    """Normalised inputs, each image resized to ``img_size`` squared (as
    RepLKNet's script does: no crop)."""
    for i in range(0, len(paths), batch_size):
        yield to_input([load_image(p, img_size) for p in
                        paths[i:i + batch_size]], device)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n', 1)[1])
    parser.add_argument('images', help='a folder of images (e.g. a val set)')
    add_model_args(parser)
    parser.add_argument('--out', required=True, help='output PNG')
    parser.add_argument('--json', help='write the area ratios here')
    parser.add_argument('--num-images', type=int, default=50)
    parser.add_argument('--img-size', type=int, default=1024,
                        help='input side (RepLKNet: 1024, so that the '
                        'border does not cut the field)')
    parser.add_argument('--stage', type=int, default=-1,
                        help='which stage output (ViT: which layer); '
                        'default the last')
    parser.add_argument('--layer', help='a module name of the backbone '
                        'instead of --stage')
    parser.add_argument('--grad', choices=GRAD_MODES, default='abs',
                        help='abs: |gradient|; relu: RepLKNet script')
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument('--title', help='figure title')

    def _run() -> None:
        args = parser.parse_args(argv)
        specs = model_specs(args)
        device = pick_device(args.device)
        quiet_init_logs()
        check_output(args.out, args.overwrite)
        if args.json:
            check_output(args.json, args.overwrite)
        paths = list_images(args.images, args.num_images)
        maps, records = [], []
        for config, ckpt, label in specs:
            cfg = load_config(config, args.cfg_options)
            backbone = init_backbone(
                cfg, ckpt, args.seed, device,
                allow_partial=args.allow_partial_weights)['backbone']
            if args.layer:
                layer = args.layer
            else:
                stages = stage_names(backbone)
                if not -len(stages) <= args.stage < len(stages):
                    raise UserError(f'--stage {args.stage}: the backbone '
                                    f'has {len(stages)} stages')
                layer = stages[args.stage]
            erf = erf_map(backbone, layer,
                          image_batches(paths, args.img_size,
                                        args.batch_size, device),
                          grad=args.grad)
            maps.append(erf)
            records.append(erf_record(
                label, erf, config=config, checkpoint=ckpt,
                seed=None if ckpt else args.seed, layer=layer,
                num_images=len(paths)))
            ratios = ', '.join(f't={k}: {v:.2%}' for k, v in
                               records[-1]['area_ratio'].items())
            print(f'{label} ({layer}): area ratio {ratios}')
        title = args.title or (
            f'ERF, {len(paths)} images at {args.img_size} px')
        fig = erf_figure(maps, [s[2] for s in specs],
                         [area_ratios(m, THRESHOLDS) for m in maps], title)
        w, h = save_figure(fig, args.out, args.overwrite, args.palette)
        print(f'wrote {args.out} ({w} x {h} px)')
        if args.json:
            report = erf_report(records, args.grad)
            report.update(images=args.images, img_size=args.img_size,
                          cfg_options=args.cfg_options)
            atomic_write(json.dumps(report, indent=2) + '\n', args.json)
            print(f'wrote {args.json}')

    return run_vis_cli(_run)


if __name__ == '__main__':
    sys.exit(main())
