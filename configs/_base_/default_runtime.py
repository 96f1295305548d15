# runtime shared by the mmpretrain-scope configs
_base_ = './runtime.py'
default_scope = 'mmpretrain'
custom_imports = dict(imports=['mmbcssl'], allow_failed_imports=False)
