"""The method registry, where the package and plugins find it:
``from regionmix_utils.methods import Method, Setting, register``."""

from regionmix_utils.mixing.core import SETTINGS, Setting
from regionmix_utils.mixing.entries import (
    MANIFOLD_LAYERS,
    METHODS,
    Method,
    check_settings,
    declaration,
    setting_names,
)

__all__ = [
    "MANIFOLD_LAYERS", "METHODS", "SETTINGS", "Method", "Setting", "check_settings", "declaration",
    "get_method", "method_names", "methods", "register", "registered", "setting_names",
    "unregister",
]  # fmt: skip

get_method = METHODS.get
method_names = METHODS.names
methods = METHODS.entries
register = METHODS.register
unregister = METHODS.unregister
registered = METHODS.temporary
