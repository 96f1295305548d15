"""``tools/visualization/vis_cam.py``: class activation maps of backbones.

A PNG grid with one row per model and one column per image, so kernel sizes
(or backbones) compare side by side as in the paper's Figure 4. Methods
(pytorch-grad-cam): ``eigencam`` (no labels; any config and checkpoint),
``gradcam`` (the class score of a linear probe's head: a linear-probe
config and its checkpoint), ``pca`` (not a CAM: the first three principal
components of the last stage's features as RGB, DINOv2-style).

Target layers: CNNs the last block of the last stage; Swin and ViT the first
norm of the last block, tokens reshaped to their 2-D grid (ViT's class token
dropped); ``--target-layer`` names another module of the backbone.

Example::

    python tools/visualization/vis_cam.py data/demo/imagenet/val/*/*_0.JPEG \\
        --model configs/_base_/models/bcssl-t_9x9.py \\
            work_dirs/demo/suite/weights/backbone_teacher.pth \\
        --model configs/_base_/models/bcssl-t_3x3.py \\
        --labels '9x9 DINO' '3x3 random init' --out cam.png
"""
import argparse
import os
import os.path as osp
import sys
from typing import Callable, List, Optional, Tuple

import torch
from mmengine.config import DictAction

from mmbcssl.apis import CheckpointMismatchError
from mmbcssl.apis.inference import UnexpectedWeightsError
from mmbcssl.fileio import TRUST_ENV
from mmbcssl.utils.launch import (UserError, load_config, require_file,
                                  run_cli)
from mmbcssl.visualization.cam import (METHOD_NAMES, METHODS, compute_maps,
                                       default_layer, grid_figure,
                                       render_cells)
from mmbcssl.visualization.images import (OutputExistsError, check_output,
                                          list_images, load_image,
                                          save_figure)
from mmbcssl.visualization.layers import LayerError
from mmbcssl.visualization.model import build_vis_model

# Input problems the visualisation tools report in one line.
VIS_INPUT_ERRORS = (CheckpointMismatchError, LayerError,
                    OutputExistsError)


def run_vis_cli(run: Callable[[], None]) -> int:
    """``run`` through :func:`run_cli`, with :data:`VIS_INPUT_ERRORS` as
    one-line input errors (exit 2)."""

    def guarded() -> None:
        try:
            run()
        except UnexpectedWeightsError as e:
            raise UserError(f'{e}; or pass --allow-partial-weights to skip '
                            'them') from None
        except VIS_INPUT_ERRORS as e:
            raise UserError(str(e)) from None

    return run_cli(guarded)


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """``--model CONFIG [CHECKPOINT]`` (repeatable) and what goes with it."""
    parser.add_argument(
        '--model', action='append', nargs='+', required=True,
        metavar='CONFIG [CHECKPOINT]',
        help='a config with model.backbone and optionally its weights (a '
        'pre-training checkpoint, an extracted backbone.* file or a '
        'classifier); without weights the random initialisation of --seed. '
        'Repeat for more models (one row / panel each)')
    parser.add_argument('--labels', nargs='+',
                        help='one label per --model (default: config and '
                        'checkpoint names)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of random initialisations')
    parser.add_argument('--device', help='default: cuda if available')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override entries of every model config')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='allow checkpoints that pickle arbitrary '
                        'objects (trusted files only)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace existing outputs')
    parser.add_argument('--palette', action='store_true',
                        help='write a 256-colour PNG (about 3x smaller)')
    parser.add_argument(
        '--allow-partial-weights', action='store_true',
        help='load a checkpoint that holds backbone weights the config does '
        'not build (e.g. layer scales with layer_scale_init_value=0), '
        'skipping them; by default such a checkpoint is refused, since the '
        'network shown would not be the one trained')


