from .subset_accuracy import SubsetAccuracy

__all__ = ['SubsetAccuracy']
