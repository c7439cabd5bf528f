"""brainstate's own tests of ``EventLinear``, run against eventlib's class.

Nothing is copied: ``tests/peer/conftest.py`` collects the module named
below from the installed brainstate wheel in place of this file, and patches
eventlib's layers in for brainstate's while its tests run.
"""

PEER_MODULE = "brainstate.nn._event_linear_test"
