"""``nn.SyncBatchNorm``: batch norm whose training statistics are those of the global batch
of a data-parallel run (every rank's shard together), as ``torch.nn.SyncBatchNorm``."""
from .. import distributed
from .layers import _BatchNorm


class SyncBatchNorm(_BatchNorm):
    """Batch norm for (N, C), (N, C, L) or (N, C, H, W) inputs whose statistics, in
    training, are all-reduced over the ranks of ``minidl.distributed`` (one process: the
    same as BatchNorm). ``SyncBatchNorm.convert_sync_batchnorm(model)`` swaps every
    BatchNorm1d/2d of a model for one, keeping its parameters and running statistics."""
    ranks = (2, 3, 4)

    def forward(self, x):
        if x.ndim not in self.ranks:
            raise ValueError(f"SyncBatchNorm: expected a 2-D, 3-D or 4-D input, got shape "
                             f"{x.shape}")
        use_batch_stats = self.training or self.running_mean is None
        return distributed.sync_batch_norm(x, self.running_mean, self.running_var, self.weight,
                                           self.bias, use_batch_stats, self.momentum, self.eps)

    @classmethod
    def convert_sync_batchnorm(cls, module):
        """``module`` with every batch-norm layer (recursively) replaced by a SyncBatchNorm
        holding the same parameters and buffers; returns the (possibly new) module."""
        if isinstance(module, _BatchNorm) and not isinstance(module, cls):
            sync = cls(module.num_features, module.eps, module.momentum)
            sync._parameters, sync._buffers = module._parameters, module._buffers
            sync.training = module.training
            return sync
        for name, child in list(module._modules.items()):
            module._modules[name] = cls.convert_sync_batchnorm(child)
        return module
