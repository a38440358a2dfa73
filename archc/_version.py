"""archc's version, in a module of its own so the backends can stamp it without importing the package."""
__version__ = "0.1.0"
