"""Errors that the CLI reports as one clear line and exit code 2.

Every error says which file, layer, node or value is at fault and which limit it breaks.
"""


class DelayDeployError(Exception):
    """Base class: a user-facing problem with an input (file, model, data, option)."""


class CheckpointError(DelayDeployError):
    """A checkpoint is corrupt, truncated, or does not match its configuration or preset."""


class IRValidationError(DelayDeployError):
    """A deployment IR breaks an invariant (shape, integer delay, finiteness)."""


class NIRFormatError(DelayDeployError):
    """A NIR graph uses a node, delay or shape that the IR cannot represent."""


class ConstraintError(DelayDeployError):
    """A network does not fit a target's limits (delay range, bit widths, state overflow)."""


class BundleError(DelayDeployError):
    """A deployment bundle is incomplete, tampered with, or of an unknown format."""


class DatasetError(DelayDeployError):
    """A dataset file or folder is missing, empty, unreadable or of the wrong layout."""


class DerivedFileError(BundleError):
    """A bundle's derived file (PyNN script or network, integer form, test vectors, manifest) is
    not what delaydeploy derives from its ``network.ddn``: ``verify`` reports it as a mismatch."""


class SignatureError(BundleError):
    """A bundle's signature is missing, made by another key, or no longer covers its files."""