def model_specs(args: argparse.Namespace
                ) -> List[Tuple[str, Optional[str], str]]:
    """``(config, checkpoint or None, label)`` of each ``--model``."""
    specs = []
    for values in args.model:
        if len(values) > 2:
            raise UserError(f'--model takes CONFIG [CHECKPOINT], got '
                            f'{len(values)} values: {" ".join(values)}')
        config, ckpt = values[0], (values[1] if len(values) == 2 else None)
        require_file(config, 'config file', 'a config (.py)')
        if ckpt:
            require_file(ckpt)
        name = osp.splitext(osp.basename(config))[0]
        label = f'{name} ({osp.basename(ckpt)})' if ckpt else \
            f'{name} (random init, seed {args.seed})'
        specs.append((config, ckpt, label))
    if args.labels:
        if len(args.labels) != len(specs):
            raise UserError(f'{len(args.labels)} --labels for '
                            f'{len(specs)} --model')
        specs = [(c, k, lab) for (c, k, _), lab in zip(specs, args.labels)]
    if args.trust_checkpoint:
        os.environ[TRUST_ENV] = '1'
    return specs


def quiet_init_logs() -> None:
    """Keep mmengine's per-parameter initialisation report (hundreds of
    INFO lines for each random-init backbone) off the console.

    ``BaseModule.init_weights`` prints it through the first ``MMLogger``
    created, when that logger has no file handler; a WARNING-level logger
    made first takes it.
    """
    from mmengine.logging import MMLogger
    if not MMLogger._instance_dict:
        MMLogger.get_instance('mmbcssl_vis', log_level='WARNING')


def pick_device(name: Optional[str]) -> torch.device:
    if name:
        return torch.device(name)
    return torch.device('cuda' if torch.cuda.is_available() else 'cpu')


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n', 1)[1])
    parser.add_argument('images', nargs='+',
                        help='images and/or folders of images (one column '
                        'each, in order)')
    add_model_args(parser)
    parser.add_argument('--out', required=True, help='output PNG')
    parser.add_argument('--method', choices=METHODS, default='eigencam')
    parser.add_argument('--target-layer',
                        help='module name in the backbone (default: see '
                        'above; --list-layers shows the names)')
    parser.add_argument('--target-class', type=int,
                        help='Grad-CAM class (default: each prediction)')
    parser.add_argument('--max-images', type=int, default=6,
                        help='at most N columns (folders are read sorted)')
    parser.add_argument('--img-size', type=int, default=224)
    parser.add_argument('--resize', type=int,
                        help='short side before the centre crop (default: '
                        'img-size * 256 / 224)')
    parser.add_argument('--cell-size', type=int, default=160,
                        help='pixels per grid cell')
    parser.add_argument('--title', help='figure title')
    parser.add_argument('--list-layers', action='store_true',
                        help='print the module names of the first model and '
                        'exit')

    def _run() -> None:
        args = parser.parse_args(argv)
        specs = model_specs(args)
        device = pick_device(args.device)
        quiet_init_logs()
        if args.list_layers:
            cfg = load_config(specs[0][0], args.cfg_options)
            model = build_vis_model(
                cfg, specs[0][1], args.seed, device,
                allow_partial=args.allow_partial_weights)
            for name, module in model.backbone.named_modules():
                print(f'{name or "(backbone)"}  {type(module).__name__}')
            return
        check_output(args.out, args.overwrite)
        resize = args.resize or round(args.img_size * 256 / 224)
        paths = [p for src in args.images for p in list_images(src)]
        paths = paths[:args.max_images]
        images = [load_image(p, args.img_size, resize) for p in paths]
        rows, notes = [], []
        for config, ckpt, label in specs:
            cfg = load_config(config, args.cfg_options)
            model = build_vis_model(
                cfg, ckpt, args.seed, device,
                with_head=args.method == 'gradcam',
                allow_partial=args.allow_partial_weights)
            layer = args.target_layer or default_layer(model, args.method)
            maps, classes = compute_maps(model, images, args.method, layer,
                                         args.target_class)
            rows.append(render_cells(images, maps, args.method))
            notes.append([f'class {c}' for c in classes] or None)
            print(f'{label}: {METHOD_NAMES[args.method]} at {layer}')
        title = args.title or f'{METHOD_NAMES[args.method]}'
        fig = grid_figure(rows, [s[2] for s in specs],
                          [osp.basename(p)[:24] for p in paths], title,
                          cell=args.cell_size, notes=notes)
        w, h = save_figure(fig, args.out, args.overwrite, args.palette)
        print(f'wrote {args.out} ({w} x {h} px: {len(specs)} model(s) x '
              f'{len(paths)} image(s))')

    return run_vis_cli(_run)


if __name__ == '__main__':
    sys.exit(main())
