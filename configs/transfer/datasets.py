# The small-data-set linear transfer suite (tools/transfer_linear.py).
# Data sets and their metrics after CLIP (Radford et al. 2021, Table 9),
# whose linear-probe suite EsViT (Li et al. 2021) reports for
# self-supervised Swin. Each set is an image folder:
#   <data_root>/<root>/<split>/<class>/<image>
# with the same class folders in every split. `val: None` holds out a
# stratified `val_fraction` of train for the lambda search (the refit then
# uses all of train). None of these can be downloaded by this project:
# convert each with its own tools into the folder layout.
# UCF101 is a video set: CLIP (and EsViT after it) classify the middle frame
# of each clip; extract those frames into the folder layout.
# Note: VOC2007 is multi-label; in a folder layout each image has one
# class, so its 11-point mAP here is over single-label folders (e.g. one
# folder per image's main object), not the official multi-label split.
data_root = 'data/transfer'

datasets = dict(
    food101=dict(root='food101', metric='accuracy'),
    cifar10=dict(root='cifar10', metric='accuracy'),
    cifar100=dict(root='cifar100', metric='accuracy'),
    birdsnap=dict(root='birdsnap', metric='accuracy'),
    sun397=dict(root='sun397', metric='accuracy'),
    stanford_cars=dict(root='stanford_cars', metric='accuracy'),
    fgvc_aircraft=dict(root='fgvc_aircraft', val='val',
                       metric='mean_per_class'),
    voc2007=dict(root='voc2007', val='val', metric='map_11point'),
    dtd=dict(root='dtd', val='val', metric='accuracy'),
    oxford_pets=dict(root='oxford_pets', metric='mean_per_class'),
    caltech101=dict(root='caltech101', metric='mean_per_class'),
    flowers102=dict(root='flowers102', val='val', metric='mean_per_class'),
    mnist=dict(root='mnist', metric='accuracy'),
    fer2013=dict(root='fer2013', val='val', metric='accuracy'),
    stl10=dict(root='stl10', metric='accuracy'),
    eurosat=dict(root='eurosat', metric='accuracy'),
    resisc45=dict(root='resisc45', metric='accuracy'),
    gtsrb=dict(root='gtsrb', metric='accuracy'),
    kitti_distance=dict(root='kitti_distance', val='val', metric='accuracy'),
    country211=dict(root='country211', val='val', metric='accuracy'),
    patch_camelyon=dict(root='patch_camelyon', val='val', metric='accuracy'),
    hateful_memes=dict(root='hateful_memes', val='val', metric='roc_auc'),
    rendered_sst2=dict(root='rendered_sst2', val='val', metric='accuracy'),
    ucf101=dict(root='ucf101', val='val', metric='accuracy'),
)

# Named lists of sets; a mean is always reported with the preset it is over.
presets = dict(
    # CLIP's linear-probe image sets (Radford et al. 2021, Table 9) without
    # the video, CLEVR and ImageNet columns: 23 sets
    clip23=[
        'food101', 'cifar10', 'cifar100', 'birdsnap', 'sun397',
        'stanford_cars', 'fgvc_aircraft', 'voc2007', 'dtd', 'oxford_pets',
        'caltech101', 'flowers102', 'mnist', 'fer2013', 'stl10', 'eurosat',
        'resisc45', 'gtsrb', 'kitti_distance', 'country211',
        'patch_camelyon', 'hateful_memes', 'rendered_sst2'
    ],
    # the 18 sets of EsViT's transfer table (Li et al. 2021, arXiv
    # 2106.09785, appendix C.5, Table 10), in its order, UCF101 (middle
    # frames) among them; their metrics are those above (mean per class:
    # FGVC Aircraft, Oxford Pets, Caltech-101, Flowers102; 11-point mAP:
    # VOC2007; ROC-AUC: Hateful Memes; accuracy elsewhere, PatchCamelyon
    # too). EuroSAT and RESISC45 are not in it: they stay in clip23 and
    # can be added with --sets.
    esvit18=[
        'food101', 'cifar10', 'cifar100', 'sun397', 'stanford_cars',
        'fgvc_aircraft', 'voc2007', 'dtd', 'oxford_pets', 'caltech101',
        'flowers102', 'mnist', 'fer2013', 'stl10', 'gtsrb',
        'patch_camelyon', 'ucf101', 'hateful_memes'
    ],
)
