from .bcssl import BCSSL, BCSSLBlock

__all__ = ['BCSSL', 'BCSSLBlock']
