from .cpu_distributed_data_parallel import CPUDistributedDataParallel
from .cpu_sync_batch_norm import CPUSyncBatchNorm

__all__ = ['CPUDistributedDataParallel', 'CPUSyncBatchNorm']
