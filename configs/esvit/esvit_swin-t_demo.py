# EsViT at demo size: Swin-T on the built-in demo data with the DINO demo
# settings (configs/dino/bcssl-t_9x9_100e_demo.py: crops 64/32 px, 4 local
# views, head 4096 prototypes, batch 32, 3 epochs), on CPU. The algorithm,
# both heads and both losses are the real ones; the 2 x 2 / 1 x 1 last-stage
# maps give 4 / 1 regions per view. The teacher temperature follows
# EsViT's recipe (0.04 -> 0.07), its 30-of-300-epoch warm-up shortened to
# the first of the 3 epochs.
_base_ = '../dino/bcssl-t_9x9_100e_demo.py'

# model settings
model = dict(
    type='EsViT',
    # EsViT's Swin (configs/_base_/models/swin-t.py) built for 64-px
    # inputs: as EsViT would, the 4 x 4 and 2 x 2 last two stages get one
    # window of their size and no shift
    backbone=dict(_delete_=True, type='OriginalSwinTransformer', arch='tiny',
                  img_size=64, windows_at_img_size=True,
                  norm_cfg=dict(type='LN', eps=1e-6), drop_path_rate=0.1,
                  out_indices=(3, )),
    neck=None,
    head=dict(in_channels=768),
    region_head=dict(type='DINOHead', in_channels=768, out_channels=4096,
                     hidden_channels=512, bottleneck_channels=128,
                     norm_last_layer=True),
    loss=dict(type='EsViTLoss', warmup_teacher_temp=0.04, teacher_temp=0.07,
              warmup_teacher_temp_epochs=1))
