"""DDP for CPU modules (distributed runs on the gloo backend)."""
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS

from .cpu_sync_batch_norm import CPUSyncBatchNorm


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """mmengine's DDP wrapper for modules whose parameters live on the CPU.

    The runner passes ``device_ids=[LOCAL_RANK]``; DDP requires ``None`` for
    CPU modules, so it is dropped there and kept for GPU modules. The
    ``torch.nn.SyncBatchNorm`` layers that ``sync_bn='torch'`` made (GPU
    only: DDP refuses them on CPU) become :class:`CPUSyncBatchNorm`, which
    synchronises the statistics over the process group as they do.
    """

    def __init__(self, module: nn.Module, device_ids=None, **kwargs):
        on_cpu = all(p.device.type == 'cpu' for p in module.parameters())
        if on_cpu and any(
                isinstance(m, nn.SyncBatchNorm) for m in module.modules()):
            module = CPUSyncBatchNorm.convert(module)
            print_log(
                'SyncBatchNorm on CPU processes: the layers run as '
                'CPUSyncBatchNorm (statistics all-reduced over the process '
                'group)', logger='current')
        super().__init__(
            module=module, device_ids=None if on_cpu else device_ids,
            **kwargs)
