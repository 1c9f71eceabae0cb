"""Data modules: infinite, resumable streams of training batches, held in memory or streamed."""

from ganlab.data.base import GanDataModule
from ganlab.data.folder import ImageFolderDataModule
from ganlab.data.images import DigitsDataModule, ImageDataModule, TorchvisionDataModule
from ganlab.data.mixtures import GaussianMixture, Grid, Ring
from ganlab.data.prepared import PreparedDataModule
from ganlab.data.stacked_digits import StackedDigitsDataModule
from ganlab.data.stacked_mnist import StackedMNISTDataModule

__all__ = [
    "DigitsDataModule",
    "GanDataModule",
    "GaussianMixture",
    "Grid",
    "ImageDataModule",
    "ImageFolderDataModule",
    "PreparedDataModule",
    "Ring",
    "StackedDigitsDataModule",
    "StackedMNISTDataModule",
    "TorchvisionDataModule",
]
