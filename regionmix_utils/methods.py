"""The method registry, where the package and plugins find it:
``from regionmix_utils.methods import Method, Setting, register``."""

# ruff: noqa: F401 (names re-exported)
from regionmix_utils.mixing.core import SETTINGS, Setting
from regionmix_utils.mixing.entries import (
    MANIFOLD_LAYERS,
    METHODS,
    Method,
    check_settings,
    declaration,
    setting_names,
)

get_method = METHODS.get
method_names = METHODS.names
methods = METHODS.entries
register = METHODS.register
unregister = METHODS.unregister
registered = METHODS.temporary
