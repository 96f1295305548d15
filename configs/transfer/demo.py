# The transfer suite on the built-in demo data (tools/misc/make_demo_data.py):
# its one folder set with train/val splits, once per metric, so that every
# metric path of tools/transfer_linear.py runs in minutes on a CPU. The
# demo's val/ is the test split; lambda is searched on a stratified 20 %
# of train.
data_root = 'data/demo'

_demo = dict(root='imagenet', train='train', val=None, test='val')
datasets = dict(
    demo_accuracy=dict(_demo, metric='accuracy'),
    demo_mean_per_class=dict(_demo, metric='mean_per_class'),
    demo_map_11point=dict(_demo, metric='map_11point'),
    demo_roc_auc=dict(_demo, metric='roc_auc'),
)
presets = dict(demo4=list(datasets))
