"""DDP for CPU modules (distributed runs on the gloo backend)."""
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """mmengine's DDP wrapper for modules whose parameters live on the CPU.

    The runner passes ``device_ids=[LOCAL_RANK]``; DDP requires ``None`` for
    CPU modules, so it is dropped there and kept for GPU modules.
    """

    def __init__(self, module, device_ids=None, **kwargs):
        on_cpu = all(p.device.type == 'cpu' for p in module.parameters())
        super().__init__(
            module=module, device_ids=None if on_cpu else device_ids,
            **kwargs)
